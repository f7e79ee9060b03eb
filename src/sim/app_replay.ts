/**
 * Applications request by request (issue 22; pure, seeded): a fixed plan's GPUs as request-level gpu-lets
 * (`RequestLevel`), app requests arriving at each app's rate (Poisson, or Gamma with a CV), each level's
 * stage calls sent the moment the level before has answered in full, and the app answered when its last
 * level has. A stage makes its fan-out's integer part of calls, plus one with the chance of its fraction
 * (two crops per frame on average: two). Functions called directly get arrivals of their own, and every call
 * is routed and batched with them, as the live dispatcher mixes them. Reports each app's end-to-end latency
 * beside each function's, so a plan's app-level promise can be checked, not only its stages'.
 */
import { nextGapMs } from "../loadgen/arrivals.ts";
import { latencyStats } from "../loadgen/stats.ts";
import type { InterferenceModel } from "../planner/interference.ts";
import type { LatencyModel } from "../planner/latency_model.ts";
import type { Plan } from "../planner/plan.ts";
import { planSplitsFor, withAppCalls, type WorkloadApp } from "../planner/app_demand.ts";
import type { PlannedFunction } from "../planner/sizing.ts";
import { seededRandom } from "../planner/random.ts";
import { RequestLevel } from "./request_level.ts";
import type { ReplayOptions } from "./request_sim.ts";

/** A function as the replay serves it: its model, the SLO it was planned for, its direct callers' rate. */
export interface AppReplayFunction {
  name: string;
  model: string;
  sloMs: number;
  directRate: number;
}

/** An app: its rate, SLO and levels of stage calls (function, mean calls per app request). */
export interface AppReplayApp {
  name: string;
  rate: number;
  sloMs: number;
  levels: { function: string; fanOut: number }[][];
}

/** What an app's requests, or a function's calls, saw. */
export interface LatencySummary {
  name: string;
  /** Requests (or calls) per second that arrived. */
  rate: number;
  sloMs: number;
  n: number;
  p50Ms: number;
  p99Ms: number;
  /** Share answered within the SLO (a request with a shed call is not). */
  within: number;
  /** Requests with a call no gpu-let of the plan serves. */
  shed: number;
}

/** The apps' end-to-end results and each function's (all its calls: from apps and direct). */
export interface AppReplay {
  apps: LatencySummary[];
  functions: LatencySummary[];
}

interface AppRequest {
  app: number;
  startMs: number;
  level: number;
  pending: number;
  shed: boolean;
}

