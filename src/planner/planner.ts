/**
 * The planner: functions with demanded rates and SLOs in, a plan out (pure). Policies share one engine —
 * decompose each function into gpu-lets, time-share residues, place gpu-lets on GPUs best-fit while sizing
 * every GPU against the interference of its actual neighbours, and re-place whatever interference sheds —
 * and differ in the parts they may use, how they choose them and whether they see interference:
 *
 * - `gpulet`: elastic spatio-temporal partitioning with interference; several decompositions are tried and
 *   the plan with the least unserved demand, then the fewest GPUs, then the fewest % in use wins.
 * - `gpulet-noint`: the same, blind to interference (its plans break once interference is applied).
 * - `timeshare`: whole GPUs only (Nexus-style squishy bin packing, the paper's temporal baseline).
 * - `greedy`: the smallest sufficient part per function, no time-sharing.
 * - `ideal`: exhaustive search over fixed GPU layouts (see ideal.ts); `bound`: a fractional upper bound.
 */
import { boundPart } from "./bound.ts";
import { decompose, type DecomposeOptions, type Item, mergeResidues, type UnitRule } from "./decompose.ts";
import type { InterferenceModel } from "./interference.ts";
import {
  cloneGpu,
  type Demand,
  fits,
  gpuletMemory,
  type GpuState,
  type MemoryLimits,
  mergeDemands,
  resizeGpu,
  servedRates,
  type SizingContext,
  usedPart,
} from "./layout.ts";
import type { LatencyModel } from "./latency_model.ts";
import { type Plan, type Policy, toPlan, totalPart } from "./plan.ts";
import { scaled } from "./workload.ts";
import { EPS, LatencyTable, type PlannedFunction, saturated } from "./sizing.ts";
import { DEFAULT_TAIL, type TailTarget } from "./tail.ts";

/** What the planner plans for. */
export interface PlanProblem {
  device: string;
  /** Most GPUs the plan may use. */
  gpus: number;
  functions: PlannedFunction[];
  latency: LatencyModel;
  /** Required by every policy but `gpulet-noint`, `timeshare` and `bound` (which ignore it). */
  interference?: InterferenceModel;
}

/** Planner knobs (the original's constants, now configurable). */
export interface PlannerOptions {
  /** Parts a gpu-let may have (% of a GPU); default: every part the profile has for every model. */
  parts?: number[];
  /** Most gpu-lets per GPU (MPS clients). */
  maxGpuletsPerGpu: number;
  /** Most functions time-sharing one gpu-let (the original's "Max Model"). */
  maxFunctionsPerGpulet: number;
  /** Multiplier on every profiled latency (the original's "Latency Ratio", 1.1 there). */
  latencyRatio: number;
  /** Rounds of re-placing what interference sheds. */
  rounds: number;
  memory?: MemoryLimits;
  /**
   * The latency percentile every gpu-let is sized for, and the arrivals it must hold under (`tail.ts`);
   * undefined: the duty-cycle rule alone (plans that hold on averages only, for comparison).
   */
  tail?: TailTarget;
}

/** Defaults: up to 4 gpu-lets per GPU, 3 functions per gpu-let, latencies as profiled, p99 under Poisson. */
export const DEFAULT_OPTIONS: PlannerOptions = {
  maxGpuletsPerGpu: 4,
  maxFunctionsPerGpulet: 3,
  latencyRatio: 1,
  rounds: 6,
  tail: DEFAULT_TAIL,
};

/** The defaults on averages alone: the duty-cycle rules, no tail target (`plan --averages`). */
export const AVERAGES_OPTIONS: PlannerOptions = { ...DEFAULT_OPTIONS, tail: undefined };

