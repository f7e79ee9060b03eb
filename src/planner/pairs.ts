/**
 * Co-location measurements (`profiles/<device>-pairs.csv`): two gpu-lets side by side on one device, each
 * timed alone and together at one batch size.
 */
import { type CsvRow, readCsv } from "./csv.ts";

const MODEL = { type: "string", pattern: /^[a-z][a-z0-9_]{0,62}$/, what: "a model name (a-z, 0-9, _)" } as const;
const PART = { type: "number", integer: true, min: 1, max: 100 } as const;
const MS = { type: "number", positive: true } as const;

/** Columns of a pairs CSV. */
export const PAIR_COLUMNS = {
  model_a: MODEL,
  part_a: PART,
  model_b: MODEL,
  part_b: PART,
  batch: { type: "number", integer: true, min: 1 },
  alone_a_ms: MS,
  alone_b_ms: MS,
  together_a_ms: MS,
  together_b_ms: MS,
} as const;

export type PairRow = CsvRow<typeof PAIR_COLUMNS>;

/** The query columns of `interference predict` (the first five of a pairs file). */
export const PAIR_QUERY_COLUMNS = {
  model_a: MODEL,
  part_a: PART,
  model_b: MODEL,
  part_b: PART,
  batch: { type: "number", integer: true, min: 1 },
} as const;

/** One gpu-let's view of a pair measurement: its slowdown next to the other. */
export interface Observation {
  model: string;
  part: number;
  other: string;
  otherPart: number;
  batch: number;
  aloneMs: number;
  togetherMs: number;
  /** together / alone. */
  slowdown: number;
}

/** Both directions of every pair row. */
export function observations(rows: readonly PairRow[]): Observation[] {
  return rows.flatMap((r) => [
    {
      model: r.model_a,
      part: r.part_a,
      other: r.model_b,
      otherPart: r.part_b,
      batch: r.batch,
      aloneMs: r.alone_a_ms,
      togetherMs: r.together_a_ms,
      slowdown: r.together_a_ms / r.alone_a_ms,
    },
    {
      model: r.model_b,
      part: r.part_b,
      other: r.model_a,
      otherPart: r.part_a,
      batch: r.batch,
      aloneMs: r.alone_b_ms,
      togetherMs: r.together_b_ms,
      slowdown: r.together_b_ms / r.alone_b_ms,
    },
  ]);
}

/** Reads a pairs CSV; parts of a pair must fit on one device. */
export async function loadPairs(path: string): Promise<PairRow[]> {
  const rows = await readCsv(path, PAIR_COLUMNS);
  for (const r of rows) {
    if (r.part_a + r.part_b > 100) {
      throw new Error(`${path}:${r.line}: parts ${r.part_a} + ${r.part_b} exceed 100 %`);
    }
  }
  return rows;
}
