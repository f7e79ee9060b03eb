/**
 * A layout being planned: GPUs split into gpu-lets, each with the functions and rates it is asked to serve.
 * Sizing a GPU's gpu-lets accounts for interference from their actual neighbours; what a gpu-let cannot serve
 * any more is shed and reported, so the policy can place it elsewhere. Mutable state, pure otherwise.
 */
import type { InterferenceModel, NeighbourLoad } from "./interference.ts";
import {
  batchCap,
  EPS,
  type LatencyTable,
  neighbourLoad,
  type PlannedFunction,
  saturated,
  type SizedGpulet,
  sizeGpulet,
} from "./sizing.ts";

/** A function's requested share of a gpu-let. */
export interface Demand {
  fn: PlannedFunction;
  rate: number;
}

/** A gpu-let in a layout. `sized` is set once it has been sized against its neighbours. */
export interface GpuletState {
  part: number;
  demands: Demand[];
  sized?: SizedGpulet;
}

/** A GPU in a layout. */
export interface GpuState {
  gpulets: GpuletState[];
}

/** GPU memory accounting (MB). Without it, memory is not checked. */
export interface MemoryLimits {
  /** Usable memory per GPU. */
  deviceMb: number;
  /** Per gpu-let process (runtime context, workspace): one per gpu-let, however many functions it serves. */
  contextMb: number;
  /** Weights and activations per model; a model not listed counts 0. */
  modelMb: Record<string, number>;
}

/** What sizing needs besides the layout. */
export interface SizingContext {
  table: LatencyTable;
  /** Undefined: interference ignored (the gpulet-noint policy). */
  interference?: InterferenceModel;
  maxGpuletsPerGpu: number;
  maxFunctionsPerGpulet: number;
  memory?: MemoryLimits;
  /** Memo of pairwise slowdowns (the interference model is pure). */
  slowdowns: Map<number, number>;
  /** Memo of gpu-let sizings (pure in part, functions, rates and slowdowns); null = infeasible. */
  sizings?: Map<string, SizedGpulet | null>;
  /** Memo of unit parts per function and decomposition rule (they do not depend on the rate). */
  units?: Map<PlannedFunction, Map<string, { part: number; rate: number } | null>>;
  /**
   * When no GPU is left to open and a gpu-let would lose rate to interference wherever it goes, try it at
   * larger parts before placing it with a loss (a strategy of the engine's; see `strategiesOf`).
   */
  growOnLoss?: boolean;
}

/** Batch assumed for a neighbour that is not sized yet (the batch the pairs were measured at). */
const DEFAULT_BATCH = 8;

/** Parts in use on a GPU. */
export function usedPart(gpu: GpuState): number {
  return gpu.gpulets.reduce((s, g) => s + g.part, 0);
}

/** Memory a GPU needs (MB): each gpu-let is a process with its context and its functions' models. */
export function usedMemory(gpu: GpuState, memory: MemoryLimits): number {
  return gpu.gpulets.reduce((s, g) => s + gpuletMemory(g, memory), 0);
}

/** Memory one gpu-let needs (MB): its process's context, and one session per function with its model. */
export function gpuletMemory(g: GpuletState, memory: MemoryLimits): number {
  const sessions = new Map(g.demands.map((d) => [d.fn.name, d.fn.model]));
  return [...sessions.values()].reduce((s, m) => s + (memory.modelMb[m] ?? 0), memory.contextMb);
}

/** True if a gpu-let of `part` serving `demands` can be added to the GPU (part, count and memory). */
export function fits(ctx: SizingContext, gpu: GpuState, item: GpuletState): boolean {
  if (usedPart(gpu) + item.part > 100 + EPS) return false;
  if (gpu.gpulets.length + 1 > ctx.maxGpuletsPerGpu) return false;
  if (ctx.memory && usedMemory(gpu, ctx.memory) + gpuletMemory(item, ctx.memory) > ctx.memory.deviceMb) return false;
  return true;
}

function batchOf(g: GpuletState, fn: PlannedFunction): number {
  return g.sized?.assignments.find((a) => a.fn === fn)?.batch ?? DEFAULT_BATCH;
}

const modelIds = new Map<string, number>();