/** Whether the GPU left free by `plan` could hold its unserved demand, by the fractional bound. */
function roomFor(plan: Plan, problem: PlanProblem, table: LatencyTable, parts: readonly number[]): boolean {
  const byName = new Map(problem.functions.map((f) => [f.name, f]));
  const unserved = plan.unserved.map((u) => ({ ...byName.get(u.name)!, rate: u.rate }));
  return boundPart(table, unserved, parts) <= 100 * problem.gpus - totalPart(plan) + EPS;
}

/** A decomposition strategy the engine runs. */
export interface Strategy {
  unitRule: UnitRule;
  expectInterference: boolean;
  timeShare: boolean;
  /** Cap on gpu-lets per GPU below the option's (fewer neighbours, less interference). */
  gpuletsPerGpu?: number;
}

/** The context a policy plans in. */
export function sizingContext(
  problem: PlanProblem,
  options: PlannerOptions,
  interference: boolean,
  maxGpuletsPerGpu = options.maxGpuletsPerGpu,
  maxFunctionsPerGpulet = options.maxFunctionsPerGpulet,
): SizingContext {
  return {
    table: LatencyTable.shared(problem.latency, options.latencyRatio, options.tail),
    interference: interference ? problem.interference : undefined,
    maxGpuletsPerGpu,
    maxFunctionsPerGpulet,
    memory: options.memory,
    slowdowns: new Map(),
    sizings: new Map(),
    units: new Map(),
  };
}

/** The part set: given, or every part the profile has for every planned model. */
export function partSet(problem: PlanProblem, options: PlannerOptions): number[] {
  if (options.parts) return [...options.parts].sort((a, b) => a - b);
  const models = [...new Set(problem.functions.map((f) => f.model))];
  const all = models.map((m) => problem.latency.parts(m));
  return (all[0] ?? [100]).filter((p) => all.every((ps) => ps.includes(p)));
}

/**
 * Ways to put `item` on `gpu`: as a gpu-let of its own, and — for a single function — by growing a gpu-let the
 * function already has there into the smallest part that carries both rates (one larger gpu-let instead of
 * two: fewer neighbours, less interference, often fewer %). Each trial is resized against its neighbours.
 */
function trialsOn(
  ctx: SizingContext,
  gpu: GpuState,
  item: Item,
  parts: readonly number[],
): { trial: GpuState; shed: Demand[] }[] {
  const out: { trial: GpuState; shed: Demand[] }[] = [];
  if (fits(ctx, gpu, item.gpulet)) {
    const trial = cloneGpu(gpu);
    trial.gpulets.push({ part: item.gpulet.part, demands: item.gpulet.demands.map((d) => ({ ...d })) });
    out.push({ trial, shed: resizeGpu(ctx, trial) });
  }
  if (item.gpulet.demands.length !== 1) return out;
  const [demand] = item.gpulet.demands;
  const own = gpu.gpulets.flatMap((g, i) => g.demands.length === 1 && g.demands[0].fn === demand.fn ? [i] : []);
  // Grow each of the function's gpu-lets alone, or all of them together into one.
  const groups = own.map((i) => [i]);
  if (own.length > 1) groups.push(own);
  const used = usedPart(gpu);
  for (const group of groups) {
    const mergedPart = group.reduce((s, i) => s + gpu.gpulets[i].part, 0);
    const rate = group.reduce((s, i) => s + gpu.gpulets[i].demands[0].rate, demand.rate);
    for (const part of parts) {
      if (group.length === 1 && part <= mergedPart) continue;
      if (used - mergedPart + part > 100 + EPS) break;
      // Cheap necessary condition first: alone and without interference it must carry the rate.
      if (saturated(ctx.table, demand.fn, part, 1).rate < rate) continue;
      const trial = cloneGpu(gpu);
      trial.gpulets = trial.gpulets.filter((_, i) => !group.includes(i));
      trial.gpulets.push({ part, demands: [{ fn: demand.fn, rate }] });
      const shed = resizeGpu(ctx, trial);
      if (shed.length === 0) {
        out.push({ trial, shed });
        break;
      }
    }
  }
  return out;
}

