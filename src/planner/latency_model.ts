/**
 * Solo latency profiles (`profiles/<device>.csv`: model, part %, batch, latency_ms) and the latency model over
 * them: any batch and part inside the profiled ranges, interpolated; anything else is an error, never a
 * silent zero (the original returned 0 for unknown models and unprofiled parts).
 */
import { type CsvRow, parseCsv, readCsv } from "./csv.ts";

/** Columns of a profile CSV. */
export const PROFILE_COLUMNS = {
  model: { type: "string", pattern: /^[a-z][a-z0-9_]{0,62}$/, what: "a model name (a-z, 0-9, _)" },
  part: { type: "number", integer: true, min: 1, max: 100 },
  batch: { type: "number", integer: true, min: 1 },
  latency_ms: { type: "number", positive: true },
} as const;

export type ProfileRow = CsvRow<typeof PROFILE_COLUMNS>;

/** A question the profile cannot answer. */
export class ProfileError extends Error {}

interface ModelTable {
  /** Profiled parts, ascending. */
  parts: number[];
  /** part → batches ascending, latencies aligned. */
  byPart: Map<number, { batches: number[]; ms: number[] }>;
}

/** Linear interpolation of y at x over ascending xs (x inside the range). */
function lerp(xs: number[], ys: number[], x: number): number {
  let i = 0;
  while (i < xs.length - 1 && xs[i + 1] < x) i++;
  if (xs[i] === x) return ys[i];
  if (xs[i + 1] === x) return ys[i + 1];
  return ys[i] + ((ys[i + 1] - ys[i]) * (x - xs[i])) / (xs[i + 1] - xs[i]);
}

/** Latency per (model, part, batch) from a solo profile. Immutable. */
export class LatencyModel {
  private readonly tables = new Map<string, ModelTable>();

  private readonly rows: readonly ProfileRow[];

  private constructor(readonly source: string, rows: readonly ProfileRow[]) {
    this.rows = rows;
    const seen = new Map<string, number>();
    const grouped = new Map<string, Map<number, [number, number][]>>();
    for (const r of rows) {
      const key = `${r.model},${r.part},${r.batch}`;
      const first = seen.get(key);
      if (first !== undefined) {
        throw new ProfileError(`${source}:${r.line}: ${key} is profiled twice (first on line ${first})`);
      }
      seen.set(key, r.line);
      const parts = grouped.get(r.model) ?? new Map<number, [number, number][]>();
      grouped.set(r.model, parts);
      const points = parts.get(r.part) ?? [];
      parts.set(r.part, points);
      points.push([r.batch, r.latency_ms]);
    }
    for (const [model, parts] of grouped) {
      const byPart = new Map<number, { batches: number[]; ms: number[] }>();
      let batchSet: string | undefined;
      for (const [part, points] of [...parts].sort((a, b) => a[0] - b[0])) {
        points.sort((a, b) => a[0] - b[0]);
        const batches = points.map((p) => p[0]);
        // Interpolating across parts needs the same batches at every part.
        if (batchSet !== undefined && batchSet !== batches.join(",")) {
          throw new ProfileError(
            `${source}: ${model} has batches ${batches.join(",")} at part ${part} but ${batchSet} at a smaller part`,
          );
        }
        batchSet = batches.join(",");
        byPart.set(part, { batches, ms: points.map((p) => p[1]) });
      }
      this.tables.set(model, { parts: [...byPart.keys()], byPart });
    }
  }

  /** A model from parsed rows; `source` names them in errors. */
  static fromRows(rows: readonly ProfileRow[], source = "profile"): LatencyModel {
    return new LatencyModel(source, rows);
  }

  /** A model from CSV text. */
  static parse(text: string, source = "profile"): LatencyModel {
    return new LatencyModel(source, parseCsv(text, source, PROFILE_COLUMNS));
  }

  /** The rows it was made from (plain data: a worker rebuilds the same model with `fromRows`). */
  toRows(): ProfileRow[] {
    return [...this.rows];
  }

  /** Profiled models, sorted. */
  models(): string[] {
    return [...this.tables.keys()].sort();
  }

  has(model: string): boolean {
    return this.tables.has(model);
  }

  private table(model: string): ModelTable {
    const t = this.tables.get(model);
    if (!t) {
      throw new ProfileError(
        `no profile for model "${model}" in ${this.source} (profiled: ${this.models().join(", ")})`,
      );
    }
    return t;
  }

  /** Parts profiled for a model, ascending. */
  parts(model: string): number[] {
    return [...this.table(model).parts];
  }

  /** Parts profiled for every model (the device's part set for planning), ascending. */
  commonParts(): number[] {
    const [first, ...rest] = [...this.tables.values()];
    if (!first) return [];
    return first.parts.filter((p) => rest.every((t) => t.byPart.has(p)));
  }

  /** Batches profiled for a model, ascending. */
  batches(model: string): number[] {
    return [...this.table(model).byPart.values().next().value!.batches];
  }

  /**
   * Latency (ms) of `model` at `batch` on a gpu-let of `part` %. Batches between profiled ones are linear;
   * parts between profiled ones are linear in 1/part (latency ≈ fixed + work/part). Outside the profiled
   * ranges: a ProfileError.
   */
  latency(model: string, part: number, batch: number): number {
    const t = this.table(model);
    const { batches } = t.byPart.get(t.parts[0])!;
    if (!(batch >= batches[0] && batch <= batches[batches.length - 1])) {
      throw new ProfileError(
        `${model}: batch ${batch} is outside the profiled batches ${batches[0]}..${batches[batches.length - 1]}`,
      );
    }
    if (!(part >= t.parts[0] && part <= t.parts[t.parts.length - 1])) {
      throw new ProfileError(
        `${model}: part ${part} % is outside the profiled parts ${t.parts[0]}..${t.parts[t.parts.length - 1]} %`,
      );
    }
    const at = (p: number) => {
      const row = t.byPart.get(p)!;
      return lerp(row.batches, row.ms, batch);
    };
    if (t.byPart.has(part)) return at(part);
    let i = 0;
    while (t.parts[i + 1] < part) i++;
    const [p1, p2] = [t.parts[i], t.parts[i + 1]];
    const [l1, l2] = [at(p1), at(p2)];
    return l1 + ((l2 - l1) * (1 / part - 1 / p1)) / (1 / p2 - 1 / p1);
  }
}

/** Reads `profiles/<device>.csv`. */
export async function loadLatencyModel(path: string): Promise<LatencyModel> {
  return LatencyModel.fromRows(await readCsv(path, PROFILE_COLUMNS), path);
}