/** A numeric memo key for one pair in `SizingContext.slowdowns` (string keys cost more than the lookups they save). */
export function pairKey(
  model: string,
  part: number,
  batch: number,
  other: string,
  otherPart: number,
  otherBatch: number,
): number {
  const id = (m: string) => {
    let i = modelIds.get(m);
    if (i === undefined) modelIds.set(m, i = modelIds.size);
    return i;
  };
  // Parts are ≤ 100 and batches < 1024: the key stays exact below 2^53 for up to 200 models.
  return ((((id(model) * 101 + part) * 1024 + batch) * 4096 + id(other)) * 101 + otherPart) * 1024 + otherBatch;
}

/** Loads of sized gpu-lets (sizings are memoised, so one sized gpu-let is asked for its load many times). */
const loads = new WeakMap<SizedGpulet, NeighbourLoad>();

/**
 * A neighbour's load: each function's batch and busy share. Not sized yet: its demanded rates at the batch
 * the pairs were measured at (or its cap) without interference, the least busy it can be; passes of
 * `resizeGpu` raise it from there.
 */
function loadOf(ctx: SizingContext, g: GpuletState): NeighbourLoad {
  const sized = g.sized;
  if (!sized) {
    return neighbourLoad(
      ctx.table,
      g.part,
      g.demands.map((d) => {
        const batch = Math.min(DEFAULT_BATCH, batchCap(ctx.table, d.fn));
        return { model: d.fn.model, rate: d.rate, batch, latencyMs: ctx.table.latency(d.fn.model, g.part, batch) };
      }),
    );
  }
  let load = loads.get(sized);
  if (!load) {
    load = neighbourLoad(
      ctx.table,
      g.part,
      sized.assignments.map((a) => ({ model: a.fn.model, rate: a.rate, batch: a.batch, latencyMs: a.latencyMs })),
    );
    loads.set(sized, load);
  }
  return load;
}

/** Slowdowns are rounded up to this step: passes then settle exactly, and sizings are memoised across layouts. */
const ALPHA_STEP = 1 / 256;

/** Loads of the other gpu-lets of the GPU that serve something: `self`'s neighbours. */
function neighboursOf(ctx: SizingContext, gpu: GpuState, self: GpuletState): NeighbourLoad[] {
  return gpu.gpulets.filter((o) => o !== self && o.demands.length > 0).map((o) => loadOf(ctx, o));
}

/**
 * Slowdown of `fn` on gpu-let `self` next to `neighbours`: each neighbour's functions add their pairwise
 * slowdown weighted by the share of time they keep it busy (`InterferenceModel.alongside`); 1 without an
 * interference model.
 */
function slowdownOn(ctx: SizingContext, neighbours: readonly NeighbourLoad[], self: GpuletState, fn: PlannedFunction) {
  const model = ctx.interference;
  if (!model) return 1;
  const alpha = model.alongside({ model: fn.model, part: self.part, batch: batchOf(self, fn) }, neighbours, (s, o) => {
    const key = pairKey(s.model, s.part, s.batch, o.model, o.part, o.batch);
    let x = ctx.slowdowns.get(key);
    if (x === undefined) {
      x = model.slowdownAt(s.model, s.part, s.batch, o.model, o.part, o.batch);
      ctx.slowdowns.set(key, x);
    }
    return x;
  });
  return Math.ceil(alpha / ALPHA_STEP - 1e-9) * ALPHA_STEP;
}

/**
 * Sizes every gpu-let of a GPU against its neighbours (until the batches settle: batches and slowdowns depend on each
 * other) and sheds what no longer fits: a function's rate drops to what its gpu-let can still carry, or a
 * time-shared function is moved out. Returns the shed demand.
 */
export function resizeGpu(ctx: SizingContext, gpu: GpuState): Demand[] {
  const shed: Demand[] = [];
  // Slowdowns only grow from pass to pass: batches that chase each other's slowdowns then settle, and
  // whatever they settle on was sized for at least the slowdown its final neighbours cause.
  const seen = new Map<GpuletState, Map<PlannedFunction, number>>();
  for (let pass = 0; pass < 16; pass++) {
    let changed = false;
    for (const g of gpu.gpulets) {
      if (g.demands.length === 0) continue;
      const before = g.sized;
      let alphas = seen.get(g);
      if (!alphas) seen.set(g, alphas = new Map());
      const { sized, grew } = sizeWithin(ctx, gpu, g, shed, alphas);
      g.sized = sized;
      // A neighbour's busy share follows its slowdown: settled when neither batches nor slowdowns move.
      if (!sameBatches(before, sized) || grew) changed = true;
    }
    if (!changed) break;
  }
  gpu.gpulets = gpu.gpulets.filter((g) => g.demands.length > 0);
  return mergeDemands(shed);
}