/**
 * `item` as a gpu-let of the smallest part above its own that `gpu` takes without anyone losing rate, for when
 * its own part loses rate there: sized before its neighbours were known, the gpu-let (or a neighbour) loses
 * rate to interference, and a larger part buys the slack a small one lacks.
 */
function largerTrial(ctx: SizingContext, gpu: GpuState, item: Item, parts: readonly number[]): GpuState | undefined {
  if (!fits(ctx, gpu, item.gpulet)) return undefined;
  for (const part of parts) {
    if (part <= item.gpulet.part) continue;
    const grown = { part, demands: item.gpulet.demands.map((d) => ({ ...d })) };
    if (!fits(ctx, gpu, grown)) return undefined;
    const bigger = cloneGpu(gpu);
    bigger.gpulets.push(grown);
    if (resizeGpu(ctx, bigger).length === 0) return bigger;
  }
  return undefined;
}

/** A lossless placement: the GPU, its trial layout, the % it takes and the % left free. */
interface Lossless {
  index: number;
  trial: GpuState;
  taken: number;
  free: number;
}

/** The better of two lossless placements: fewer % taken, then (on ties) the fuller GPU. */
function betterPlacement(best: Lossless | undefined, next: Lossless): Lossless {
  if (!best || next.taken < best.taken - EPS || (next.taken <= best.taken + EPS && next.free < best.free)) return next;
  return best;
}

/**
 * Places one gpu-let: where it takes the fewest % without anyone losing rate to interference (on ties the
 * fullest GPU: best fit); else on a new GPU; else where the least rate is lost. Returns the demand shed by
 * interference (to re-place), or the gpu-let's own demand when it fits nowhere.
 */
export function placeItem(
  ctx: SizingContext,
  gpus: GpuState[],
  maxGpus: number,
  item: Item,
  parts: readonly number[] = [item.gpulet.part],
): Demand[] {
  let lossless: Lossless | undefined;
  let lossy: { index: number; trial: GpuState; shed: Demand[]; lost: number } | undefined;
  const placement = (index: number, trial: GpuState): Lossless => {
    const after = usedPart(trial);
    return { index, trial, taken: after - usedPart(gpus[index]), free: 100 - after };
  };
  for (const [index, gpu] of gpus.entries()) {
    if (gpu.gpulets.length === 0) continue;
    for (const { trial, shed } of trialsOn(ctx, gpu, item, parts)) {
      if (shed.length === 0) lossless = betterPlacement(lossless, placement(index, trial));
      else {
        const lost = shed.reduce((s, d) => s + d.rate / d.fn.rate, 0);
        if (!lossy || lost < lossy.lost) lossy = { index, trial, shed, lost };
      }
    }
  }
  if (lossless) {
    gpus[lossless.index] = lossless.trial;
    return [];
  }
  const empty = gpus.findIndex((g) => g.gpulets.length === 0);
  // A gpu-let that needs more memory than a whole GPU has cannot be placed anywhere.
  const tooBig = ctx.memory !== undefined && gpuletMemory(item.gpulet, ctx.memory) > ctx.memory.deviceMb;
  const newGpu = !tooBig && (empty >= 0 || gpus.length < maxGpus);
  if (!newGpu && ctx.growOnLoss) {
    // No GPU left to open, and every place loses rate at this part: try larger parts before losing any
    // (without this, demand the GPUs had room for was left unserved at low load).
    for (const [index, gpu] of gpus.entries()) {
      const trial = gpu.gpulets.length > 0 ? largerTrial(ctx, gpu, item, parts) : undefined;
      if (trial) lossless = betterPlacement(lossless, placement(index, trial));
    }
    if (lossless) {
      gpus[lossless.index] = lossless.trial;
      return [];
    }
  }
  if (newGpu) {
    const gpu: GpuState = {
      gpulets: [{ part: item.gpulet.part, demands: item.gpulet.demands.map((d) => ({ ...d })) }],
    };
    const shed = resizeGpu(ctx, gpu);
    if (empty >= 0) gpus[empty] = gpu;
    else gpus.push(gpu);
    return shed;
  }
  if (lossy) {
    gpus[lossy.index] = lossy.trial;
    return lossy.shed;
  }
  return item.gpulet.demands;
}