/** Replays `plan` with the apps' and the functions' arrivals for `opts.seconds` virtual seconds. */
export function replayApps(
  plan: Plan,
  functions: readonly AppReplayFunction[],
  apps: readonly AppReplayApp[],
  latency: LatencyModel,
  interference: InterferenceModel | undefined,
  opts: ReplayOptions,
): AppReplay {
  const random = seededRandom(opts.seed);
  const cv = opts.cv ?? 1;
  const scale = opts.rateScale ?? 1;
  const horizon = opts.seconds * 1000;
  const fnLatencies = new Map(functions.map((f) => [f.name, [] as number[]]));
  const fnShed = new Map(functions.map((f) => [f.name, 0]));
  const appLatencies = apps.map(() => [] as number[]);
  const appShed = apps.map(() => 0);
  const requests: AppRequest[] = [];
  const answered: { tag: number; t: number }[] = [];
  const level = new RequestLevel(functions, latency, interference, random, (name, arrival, ms, tag) => {
    fnLatencies.get(name)!.push(ms);
    if (tag >= 0) answered.push({ tag, t: arrival + ms });
  });
  level.use(plan, 0);

  /** Sends request `id`'s next level with calls at `t`, or answers it when none is left. */
  const nextLevel = (id: number, t: number) => {
    const r = requests[id];
    const levels = apps[r.app].levels;
    for (r.level++; r.level < levels.length; r.level++) {
      for (const s of levels[r.level]) {
        const calls = Math.floor(s.fanOut) + (random() < s.fanOut - Math.floor(s.fanOut) ? 1 : 0);
        for (let k = 0; k < calls; k++) {
          if (level.arrive(s.function, t, id)) r.pending++;
          else {
            r.shed = true;
            fnShed.set(s.function, fnShed.get(s.function)! + 1);
          }
        }
      }
      if (r.pending > 0) return;
    }
    if (r.shed) appShed[r.app]++;
    appLatencies[r.app].push(r.shed ? Infinity : t - r.startMs);
  };
  // Answers arrive inside the engines' loops; the calls they release are sent after, in time order.
  const flush = () => {
    for (let a = answered.shift(); a; a = answered.shift()) {
      if (--requests[a.tag].pending === 0) nextLevel(a.tag, a.t);
    }
  };

  // Arrival sources: every app, then every function called directly; each with its next arrival time.
  const sources = [
    ...apps.map((a, i) => ({ rate: a.rate * scale, app: i, fn: "" })),
    ...functions.filter((f) => f.directRate > 0).map((f) => ({ rate: f.directRate * scale, app: -1, fn: f.name })),
  ].filter((s) => s.rate > 0).map((s) => ({ ...s, next: nextGapMs(s.rate, cv, random) }));
  for (;;) {
    let src = -1, tArrival = Infinity;
    sources.forEach((s, i) => {
      if (s.next < horizon && s.next < tArrival) [src, tArrival] = [i, s.next];
    });
    const tEnd = level.nextEventMs();
    if (src < 0 && tEnd === Infinity) break;
    if (tEnd <= tArrival) level.advance(tEnd);
    else {
      const s = sources[src];
      s.next += nextGapMs(s.rate, cv, random);
      if (s.app >= 0) {
        requests.push({ app: s.app, startMs: tArrival, level: -1, pending: 0, shed: false });
        nextLevel(requests.length - 1, tArrival);
      } else if (!level.arrive(s.fn, tArrival)) fnShed.set(s.fn, fnShed.get(s.fn)! + 1);
    }
    flush();
  }

  const seconds = opts.seconds;
  /** `arrived`: how many came (a shed call has no latency; a shed app request counts as Infinity). */
  const summary = (name: string, sloMs: number, raw: number[], shed: number, arrived: number): LatencySummary => {
    return { name, rate: arrived / seconds, sloMs, ...latencyStats(raw.sort((a, b) => a - b), sloMs), shed };
  };
  return {
    apps: apps.map((a, i) => summary(a.name, a.sloMs, appLatencies[i], appShed[i], appLatencies[i].length)),
    functions: functions.map((f) => {
      const l = fnLatencies.get(f.name)!, shed = fnShed.get(f.name)!;
      return summary(f.name, f.sloMs, l, shed, l.length + shed);
    }),
  };
}

/**
 * Replays a plan made for a workload with apps (`planWithApps`: the plan carries each app's split and the
 * app rate it was made for): `functions` are the workload's (their own rates are the direct callers'), each
 * judged against the SLO it was planned for; each app end to end against its own. Undefined when the plan
 * carries no split for one of the apps.
 */
export function replayAppPlan(
  plan: Plan,
  functions: readonly PlannedFunction[],
  apps: readonly WorkloadApp[],
  latency: LatencyModel,
  interference: InterferenceModel | undefined,
  opts: ReplayOptions,
): AppReplay | undefined {
  const splits = planSplitsFor(plan, apps);
  if (!splits) return undefined;
  const atRates = apps.map((a, i) => ({ ...a, rate: splits[i].rate }));
  const planned = withAppCalls(functions, atRates, splits, 1, plan.tail?.cv ?? 1);
  return replayApps(
    plan,
    planned.map((f, i) => ({ name: f.name, model: f.model, sloMs: f.sloMs, directRate: functions[i].rate })),
    atRates,
    latency,
    interference,
    opts,
  );
}

/** A replay with apps as a readable table: each app end to end, then each function's calls. */
export function formatAppReplay(r: AppReplay): string {
  const row = (kind: string, s: LatencySummary) =>
    `${kind.padEnd(9)} ${s.name.padEnd(20)} ${s.rate.toFixed(1).padStart(8)}  ${String(s.n).padStart(7)}  ${
      s.p50Ms.toFixed(2).padStart(7)
    }  ${s.p99Ms.toFixed(2).padStart(7)}  ${s.sloMs.toFixed(2).padStart(7)}  ${
      (100 * s.within).toFixed(2).padStart(6)
    } %` +
    (s.shed ? `  (${s.shed} shed)` : "");
  return [
    "          name                   rate/s        n   p50 ms   p99 ms   SLO ms   within",
    ...r.apps.map((a) => row("app", a)),
    ...r.functions.map((f) => row("function", f)),
  ].join("\n");
}
