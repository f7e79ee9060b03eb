/**
 * The open-loop load generator: requests leave on a schedule (Poisson or Gamma gaps, rates from a
 * {@link Schedule}) whether or not earlier ones were answered, as real clients do. Latency is measured from
 * the moment a request was due, so a slow server cannot hide its queueing (no coordinated omission).
 */
import { seededRandom } from "../planner/random.ts";
import { nextGapMs } from "./arrivals.ts";
import { Connection, type PreparedRequest } from "./http.ts";
import type { Schedule } from "./schedule.ts";
import { percentile } from "./stats.ts";

/** A function to load, with its pre-encoded request and the SLO its answers are judged by. */
export interface LoadTarget {
  name: string;
  request: PreparedRequest;
  /** Answers later than this (ms) do not count as good. */
  sloMs: number;
  /** An app's: the functions its stages call (their server-side counts go beside the app's in the report). */
  stages?: string[];
}

export interface LoadOptions {
  url: URL;
  targets: LoadTarget[];
  schedule: Schedule;
  /** Coefficient of variation of the gaps: 1 = Poisson, > 1 bursty (Gamma). */
  cv?: number;
  seed?: number;
  /** Length of the run (s); default the schedule's last point + 10 s. */
  seconds?: number;
  /** After the last send, how long to wait for answers before counting the rest as lost (ms). */
  graceMs?: number;
  /** Connections open at most; beyond, requests wait for one (and that wait counts in their latency). */
  maxConnections?: number;
  /** Samples GPUs in use once a second (e.g. from `GET /admin/plan`). */
  sampleGpus?: () => Promise<number | undefined>;
  /** Called once per second with the second just finished. */
  progress?: (s: LoadSecond, elapsedS: number) => void;
}

/** Counts over a set of requests. */
export interface LoadStats {
  sent: number;
  answered: number;
  ok: number;
  /** 429s: shed by admission. */
  rejected: number;
  /** Other statuses (4xx, 5xx) by code. */
  errors: Record<string, number>;
  /** Sent and never answered (connection failures included). */
  lost: number;
  /** 2xx within the SLO. */
  good: number;
  /** good / sent. */
  attainment: number;
  /** good per second of the run. */
  goodput: number;
  p50Ms: number | null;
  p99Ms: number | null;
  /** How fast 429s came back (ms): shedding should take a few ms, not a queue's worth of time. */
  rejectP50Ms: number | null;
  rejectP99Ms: number | null;
}

/** One second of the run (by send time). */
export interface LoadSecond {
  t: number;
  sent: number;
  ok: number;
  good: number;
  rejected: number;
  errors: number;
  attainment: number | null;
  gpus: number | null;
}

/** What a run measured. */
export interface LoadReport {
  seconds: number;
  cv: number;
  seed: number;
  overall: LoadStats;
  functions: Record<string, LoadStats>;
  timeline: LoadSecond[];
  /**
   * Per app loaded: each function its stages call, as the server counted it over the run (all its callers;
   * an app's stage call counts as within when answered by its budget's deadline).
   */
  stages?: Record<string, Record<string, { calls: number; within: number }>>;
}

interface Outcome {
  fn: number;
  due: number;
  status: number;
  ms: number;
}

/** A pool of keep-alive connections. */
class Pool {
  private readonly idle: Connection[] = [];
  private open = 0;
  private readonly waiters: ((c: Connection) => void)[] = [];

  constructor(private readonly url: URL, private readonly max: number) {}

  async take(): Promise<Connection> {
    const c = this.idle.pop();
    if (c) return c;
    if (this.open < this.max) {
      this.open++;
      try {
        return await Connection.open(this.url);
      } catch (e) {
        this.open--;
        throw e;
      }
    }
    return await new Promise((r) => this.waiters.push(r));
  }

  give(c: Connection): void {
    const w = this.waiters.shift();
    if (w) w(c);
    else this.idle.push(c);
  }

  /** A broken connection is dropped; a waiter gets a fresh one. */
  drop(c: Connection): void {
    c.close();
    this.open--;
    const w = this.waiters.shift();
    if (w) {
      this.open++;
      Connection.open(this.url).then(w, () => {
        this.open--;
      });
    }
  }

  close(): void {
    for (const c of this.idle.splice(0)) c.close();
  }
}

function stats(outcomes: readonly Outcome[], sent: number, sloMs: (fn: number) => number, seconds: number): LoadStats {
  const errors: Record<string, number> = {};
  let ok = 0, rejected = 0, good = 0;
  const lat: number[] = [];
  const rejectLat: number[] = [];
  for (const o of outcomes) {
    if (o.status >= 200 && o.status < 300) {
      ok++;
      lat.push(o.ms);
      if (o.ms <= sloMs(o.fn)) good++;
    } else if (o.status === 429) {
      rejected++;
      rejectLat.push(o.ms);
    } else if (o.status > 0) errors[o.status] = (errors[o.status] ?? 0) + 1;
  }
  lat.sort((a, b) => a - b);
  rejectLat.sort((a, b) => a - b);
  const answered = outcomes.filter((o) => o.status > 0).length;
  return {
    sent,
    answered,
    ok,
    rejected,
    errors,
    lost: sent - answered,
    good,
    attainment: sent ? good / sent : 1,
    goodput: good / seconds,
    p50Ms: percentile(lat, 0.5),
    p99Ms: percentile(lat, 0.99),
    rejectP50Ms: percentile(rejectLat, 0.5),
    rejectP99Ms: percentile(rejectLat, 0.99),
  };
}

