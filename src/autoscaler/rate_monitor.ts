/**
 * Arrival rates per function: a short sliding window (what is happening now: a burst shows within a second)
 * and an exponentially smoothed rate (what the load is: steady under Poisson noise). Time is passed in, so
 * the live controller and the simulator share it.
 */

/** Rate monitor knobs. */
export interface RateMonitorOptions {
  /** Bucket width (ms). */
  bucketMs: number;
  /** Short window (ms): the "now" rate. */
  shortMs: number;
  /** Time constant of the smoothed rate (ms). */
  tauMs: number;
  /** The most recent part of the short window (ms). */
  recentMs: number;
}

/** Defaults: 100 ms buckets, a 1 s window with its last 300 ms, 5 s smoothing. */
export const DEFAULT_RATE_OPTIONS: RateMonitorOptions = { bucketMs: 100, shortMs: 1000, tauMs: 5000, recentMs: 300 };

/** Rates of one function. */
export interface Rates {
  /** Arrivals per second over the short window. */
  short: number;
  /** Smoothed arrivals per second. */
  smoothed: number;
  /**
   * Arrivals per second over the last `recentMs` only: after a step up, the short window still averages in
   * the old rate, and scaling up to it would take a second re-plan.
   */
  recent?: number;
}

class Series {
  /** Counts of the buckets of the short window, oldest first; the last one is the current bucket. */
  readonly buckets: number[];
  /** Index (time / bucketMs) of the current bucket. */
  current: number;
  smoothed = 0;
  /** Time the smoothed rate was last brought up to date (ms). */
  smoothedAt: number;

  constructor(size: number, now: number, bucketMs: number) {
    this.buckets = new Array(size).fill(0);
    this.current = Math.floor(now / bucketMs);
    this.smoothedAt = this.current * bucketMs;
  }
}

/** Arrival rates per function name. */
export class RateMonitor {
  private readonly series = new Map<string, Series>();
  private readonly size: number;

  constructor(readonly options: RateMonitorOptions = DEFAULT_RATE_OPTIONS) {
    this.size = Math.max(1, Math.round(options.shortMs / options.bucketMs));
  }

  /** Records `count` arrivals of `fn` at `now` (ms, monotonic). */
  record(fn: string, now: number, count = 1): void {
    this.advance(this.seriesOf(fn, now), now).buckets[this.size - 1] += count;
  }

  /** The rates of `fn` at `now`; zero for a function never seen. */
  rates(fn: string, now: number): Rates {
    const s = this.series.get(fn);
    if (!s) return { short: 0, smoothed: 0 };
    this.advance(s, now);
    const total = s.buckets.reduce((a, b) => a + b, 0);
    // The current bucket is partly elapsed: the window is (size - 1) whole buckets plus that part.
    const { bucketMs } = this.options;
    const partial = Math.max(1, now - s.current * bucketMs);
    const elapsed = (this.size - 1) * bucketMs + partial;
    const k = Math.min(this.size, Math.max(1, Math.round(this.options.recentMs / bucketMs)));
    const recent = s.buckets.slice(this.size - k).reduce((a, b) => a + b, 0);
    return {
      short: (1000 * total) / elapsed,
      smoothed: s.smoothed,
      recent: (1000 * recent) / ((k - 1) * bucketMs + partial),
    };
  }

  /** Every function seen so far. */
  names(): string[] {
    return [...this.series.keys()];
  }

  /** Forgets a function (removed). */
  forget(fn: string): void {
    this.series.delete(fn);
  }

  private seriesOf(fn: string, now: number): Series {
    let s = this.series.get(fn);
    if (!s) this.series.set(fn, s = new Series(this.size, now, this.options.bucketMs));
    return s;
  }

  /** Closes whole buckets up to `now`, folding each into the smoothed rate. */
  private advance(s: Series, now: number): Series {
    const { bucketMs, tauMs } = this.options;
    const index = Math.floor(now / bucketMs);
    const steps = index - s.current;
    if (steps <= 0) return s;
    const decay = Math.exp(-bucketMs / tauMs);
    for (let i = 0; i < steps; i++) {
      // The bucket that just closed (or an empty one) updates the smoothed rate.
      const closed = i === 0 ? s.buckets[this.size - 1] : 0;
      s.smoothed = s.smoothed * decay + ((1000 * closed) / bucketMs) * (1 - decay);
      if (i < this.size) {
        s.buckets.shift();
        s.buckets.push(0);
      }
      // Long idle gaps: the remaining empty buckets only decay the smoothed rate.
      if (i >= this.size && steps - i > 1) {
        s.smoothed *= decay ** (steps - i - 1);
        break;
      }
    }
    s.current = index;
    s.smoothedAt = index * bucketMs;
    return s;
  }
}
