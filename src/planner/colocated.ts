/**
 * What the pairs cannot tell: per model, how far its measured full-batch latency next to the real
 * neighbours of whole plans (several gpu-lets, partly busy) sits from the interference model's prediction
 * (pure, but for the CSV at the edge). densenet161 at batch ≥ 3 ran 20–41 % slower on the H200 than
 * predicted, at batch 1–2 within 10 %; other models within ±10 %. The residual is
 * `exp(intercept + slope · ln batch)`, fitted per model by ridge-shrunk least squares on
 * `ln(measured / predicted)` over the replayed gpu-lets, and multiplies a gpu-let's latency whenever it has
 * neighbours (`InterferenceModel`). Shipped as `profiles/<device>-colocated.csv`, made by
 * `deno run -A bench/colocated.ts` from the replays in `resource/fidelity/` and `bench/results/`.
 */
import { type CsvRow, formatCsv, readCsv } from "./csv.ts";
import { solveLinear } from "./least_squares.ts";

/** Columns of `profiles/<device>-colocated.csv`. */
export const COLOCATED_COLUMNS = {
  model: { type: "string", pattern: /^[a-z][a-z0-9_]{0,62}$/, what: "a model name (a-z, 0-9, _)" },
  intercept: { type: "number" },
  slope: { type: "number" },
  gpulets: { type: "number", integer: true, min: 0 },
} as const;

export type ColocatedRow = CsvRow<typeof COLOCATED_COLUMNS>;

/** A model's residual: `ln factor = intercept + slope · ln batch`. */
export interface Residual {
  intercept: number;
  slope: number;
}

/** One replayed gpu-let: its model and batch, the model's prediction next to its neighbours, the measurement. */
export interface ColocatedCase {
  model: string;
  batch: number;
  predictedMs: number;
  measuredMs: number;
}

/** Fewest replayed gpu-lets of a model to fit it a residual. */
const MIN_CASES = 6;
/** Ridge weight: the fit is pulled toward no residual as if by this many gpu-lets that matched exactly. */
const SHRINK = 4;
/** The residual factor stays within this range: a correction, not a second model. */
const FACTOR_RANGE = [0.8, 1.6] as const;

/** The residual factor of `model` at `batch` (1 when it has none). */
export function residualFactor(
  residuals: Readonly<Record<string, Residual>> | undefined,
  model: string,
  batch: number,
) {
  const r = residuals?.[model];
  if (!r) return 1;
  const f = Math.exp(r.intercept + r.slope * Math.log(batch));
  return Math.min(FACTOR_RANGE[1], Math.max(FACTOR_RANGE[0], f));
}

/** Fits each model with enough cases: ridge least squares of ln(measured/predicted) on [1, ln batch]. */
export function fitResiduals(cases: readonly ColocatedCase[]): Record<string, Residual & { gpulets: number }> {
  const byModel = Map.groupBy(cases, (c) => c.model);
  const out: Record<string, Residual & { gpulets: number }> = {};
  for (const [model, of] of byModel) {
    if (of.length < MIN_CASES) continue;
    // Normal equations of y ≈ a + b·x with x = ln batch, plus SHRINK·(a² + b²·mean x²) as the ridge.
    let n = 0, sx = 0, sxx = 0, sy = 0, sxy = 0;
    for (const c of of) {
      const x = Math.log(c.batch), y = Math.log(c.measuredMs / c.predictedMs);
      n++, sx += x, sxx += x * x, sy += y, sxy += x * y;
    }
    const ridgeA = SHRINK, ridgeB = SHRINK * Math.max(sxx / n, 0.1);
    const fit = solveLinear([[n + ridgeA, sx], [sx, sxx + ridgeB]], [sy, sxy]);
    if (!fit) continue;
    out[model] = { intercept: fit[0], slope: fit[1], gpulets: of.length };
  }
  return out;
}

/** The residuals as CSV rows, by model. */
export function formatResiduals(fitted: Record<string, Residual & { gpulets: number }>): string {
  const rows = Object.entries(fitted).sort(([a], [b]) => a.localeCompare(b)).map(([model, r]) => ({
    model,
    intercept: Number(r.intercept.toFixed(5)),
    slope: Number(r.slope.toFixed(5)),
    gpulets: r.gpulets,
  }));
  return formatCsv(rows, Object.keys(COLOCATED_COLUMNS));
}

/** Reads `profiles/<device>-colocated.csv`. */
export async function loadResiduals(path: string): Promise<Record<string, Residual>> {
  const out: Record<string, Residual> = {};
  for (const r of await readCsv(path, COLOCATED_COLUMNS)) out[r.model] = { intercept: r.intercept, slope: r.slope };
  return out;
}