/** Runs the schedule against the server; resolves with the report once every request is answered or lost. */
export async function runOpenLoop(opts: LoadOptions): Promise<LoadReport> {
  const cv = opts.cv ?? 1;
  const seed = opts.seed ?? 1;
  const seconds = opts.seconds ?? opts.schedule.end() + 10;
  const pool = new Pool(opts.url, opts.maxConnections ?? 512);
  const targets = opts.targets;
  const random = seededRandom(seed);
  const outcomes: Outcome[] = [];
  const sentBy = new Array(targets.length).fill(0);
  const perSecond = Array.from({ length: Math.ceil(seconds) }, (_, t) => ({
    t,
    sent: 0,
    ok: 0,
    good: 0,
    rejected: 0,
    errors: 0,
    gpus: null as number | null,
  }));
  const inflight = new Set<Promise<void>>();
  const start = performance.now();

  const send = (fn: number, due: number): void => {
    sentBy[fn]++;
    const sec = perSecond[Math.min(perSecond.length - 1, Math.floor((due - start) / 1000))];
    sec.sent++;
    const p = (async () => {
      let status = 0;
      let conn: Connection | undefined;
      try {
        conn = await pool.take();
        status = await conn.request(targets[fn].request);
        pool.give(conn);
      } catch {
        if (conn) pool.drop(conn);
      }
      const ms = performance.now() - due;
      outcomes.push({ fn, due, status, ms });
      if (status >= 200 && status < 300) {
        sec.ok++;
        if (ms <= targets[fn].sloMs) sec.good++;
      } else if (status === 429) sec.rejected++;
      else sec.errors++;
    })();
    inflight.add(p);
    p.finally(() => inflight.delete(p));
  };

  // Next due time (ms since start) of each function; rates are re-read at every arrival.
  const gap = (fn: number, at: number) => {
    const rate = opts.schedule.rateAt(targets[fn].name, at / 1000);
    if (rate > 0) return nextGapMs(rate, cv, random);
    // Idle: look again at the next boundary (or in 100 ms for a ramp from 0).
    const next = opts.schedule.boundaries().find((b) => b * 1000 > at);
    return next === undefined ? Infinity : Math.max(1, next * 1000 - at);
  };
  const due = targets.map((_, i) => gap(i, 0));
  let lastSecond = -1;
  let sampling: Promise<void> | undefined;
  const endMs = seconds * 1000;
  for (;;) {
    const now = performance.now() - start;
    if (now >= endMs) break;
    for (let i = 0; i < targets.length; i++) {
      while (due[i] <= now && due[i] < endMs) {
        const at = due[i];
        // Arrivals fall on a schedule of their own; a rate of 0 at `at` is a pause, not a request.
        if (opts.schedule.rateAt(targets[i].name, at / 1000) > 0) send(i, start + at);
        due[i] = at + gap(i, at);
      }
    }
    const second = Math.floor(now / 1000);
    if (second !== lastSecond) {
      if (lastSecond >= 0) opts.progress?.(secondOf(perSecond[lastSecond]), now / 1000);
      lastSecond = second;
      if (opts.sampleGpus && !sampling) {
        const slot = perSecond[second];
        sampling = opts.sampleGpus().then((g) => {
          if (slot) slot.gpus = g ?? null;
        }, () => {}).finally(() => (sampling = undefined));
      }
    }
    const next = Math.min(...due, endMs);
    await new Promise((r) => setTimeout(r, Math.max(0, Math.min(next - (performance.now() - start), 50))));
  }
  // Wait for answers, up to the grace period; whatever is still out then is lost.
  const graceEnd = performance.now() + (opts.graceMs ?? 30_000);
  while (inflight.size > 0 && performance.now() < graceEnd) {
    await Promise.race([Promise.all(inflight), new Promise((r) => setTimeout(r, 100))]);
  }
  await sampling;
  pool.close();
  const byFn = targets.map((t, i) => stats(outcomes.filter((o) => o.fn === i), sentBy[i], () => t.sloMs, seconds));
  return {
    seconds,
    cv,
    seed,
    overall: stats(outcomes, sentBy.reduce((a, b) => a + b, 0), (fn) => targets[fn].sloMs, seconds),
    functions: Object.fromEntries(targets.map((t, i) => [t.name, byFn[i]])),
    timeline: perSecond.map(secondOf),
  };
}

function secondOf(s: Omit<LoadSecond, "attainment">): LoadSecond {
  return { ...s, attainment: s.sent ? s.good / s.sent : null };
}
