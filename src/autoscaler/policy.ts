/**
 * When to re-plan (pure): the current plan was made for a demand per function (with headroom); observed
 * rates outside that band trigger a re-plan.
 *
 * - Up, fast: a function's short-window count exceeds its planned rate by more than Poisson noise
 *   (`z` standard deviations), or its smoothed rate exceeds the planned rate. A burst gets capacity within
 *   about one short window, not the original's 20 s epochs.
 * - Down, calm: a function whose smoothed rate (with headroom) stays below `downThreshold` of its planned
 *   rate for `calmMs` is re-planned down; GPUs are released only after that calm period, so a steady load
 *   with noise never flaps.
 * - At most one re-plan per `minIntervalMs`. Every function keeps at least `minRate` so it keeps a warm
 *   gpu-let while idle.
 */
import type { Rates } from "./rate_monitor.ts";

/** Autoscaler knobs. */
export interface ScalePolicyOptions {
  /** Plan for observed rate × (1 + headroom). */
  headroom: number;
  /** Standard deviations of Poisson noise a short-window count must exceed the plan by to scale up. */
  z: number;
  /** Short window (ms) the counts are over (the rate monitor's). */
  shortMs: number;
  /** Re-plan down when smoothed × (1 + headroom) < planned × downThreshold ... */
  downThreshold: number;
  /** ... continuously for this long (ms). */
  calmMs: number;
  /**
   * A drop far below the plan (smoothed × (1 + headroom) < planned × this) needs only `fastCalmMs`: a load
   * that fell by more than half is no Poisson wobble, and every second of waiting holds idle GPUs.
   */
  fastDownThreshold?: number;
  fastCalmMs?: number;
  /** Least time between two re-plans (ms). */
  minIntervalMs: number;
  /** Least planned rate of a function (req/s). */
  minRate: number;
}

/**
 * Defaults: 10 % headroom, z = 3 over 1 s, down below 60 % for 20 s (below 50 %: 5 s), re-plans at least 1 s
 * apart. Plans are sized for p99 under random arrivals (`planner/tail.ts`), so headroom only covers how far
 * the rate can move before the next re-plan; it was 25 % when plans held on averages only.
 */
export const DEFAULT_SCALE_POLICY: ScalePolicyOptions = {
  headroom: 0.1,
  z: 3,
  shortMs: 1000,
  downThreshold: 0.6,
  calmMs: 20_000,
  fastDownThreshold: 0.5,
  fastCalmMs: 5_000,
  minIntervalMs: 1000,
  minRate: 1,
};

/** What the policy remembers between decisions. */
export interface ScaleState {
  /** The demand (req/s) the current plan was made for, per function. */
  planned: Map<string, number>;
  /** When the last re-plan was made (ms). */
  lastReplanAt: number;
  /** Since when each function has been below the down band (ms). */
  lowSince: Map<string, number>;
  /** Since when each function has been below the fast-down band (ms). */
  farSince?: Map<string, number>;
}

/** A fresh state for a plan made for `planned` at `now`. */
export function scaleState(planned: Map<string, number>, now: number): ScaleState {
  return { planned: new Map(planned), lastReplanAt: now, lowSince: new Map() };
}

/** The policy's answer. */
export type ScaleDecision =
  | { kind: "hold" }
  | { kind: "replan"; direction: "up" | "down" | "new"; reason: string; demand: Map<string, number> };

/** Length (ms) of the rate monitor's "recent" window (DEFAULT_RATE_OPTIONS.recentMs). */
const RECENT_MS = 300;

/** One standard deviation of a rate measured over `windowMs` (its Poisson count's). */
function poissonSd(rate: number, windowMs: number): number {
  return Math.sqrt((rate * 1000) / windowMs);
}

/** A rate measured over `windowMs`, less one standard deviation of its Poisson count. */
function lowerBound(rate: number, windowMs: number): number {
  return Math.max(0, rate - poissonSd(rate, windowMs));
}

/**
 * Rate to plan for, given observed rates. The windowed rates count one standard deviation less: a burst of
 * noise in a 300 ms window would otherwise set the plan far above the load, and the next calm period would
 * take it back (flapping under a steady load).
 */
export function target(rates: Rates, opts: ScalePolicyOptions): number {
  const observed = Math.max(
    rates.smoothed,
    lowerBound(rates.short, opts.shortMs),
    lowerBound(rates.recent ?? 0, RECENT_MS),
  );
  return Math.max(opts.minRate, observed * (1 + opts.headroom));
}

/**
 * Decides whether to re-plan now. `rates` has every deployed function (a function missing from `planned` is
 * new and is planned at once). Updates `state.lowSince`; the caller calls {@link committed} once a re-plan
 * is applied.
 */