/** Places items largest first; returns what could not be placed or was shed. */
function pack(
  ctx: SizingContext,
  gpus: GpuState[],
  maxGpus: number,
  items: Item[],
  parts: readonly number[],
): Demand[] {
  const sorted = [...items].sort((a, b) => b.gpulet.part - a.gpulet.part || rateOf(b) - rateOf(a));
  return mergeDemands(sorted.flatMap((item) => placeItem(ctx, gpus, maxGpus, item, parts)));
}

const rateOf = (i: Item) => i.gpulet.demands.reduce((s, d) => s + d.rate, 0);

/** Decomposes demands into items (time-sharing residues when the strategy allows). */
function itemsFor(
  ctx: SizingContext,
  demands: readonly Demand[],
  opts: DecomposeOptions,
  timeShare: boolean,
): { items: Item[] } {
  const items = demands.flatMap((d) => decompose(ctx, d, opts).items);
  return { items: timeShare ? mergeResidues(ctx, items, opts) : items };
}

/**
 * Places `pending` demand into `gpus` (decompose, place, then re-place what interference sheds for up to
 * `rounds` more rounds). Returns what is left unplaced; `gpus` is updated in place.
 */
export function placeDemands(
  ctx: SizingContext,
  gpus: GpuState[],
  maxGpus: number,
  parts: readonly number[],
  strategy: Strategy,
  pending: Demand[],
  rounds = DEFAULT_OPTIONS.rounds,
): Demand[] {
  const opts: DecomposeOptions = {
    parts,
    unitRule: strategy.unitRule,
    expectInterference: strategy.expectInterference,
  };
  // Unservable demand (no part serves it within its SLO) is dropped by decomposition and ends up unserved. A
  // round that leaves as much pending as it started with has nothing left to gain.
  const total = (ds: readonly Demand[]) => ds.reduce((s, d) => s + d.rate, 0);
  let timeShare = strategy.timeShare;
  for (let round = 0; round <= rounds && pending.length > 0; round++) {
    const before = total(pending);
    pending = pack(ctx, gpus, maxGpus, itemsFor(ctx, pending, opts, timeShare).items, parts);
    if (round > 0 && total(pending) >= before * (1 - 1e-9)) {
      // Residues that lose a shared gpu-let to interference are merged the same way again: one last round
      // gives each its own gpu-let (without it, low loads were left unserved on a mostly free GPU).
      if (!timeShare) break;
      timeShare = false;
    }
  }
  return pending;
}

/** A copy of a layout whose gpu-lets and demands can be changed without touching the original. */
export function cloneLayout(layout: readonly GpuState[]): GpuState[] {
  return layout.map((gpu) => ({
    gpulets: gpu.gpulets.map((g) => ({ part: g.part, demands: g.demands.map((d) => ({ ...d })), sized: g.sized })),
  }));
}

/**
 * Empties GPUs, least used first, whose gpu-lets all fit on the other GPUs in use without loss. Returns the
 * compacted layout (the input is not changed).
 */