function sameBatches(a: SizedGpulet | undefined, b: SizedGpulet | undefined): boolean {
  if (!a || !b || a.assignments.length !== b.assignments.length) return false;
  return a.assignments.every((x, i) => x.batch === b.assignments[i].batch);
}

/**
 * Sizes one gpu-let, shedding rate or functions until it is feasible; `grew`: some function's slowdown in
 * `alphas` (the largest seen, per function) is new or rose.
 */
function sizeWithin(
  ctx: SizingContext,
  gpu: GpuState,
  g: GpuletState,
  shed: Demand[],
  alphas: Map<PlannedFunction, number>,
): { sized: SizedGpulet | undefined; grew: boolean } {
  const neighbours = ctx.interference ? neighboursOf(ctx, gpu, g) : [];
  let grew = false;
  for (;;) {
    if (g.demands.length === 0) return { sized: undefined, grew };
    const demands = g.demands.map((d) => {
      const before = alphas.get(d.fn);
      const alpha = Math.max(slowdownOn(ctx, neighbours, g, d.fn), before ?? 1);
      if (before === undefined || alpha > before) grew = true;
      alphas.set(d.fn, alpha);
      return { ...d, alpha };
    });
    const sized = sizeMemo(ctx, g.part, demands);
    if (sized) return { sized, grew };
    if (g.demands.length === 1) {
      // Alone: keep what the gpu-let still carries saturated, shed the rest.
      const d = demands[0];
      const can = saturated(ctx.table, d.fn, g.part, d.alpha).rate * (1 - 1e-9);
      if (can <= EPS * d.rate || can >= d.rate) {
        shed.push({ fn: d.fn, rate: d.rate });
        g.demands = [];
        return { sized: undefined, grew };
      }
      shed.push({ fn: d.fn, rate: d.rate - can });
      g.demands = [{ fn: d.fn, rate: can }];
      continue;
    }
    // Time-shared: move out the function that takes the largest share of the cycle.
    let worst = 0;
    let worstLoad = -1;
    demands.forEach((d, i) => {
      const load = ctx.table.latency(d.fn.model, g.part, 1) * d.alpha * d.rate;
      if (load > worstLoad) [worst, worstLoad] = [i, load];
    });
    shed.push(g.demands[worst]);
    g.demands = g.demands.filter((_, i) => i !== worst);
  }
}

/** `sizeGpulet`, remembered per context: placement tries many layouts that share most gpu-lets. */
export function sizeMemo(
  ctx: SizingContext,
  part: number,
  demands: { fn: PlannedFunction; rate: number; alpha: number }[],
): SizedGpulet | undefined {
  if (!ctx.sizings) return sizeGpulet(ctx.table, part, demands);
  const key = `${part}|${demands.map((d) => `${d.fn.name}:${d.rate}:${d.alpha}`).join("|")}`;
  let sized = ctx.sizings.get(key);
  if (sized === undefined) {
    sized = sizeGpulet(ctx.table, part, demands) ?? null;
    ctx.sizings.set(key, sized);
  }
  return sized ?? undefined;
}

/** Sums demands per function. */
export function mergeDemands(ds: readonly Demand[]): Demand[] {
  const by = new Map<PlannedFunction, number>();
  for (const d of ds) by.set(d.fn, (by.get(d.fn) ?? 0) + d.rate);
  return [...by].filter(([, r]) => r > 0).map(([fn, rate]) => ({ fn, rate }));
}

/** Rate served per function by a layout (after sizing). */
export function servedRates(gpus: readonly GpuState[]): Map<PlannedFunction, number> {
  const out = new Map<PlannedFunction, number>();
  for (const gpu of gpus) {
    for (const g of gpu.gpulets) for (const d of g.demands) out.set(d.fn, (out.get(d.fn) ?? 0) + d.rate);
  }
  return out;
}

/** A deep copy (sized results are immutable and shared). */
export function cloneGpu(gpu: GpuState): GpuState {
  return {
    gpulets: gpu.gpulets.map((g) => ({ part: g.part, demands: g.demands.map((d) => ({ ...d })), sized: g.sized })),
  };
}
