/**
 * How fast a function's gpu-lets really drain its queue while requests wait (rows per ms, an EWMA over the
 * gaps between batch ends). Admission plans with it where it is below the estimate from batch latencies:
 * the hand-over between batches and a neighbour on the core cost time no single batch's latency shows.
 */

/**
 * The measured rate counts down to this share of the estimated one, no further. Hand-overs and a neighbour on
 * the core cost 10-20 %; a drain far below that was a stall (GC, the serving loop busy taking in a burst, a
 * CPU hog for a moment), and it must not shed the next burst the gpu-lets can serve.
 */
export const DRAIN_FLOOR = 0.5;
/** Weight of the newest gap in the EWMA. */
const NEWEST = 0.1;

/** The measured drain rate of one function's queue. */
export class DrainRate {
  private rowsPerMs?: number;
  /** When the last batch ended with requests waiting (0: none did, or since a reset). */
  private lastBusyDoneAt = 0;

  /**
   * A batch of `rows` ended at `doneAt` (ms), with requests still `waiting` or not. Only a gap with requests
   * waiting throughout measures what the gpu-lets can drain (with an empty queue, batches end at the
   * arrival rate).
   */
  note(rows: number, doneAt: number, waiting: boolean): void {
    if (this.lastBusyDoneAt > 0) {
      const sample = rows / Math.max(1e-3, doneAt - this.lastBusyDoneAt);
      this.rowsPerMs = this.rowsPerMs === undefined ? sample : (1 - NEWEST) * this.rowsPerMs + NEWEST * sample;
    }
    this.lastBusyDoneAt = waiting ? doneAt : 0;
  }

  /** Forgets what was measured: the gpu-lets changed. */
  reset(): void {
    this.rowsPerMs = undefined;
    this.lastBusyDoneAt = 0;
  }

  /** The rate to plan with, given the estimate: the measured one where lower, never below the floor. */
  plannable(estimatedRowsPerMs: number): number {
    if (this.rowsPerMs === undefined) return estimatedRowsPerMs;
    return Math.min(estimatedRowsPerMs, Math.max(this.rowsPerMs, DRAIN_FLOOR * estimatedRowsPerMs));
  }
}
