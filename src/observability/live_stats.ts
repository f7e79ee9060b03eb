/**
 * Rolling per-second statistics of each function and gpu-let, for the dashboard and the gauges that need a
 * recent window (SLO attainment, measured rate, utilisation). Pure: the clock is injected.
 */
import type { AnswerEvent, BatchEvent } from "../admission/events.ts";

/** Latencies kept per function and second for percentiles (a uniform sample beyond this). */
const LATENCY_SAMPLE = 1000;

interface Second {
  /** Every answered request, refused ones included. */
  arrivals: number;
  /** 200 within the SLO. */
  good: number;
  /** 200 after the deadline. */
  late: number;
  /** 429: shed at the door or queue full. */
  rejected: number;
  /** 504: the deadline could not be met. */
  expired: number;
  /** 5xx other than 504 (a gpu-let failed under it, shutting down). */
  failed: number;
  /** Latencies (ms) of 200s, a sample. */
  latencies: number[];
  seen: number;
}

/** One second of one function, as the dashboard plots it. */
export interface SecondPoint {
  /** Unix time (s) of the second. */
  t: number;
  /** Requests per second (all answers but client errors). */
  rate: number;
  /** p99 latency of its 200s (ms), null when none. */
  p99Ms: number | null;
  /** good / (good + late + 429 + 504 + 5xx), null when none. */
  attainment: number | null;
}

const empty = (): Second => ({
  arrivals: 0,
  good: 0,
  late: 0,
  rejected: 0,
  expired: 0,
  failed: 0,
  latencies: [],
  seen: 0,
});

/** The q-quantile of `xs` (nearest rank), null for none. */
export function quantile(xs: number[], q: number): number | null {
  if (xs.length === 0) return null;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

export class LiveStats {
  private readonly functions = new Map<string, Map<number, Second>>();
  private readonly busy = new Map<string, Map<number, number>>();

  /** Keeps `windowS` seconds; `now` gives ms since the epoch. */
  constructor(readonly windowS = 120, private readonly now: () => number = Date.now) {}

  private second(): number {
    return Math.floor(this.now() / 1000);
  }

  private bucket<T>(map: Map<number, T>, t: number, make: () => T): T {
    let b = map.get(t);
    if (b === undefined) {
      b = make();
      map.set(t, b);
      for (const k of map.keys()) if (k <= t - this.windowS) map.delete(k);
    }
    return b;
  }

  /** Counts one answer of `fn`. Client errors (4xx but 429) say nothing about serving and are left out. */
  recordAnswer(fn: string, e: AnswerEvent): void {
    if (e.status >= 400 && e.status < 500 && e.status !== 429) return;
    let perFn = this.functions.get(fn);
    if (!perFn) this.functions.set(fn, perFn = new Map());
    const s = this.bucket(perFn, this.second(), empty);
    s.arrivals++;
    if (e.status === 200) {
      if (e.withinSlo) s.good++;
      else s.late++;
      s.seen++;
      if (s.latencies.length < LATENCY_SAMPLE) s.latencies.push(e.totalMs);
      else {
        // Reservoir sampling keeps a uniform sample of the second's latencies.
        const i = Math.floor(Math.random() * s.seen);
        if (i < LATENCY_SAMPLE) s.latencies[i] = e.totalMs;
      }
    } else if (e.status === 429) s.rejected++;
    else if (e.status === 504) s.expired++;
    else if (e.status >= 500) s.failed++;
  }

  /** Adds a batch's worker time to its gpu-let's busy time. */
  recordBatch(e: BatchEvent): void {
    let perExec = this.busy.get(e.executor);
    if (!perExec) this.busy.set(e.executor, perExec = new Map());
    const t = this.second();
    perExec.set(t, (perExec.get(t) ?? 0) + e.workerMs);
    for (const k of perExec.keys()) if (k <= t - this.windowS) perExec.delete(k);
  }

  /** The last `seconds` complete seconds of `fn`, oldest first (seconds without answers included). */
  series(fn: string, seconds = 60): SecondPoint[] {
    const now = this.second();
    const perFn = this.functions.get(fn);
    const out: SecondPoint[] = [];
    for (let t = now - seconds; t < now; t++) {
      const s = perFn?.get(t);
      const judged = s ? s.good + s.late + s.rejected + s.expired + s.failed : 0;
      out.push({
        t,
        rate: s?.arrivals ?? 0,
        p99Ms: s ? quantile(s.latencies, 0.99) : null,
        attainment: judged > 0 ? s!.good / judged : null,
      });
    }
    return out;
  }

  /** Requests per second of `fn` over the last `seconds` complete seconds. */
  rate(fn: string, seconds = 10): number {
    return this.series(fn, seconds).reduce((n, p) => n + p.rate, 0) / seconds;
  }

  /** Share of `fn`'s requests over the last `seconds` answered 200 within the SLO (null: none). */
  attainment(fn: string, seconds = 60): number | null {
    const perFn = this.functions.get(fn);
    if (!perFn) return null;
    const now = this.second();
    let good = 0, judged = 0;
    for (let t = now - seconds; t < now; t++) {
      const s = perFn.get(t);
      if (!s) continue;
      good += s.good;
      judged += s.good + s.late + s.rejected + s.expired + s.failed;
    }
    return judged > 0 ? good / judged : null;
  }

  /** p99 latency (ms) of `fn`'s 200s over the last `seconds` (null: none). */
  p99(fn: string, seconds = 10): number | null {
    const perFn = this.functions.get(fn);
    if (!perFn) return null;
    const now = this.second();
    const all: number[] = [];
    for (let t = now - seconds; t < now; t++) all.push(...(perFn.get(t)?.latencies ?? []));
    return quantile(all, 0.99);
  }

  /** Busy share (0–1) of gpu-let executor `id` over the last `seconds` complete seconds. */
  utilisation(id: string, seconds = 5): number {
    const perExec = this.busy.get(id);
    if (!perExec) return 0;
    const now = this.second();
    let ms = 0;
    for (let t = now - seconds; t < now; t++) ms += perExec.get(t) ?? 0;
    return Math.min(1, ms / (seconds * 1000));
  }

  /** Functions with answers in the window. */
  names(): string[] {
    return [...this.functions.keys()];
  }

  /** Drops a removed function's history. */
  forget(fn: string): void {
    this.functions.delete(fn);
  }
}
