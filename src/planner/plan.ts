/**
 * The plan JSON of DESIGN.md ("Plan JSON"): what `deno task plan --json` prints and `GET /admin/plan` serves,
 * its zod schema, and the conversion from a planned layout.
 */
import { z } from "zod";
import type { GpuState } from "./layout.ts";
import type { PlannedFunction } from "./sizing.ts";
import type { TailTarget } from "./tail.ts";

/** Every policy the planner knows. */
export const POLICIES = ["gpulet", "gpulet-noint", "timeshare", "greedy", "ideal", "bound"] as const;
export type Policy = typeof POLICIES[number];

const PlanFunction = z.object({
  name: z.string(),
  batch: z.number().int().min(1),
  dutyMs: z.number().positive(),
  rate: z.number().nonnegative(),
  latencyMs: z.number().positive(),
});

/** A plan as JSON. */
export const Plan = z.object({
  policy: z.enum(POLICIES),
  device: z.string(),
  feasible: z.boolean(),
  gpusUsed: z.number().int().nonnegative(),
  gpus: z.array(z.object({
    id: z.number().int().nonnegative(),
    gpulets: z.array(z.object({ part: z.number().positive().max(100), functions: z.array(PlanFunction) })),
  })),
  unserved: z.array(z.object({ name: z.string(), rate: z.number().positive() })),
  /**
   * What the plan promises under random arrivals (`tail.ts`): this share of each function's requests within
   * its SLO, for arrivals of this CV, with service times of this spread. Absent: averages only.
   */
  tail: z.object({
    percentile: z.number().gt(0).lt(1),
    cv: z.number().positive(),
    spread: z.number().nonnegative(),
  }).optional(),
  /**
   * The workload's applications (`app_demand.ts`): each app's SLO split over its levels (ms each) at the app
   * rate the plan was made for; its stages' functions are planned for their level's budget. Absent: no apps.
   */
  appSplits: z.array(z.object({
    name: z.string(),
    rate: z.number().nonnegative(),
    sloMs: z.number().positive(),
    budgetsMs: z.array(z.number().positive()).min(1),
  })).optional(),
});
export type Plan = z.infer<typeof Plan>;

/** Unserved rates below this fraction of a function's demand are rounding, not shortfall. */
const UNSERVED_TOLERANCE = 1e-6;

/** Rounds for JSON: enough digits to re-validate, few enough to read. */
const round = (x: number, digits = 9) => Number(x.toPrecision(digits));

/**
 * The plan JSON of a sized layout (`tail`: the target it was sized for). Served rates are those the gpu-lets carry; the rest of each function's
 * demand is listed as unserved. Rates are rounded down and latencies up, so rounding never flatters a plan.
 */
export function toPlan(
  policy: Policy,
  device: string,
  functions: readonly PlannedFunction[],
  layout: readonly GpuState[],
  tail?: TailTarget,
): Plan {
  const served = new Map<string, number>();
  // A GPU's id is its position in the layout: the incremental mode empties GPUs without renumbering the rest.
  const gpus = layout.map((gpu, id) => ({ gpu, id })).filter(({ gpu }) => gpu.gpulets.some((l) => l.sized)).map((
    { gpu, id },
  ) => ({
    id,
    gpulets: gpu.gpulets.filter((g) => g.sized).map((g) => ({
      part: g.part,
      functions: g.sized!.assignments.map((a) => {
        served.set(a.fn.name, (served.get(a.fn.name) ?? 0) + a.rate);
        return {
          name: a.fn.name,
          batch: a.batch,
          dutyMs: roundDown(g.sized!.dutyMs),
          rate: roundDown(a.rate),
          latencyMs: roundUp(a.latencyMs),
        };
      }),
    })),
  }));
  const unserved = functions
    .map((f) => ({ name: f.name, rate: f.rate - (served.get(f.name) ?? 0) }))
    .filter((u) => u.rate > UNSERVED_TOLERANCE * Math.max(1, functionsRate(functions, u.name)))
    .map((u) => ({ name: u.name, rate: roundUp(u.rate) }));
  const plan: Plan = { policy, device, feasible: unserved.length === 0, gpusUsed: gpus.length, gpus, unserved };
  if (tail) plan.tail = { percentile: tail.percentile, cv: tail.cv, spread: tail.spread };
  return plan;
}

function functionsRate(functions: readonly PlannedFunction[], name: string): number {
  return functions.find((f) => f.name === name)?.rate ?? 0;
}

function roundDown(x: number): number {
  const r = round(x);
  return r > x ? round(x * (1 - 1e-9)) : r;
}

function roundUp(x: number): number {
  const r = round(x);
  return r < x ? round(x * (1 + 1e-9)) : r;
}

/** Total planned part (% of one GPU) of a plan. */
export function totalPart(plan: Plan): number {
  return plan.gpus.reduce((s, g) => s + g.gpulets.reduce((t, l) => t + l.part, 0), 0);
}