export function compact(
  ctx: SizingContext,
  layout: readonly GpuState[],
  parts: readonly number[],
  strategy: Strategy,
): GpuState[] {
  let current = cloneLayout(layout);
  const tried = new Set<number>();
  for (;;) {
    const candidates = current.map((gpu, i) => ({ i, used: usedPart(gpu) }))
      .filter((c) => c.used > 0 && !tried.has(c.i))
      .sort((a, b) => a.used - b.used);
    if (candidates.length < 2) return current;
    const { i } = candidates[0];
    tried.add(i);
    const trial = cloneLayout(current);
    const moving = mergeDemands(trial[i].gpulets.flatMap((g) => g.demands));
    const others = trial.flatMap((gpu, j) => (j !== i && gpu.gpulets.length > 0 ? [j] : []));
    const gpus = others.map((j) => trial[j]);
    const left = placeDemands(ctx, gpus, gpus.length, parts, strategy, moving);
    if (left.length > 0) continue;
    others.forEach((j, k) => (trial[j] = gpus[k]));
    trial[i] = { gpulets: [] };
    current = trial;
    tried.clear();
    tried.add(i);
  }
}

/** Runs the engine once on an empty (or given) layout for every function's full rate. */
export function planLayout(
  ctx: SizingContext,
  functions: readonly PlannedFunction[],
  maxGpus: number,
  parts: readonly number[],
  strategy: Strategy,
  gpus: GpuState[] = [],
  rounds = DEFAULT_OPTIONS.rounds,
): GpuState[] {
  const pending = functions.filter((f) => f.rate > 0).map((fn) => ({ fn, rate: fn.rate }));
  placeDemands(ctx, gpus, maxGpus, parts, strategy, pending, rounds);
  return gpus;
}

/** Orders plans: least unserved (as a fraction of each demand), then fewest GPUs, then least % in use. */
export function betterPlan(a: Plan, b: Plan, functions: readonly PlannedFunction[]): boolean {
  const miss = (p: Plan) =>
    p.unserved.reduce((s, u) => s + u.rate / (functions.find((f) => f.name === u.name)?.rate ?? 1), 0);
  const [ma, mb] = [miss(a), miss(b)];
  if (Math.abs(ma - mb) > 1e-9) return ma < mb;
  if (a.gpusUsed !== b.gpusUsed) return a.gpusUsed < b.gpusUsed;
  return totalPart(a) < totalPart(b);
}

/** Strategies each policy tries. */
export function strategiesOf(policy: Policy): Strategy[] {
  switch (policy) {
    case "gpulet":
      // Both unit rules, sized with and without the expected interference; the best plan wins. (Capping
      // gpu-lets per GPU at 2 or 3 as well never won on the shipped workloads, and doubled the time.)
      return (["efficiency", "knee"] as const).flatMap((unitRule) =>
        [true, false].map((expectInterference) => ({ unitRule, expectInterference, timeShare: true }))
      );
    case "gpulet-noint":
      return [
        { unitRule: "efficiency", expectInterference: false, timeShare: true },
        { unitRule: "knee", expectInterference: false, timeShare: true },
      ];
    case "timeshare":
      return [{ unitRule: "efficiency", expectInterference: false, timeShare: true }];
    case "greedy":
      return [{ unitRule: "smallest", expectInterference: false, timeShare: false }];
    default:
      throw new Error(`policy ${policy} is not run by the engine`);
  }
}

/** Plans with one of the engine's policies (`gpulet`, `gpulet-noint`, `timeshare`, `greedy`). */
export function planWithEngine(
  problem: PlanProblem,
  policy: Policy,
  options: PlannerOptions = DEFAULT_OPTIONS,
): Plan {
  return engine(problem, policy, options, true);
}