export function decide(
  state: ScaleState,
  rates: ReadonlyMap<string, Rates>,
  now: number,
  opts: ScalePolicyOptions = DEFAULT_SCALE_POLICY,
): ScaleDecision {
  const demand = new Map(state.planned);
  for (const name of [...demand.keys()]) if (!rates.has(name)) demand.delete(name);
  const fresh = [...rates.keys()].filter((n) => !state.planned.has(n));
  const removed = [...state.planned.keys()].filter((n) => !rates.has(n));
  const up: string[] = [];
  const down: string[] = [];
  const windowS = opts.shortMs / 1000;
  for (const [name, r] of rates) {
    const planned = state.planned.get(name);
    if (planned === undefined) {
      demand.set(name, target(r, opts));
      continue;
    }
    const expected = planned * windowS;
    const count = r.short * windowS;
    // A slow creep shows in the smoothed rate first; while it still decays from a drop the short window is
    // below the plan, and that is no reason to go back up.
    if (count > expected + opts.z * Math.sqrt(Math.max(expected, 1)) || (r.smoothed > planned && r.short > planned)) {
      up.push(name);
      state.lowSince.delete(name);
      state.farSince?.delete(name);
      demand.set(name, Math.max(planned, target(r, opts)));
      continue;
    }
    // A drop far below the plan is read from the short window (its count plus one standard deviation): the
    // smoothed rate takes seconds to follow it down, GPUs held all the while.
    const shortHigh = r.short + poissonSd(r.short, opts.shortMs);
    const far = opts.fastDownThreshold !== undefined && planned > opts.minRate &&
      Math.min(r.smoothed, shortHigh) * (1 + opts.headroom) < planned * opts.fastDownThreshold;
    const low = far || (r.smoothed * (1 + opts.headroom) < planned * opts.downThreshold && planned > opts.minRate);
    if (!low) {
      state.lowSince.delete(name);
      state.farSince?.delete(name);
      continue;
    }
    const since = state.lowSince.get(name) ?? now;
    state.lowSince.set(name, since);
    // The fast path still needs the drop to have lasted `fastCalmMs` in full below the far threshold.
    const farSince = far ? (state.farSince?.get(name) ?? now) : undefined;
    if (far) (state.farSince ??= new Map()).set(name, farSince!);
    else state.farSince?.delete(name);
    const fast = far && now - farSince! >= (opts.fastCalmMs ?? opts.calmMs);
    if (fast || now - since >= opts.calmMs) {
      down.push(name);
      // After a fast drop the smoothed rate still lags behind: plan for the short window's (high) estimate.
      const observed = fast ? Math.min(r.smoothed, Math.max(shortHigh, r.recent ?? 0)) : r.smoothed;
      demand.set(name, Math.max(opts.minRate, observed * (1 + opts.headroom)));
    }
  }
  if (fresh.length > 0 || removed.length > 0) {
    const what = [...fresh.map((n) => `${n} deployed`), ...removed.map((n) => `${n} removed`)];
    return { kind: "replan", direction: "new", reason: what.join(", "), demand };
  }
  if (now - state.lastReplanAt < opts.minIntervalMs) return { kind: "hold" };
  if (up.length > 0) {
    const what = up.map((n) => `${n} ${fmt(rates.get(n)!)} > planned ${state.planned.get(n)!.toFixed(1)}/s`);
    return { kind: "replan", direction: "up", reason: what.join("; "), demand };
  }
  if (down.length > 0) {
    const what = down.map((n) =>
      `${n} ${rates.get(n)!.smoothed.toFixed(1)}/s < ${opts.downThreshold} × planned ${
        state.planned.get(n)!.toFixed(1)
      }/s for ${((now - state.lowSince.get(n)!) / 1000).toFixed(1)} s`
    );
    return { kind: "replan", direction: "down", reason: what.join("; "), demand };
  }
  return { kind: "hold" };
}

function fmt(r: Rates): string {
  return `at ${r.short.toFixed(1)}/s now, ${r.smoothed.toFixed(1)}/s smoothed`;
}

/** Records that a re-plan for `demand` was applied at `now`. */
export function committed(state: ScaleState, demand: ReadonlyMap<string, number>, now: number): void {
  // A function whose planned rate changed starts a new calm period; the others keep theirs.
  for (const name of [...state.lowSince.keys()]) {
    if (demand.get(name) !== state.planned.get(name)) {
      state.lowSince.delete(name);
      state.farSince?.delete(name);
    }
  }
  state.planned = new Map(demand);
  state.lastReplanAt = now;
}
