/**
 * The one CSV module: typed reading with errors that name the file, line and column, and writing. Every CSV
 * the project reads or writes (profiles, pair files, interference queries) goes through here.
 */
import { parse } from "csv-parse/sync";
import { stringify } from "csv-stringify/sync";

/** What a column holds: text, any finite number, or a number with bounds / integrality. */
export type ColumnKind =
  | {
    type: "string";
    pattern?: RegExp;
    what?: string; /** Value when the column is absent or empty. */
    default?: string;
  }
  | { type: "number"; min?: number; max?: number; integer?: boolean; positive?: boolean };

/** A bad CSV: `file:line:column: message`. */
export class CsvError extends Error {
  constructor(readonly file: string, readonly line: number, readonly column: number | null, message: string) {
    super(`${file}:${line}${column !== null ? `:${column}` : ""}: ${message}`);
  }
}

/** A typed row, and the line it came from. */
export type CsvRow<C extends Record<string, ColumnKind>> =
  & { [K in keyof C]: C[K] extends { type: "number" } ? number : string }
  & { line: number };

function convert(raw: string, kind: ColumnKind, name: string, err: (msg: string) => CsvError): string | number {
  if (kind.type === "string") {
    if (raw === "" && kind.default !== undefined) return kind.default;
    if (raw === "") throw err(`${name} is empty`);
    if (kind.pattern && !kind.pattern.test(raw)) throw err(`${name} "${raw}" is not ${kind.what ?? kind.pattern}`);
    return raw;
  }
  const v = raw === "" ? NaN : Number(raw);
  if (!Number.isFinite(v)) throw err(`${name} "${raw}" is not a number`);
  if (kind.integer && !Number.isInteger(v)) throw err(`${name} ${raw} is not an integer`);
  if (kind.positive && !(v > 0)) throw err(`${name} ${raw} must be > 0`);
  if (kind.min !== undefined && v < kind.min) throw err(`${name} ${raw} is below ${kind.min}`);
  if (kind.max !== undefined && v > kind.max) throw err(`${name} ${raw} is above ${kind.max}`);
  return v;
}

/**
 * Parses CSV text with a header row. Every column of `columns` must be present (extra columns are ignored);
 * each value is converted and checked. `file` names the source in errors.
 */
export function parseCsv<C extends Record<string, ColumnKind>>(text: string, file: string, columns: C): CsvRow<C>[] {
  let records: { record: string[]; info: { lines: number } }[];
  try {
    records = parse(text, {
      info: true,
      skip_empty_lines: true,
      trim: true,
      relax_column_count: true,
      bom: true,
    }) as unknown as typeof records;
  } catch (e) {
    const line = (e as { lines?: number }).lines ?? 0;
    throw new CsvError(file, line, null, `malformed CSV: ${e instanceof Error ? e.message : e}`);
  }
  if (records.length === 0) {
    throw new CsvError(file, 1, null, `empty file; expected a header ${Object.keys(columns).join(",")}`);
  }
  const header = records[0].record;
  const index: Record<string, number> = {};
  for (const name of Object.keys(columns)) {
    const i = header.indexOf(name);
    if (i < 0 && columns[name].type === "string" && columns[name].default !== undefined) {
      index[name] = -1;
      continue;
    }
    if (i < 0) {
      throw new CsvError(file, records[0].info.lines, null, `missing column "${name}" (header: ${header.join(",")})`);
    }
    index[name] = i;
  }
  return records.slice(1).map(({ record, info }) => {
    const row: Record<string, string | number> = { line: info.lines };
    for (const [name, kind] of Object.entries(columns)) {
      const i = index[name];
      if (i < 0) {
        row[name] = (kind as { default: string }).default;
        continue;
      }
      const err = (msg: string) => new CsvError(file, info.lines, i + 1, msg);
      if (i >= record.length) throw err(`missing value for ${name} (the row has ${record.length} fields)`);
      row[name] = convert(record[i], kind, name, err);
    }
    return row as CsvRow<C>;
  });
}

/** Reads and parses a CSV file (see `parseCsv`). */
export async function readCsv<C extends Record<string, ColumnKind>>(path: string, columns: C): Promise<CsvRow<C>[]> {
  return parseCsv(await Deno.readTextFile(path), path, columns);
}

/** CSV text with a header row from objects, in the order of `columns`. */
export function formatCsv(rows: readonly Record<string, unknown>[], columns: readonly string[]): string {
  return stringify(rows.map((r) => columns.map((c) => r[c])), { header: true, columns: [...columns] });
}