/** The engine; `scaleUp`: may try a plan for more demand when this one falls short. */
function engine(problem: PlanProblem, policy: Policy, options: PlannerOptions, scaleUp: boolean): Plan {
  const interference = policy === "gpulet" || policy === "greedy";
  if (interference && !problem.interference) {
    throw new Error(`policy ${policy} needs an interference model (a pairs file)`);
  }
  const whole = policy === "timeshare";
  const parts = whole ? [100] : partSet(problem, options);
  const ctx = sizingContext(
    problem,
    options,
    interference,
    whole ? 1 : options.maxGpuletsPerGpu,
    policy === "greedy" ? 1 : options.maxFunctionsPerGpulet,
  );
  let best: Plan | undefined, bestLayout: GpuState[] | undefined;
  /** Plans with `strategy`; `growOnLoss`: larger parts before losing rate to interference. */
  const run = (strategy: Strategy, growOnLoss = false) => {
    const cap = Math.min(ctx.maxGpuletsPerGpu, strategy.gpuletsPerGpu ?? Infinity);
    const layout = planLayout(
      { ...ctx, maxGpuletsPerGpu: cap, growOnLoss },
      problem.functions,
      problem.gpus,
      parts,
      strategy,
      [],
      options.rounds,
    );
    const plan = toPlan(policy, problem.device, problem.functions, layout, ctx.table.tail);
    if (!best || betterPlan(plan, best, problem.functions)) [best, bestLayout] = [plan, layout];
  };
  const strategies = strategiesOf(policy);
  for (const strategy of strategies) run(strategy);
  // Placement goes function by function and can leave a GPU whose gpu-lets the others absorb once re-sized
  // (the autoscaler's re-plan found such GPUs: scen1 on the H100, 3 GPUs where the plan had 4). Any
  // strategy may empty it, whichever made the layout.
  if (policy === "gpulet" && best!.gpusUsed > 1) {
    const layout = bestLayout!;
    for (const strategy of strategies) {
      // A fresh plan numbers its GPUs from 0: the emptied ones are dropped.
      const packed = compact(ctx, layout, parts, strategy).filter((gpu) => gpu.gpulets.length > 0);
      const plan = toPlan(policy, problem.device, problem.functions, packed, ctx.table.tail);
      if (betterPlan(plan, best!, problem.functions)) best = plan;
    }
  }
  // A plan that leaves demand unserved where the free part could hold it (by the fractional bound, with no
  // interference at all) gets the same strategies again, with larger parts before a loss to interference.
  // On the shipped H100 workloads it changes no peak; on the H200 profile it serves low loads that were left
  // unserved on a mostly free GPU (a property test holds every fraction of the claimed peak).
  if (interference && !best!.feasible && roomFor(best!, problem, ctx.table, parts)) {
    for (const strategy of strategies) run(strategy, true);
  }
  // Still short with room to spare: a plan for somewhat more demand, run at this demand, serves it (a lower
  // rate on the same batches and neighbours only shortens every queue). Packing is not monotone in the
  // demand (at 0.7–0.9× of a claimed peak the residues can fall apart differently); this keeps every
  // fraction of a peak plannable.
  // Only where GPUs are left with room for another gpu-let: a layout that is full cannot serve less by serving more.
  const free = 100 * problem.gpus - totalPart(best!);
  if (!best!.feasible && scaleUp && free >= parts[0] - EPS) {
    for (const k of SCALE_UP) {
      const functions = scaled(problem.functions, k);
      if (boundPart(ctx.table, functions, parts) > 100 * problem.gpus) break; // no plan serves that much
      const up = engine({ ...problem, functions }, policy, options, false);
      if (up.feasible) return scaleRates(up, 1 / k);
    }
  }
  return best!;
}

/** Demand multipliers tried when the demand itself does not plan (see `planWithEngine`). */
const SCALE_UP = [1.1, 1.35, 2];

/** A feasible plan with every planned rate × `factor` (< 1): the same layout serving less. */
function scaleRates(plan: Plan, factor: number): Plan {
  return {
    ...plan,
    gpus: plan.gpus.map((g) => ({
      ...g,
      gpulets: g.gpulets.map((l) => ({
        ...l,
        functions: l.functions.map((f) => ({ ...f, rate: Number((f.rate * factor).toPrecision(12)) })),
      })),
    })),
  };
}

/** Rates served per function name by a layout (for tests and the incremental mode). */
export function servedByName(layout: readonly GpuState[]): Map<string, number> {
  return new Map([...servedRates(layout)].map(([fn, r]) => [fn.name, r]));
}
