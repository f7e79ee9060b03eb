/**
 * Per-function admission: a bounded FIFO queue with deadlines, and SLO-aware dynamic batching onto the
 * function's gpu-lets.
 *
 * A gpu-let is sent a batch when (a) the queue holds a full batch, or (b) it is idle and the batching window
 * (`maxDelayMs` since the oldest request; 0 = work-conserving) has passed, or (c) waiting any longer would
 * make the oldest request miss its deadline. Up to `depth` batches may be in flight per gpu-let: the next one
 * is sent just before the current one should end (so it is waiting when the gpu-let frees up), and not at
 * all while the current one overruns its estimate (a stuck batch does not take more requests with it).
 * Requests that can no longer meet their deadline are answered 504 before they take a batch slot. At the
 * door, a request is answered 429 when the queue is full or when the work ahead of it would not finish
 * within its deadline.
 *
 * A batch lost with its gpu-let (the process died, or gave no answer within `hangTimeoutMs` and was killed)
 * is queued again, once, at the head of the queue when another gpu-let of the function is serving; otherwise
 * its requests are answered 503. Either way every accepted request gets exactly one answer.
 */
import type { Executor } from "../runtime/executor.ts";
import { answerOf } from "./answer.ts";
import { frameBatch } from "./batch_frame.ts";
import { DrainRate } from "./drain_rate.ts";
import { leastLatencyMs, predictedFinishMs } from "./estimates.ts";
import type { DispatchObserver } from "./events.ts";
import { runBounded } from "./hang_guard.ts";
import type { LatencyEstimate } from "./latency.ts";
import { type Answer, mergeByDeadline, type Payload, type Pending, type Timing } from "./request.ts";

/** One gpu-let serving this function, as routing sees it. */
export interface Slot {
  worker: Executor;
  /** Planned batch size (rows). */
  batch: number;
  /** Batching window after the oldest request arrives; 0 dispatches as soon as the gpu-let is idle. */
  maxDelayMs: number;
  /** Batches in flight at most. */
  depth: number;
  latency: LatencyEstimate;
}

export interface DispatcherOptions {
  name: string;
  /** Most rows waiting in the queue; beyond it requests get 429. */
  maxQueueRows: number;
  observer?: DispatchObserver;
  /** Called when a batch failed because its worker was lost. */
  onWorkerLost?: (worker: Executor, error: Error) => void;
  /** A batch with no answer after this long (ms) means the gpu-let hangs: it is killed. Default: none. */
  hangTimeoutMs?: number;
  /** Admit every request: no 429 at the door, no early 504 (shadow runs of benchmarks). */
  admitAll?: boolean;
}

/** Safety margin (ms) kept between the predicted finish of a batch and the oldest deadline. */
const DEADLINE_MARGIN_MS = 1;
/** How long (ms) before a busy gpu-let should be free its next batch is sent (covers the hand-over). */
const PIPELINE_LEAD_MS = 2;
/** Admission plans to use this much of a deadline; the rest absorbs the noise of latency estimates. */
const ADMIT_FRACTION = 0.8;
/** The answer of a request whose client went away (HTTP connection closed, gRPC call cancelled). */
const CLIENT_GONE: Answer = Object.freeze({ status: 499, error: "client closed the request" });

export class Dispatcher {
  private queue: Pending[] = [];
  private queuedRows = 0;
  private slots: Slot[] = [];
  private timer?: ReturnType<typeof setTimeout>;
  private timerAt = Infinity;
  private closed = false;
  private idleWaiters: (() => void)[] = [];
  /** Per gpu-let, when its in-flight batches should all be done (performance.now() ms), from estimates. */
  private readonly busyUntil = new Map<Executor, number>();
  /** What the gpu-lets really drain while requests wait (`drain_rate.ts`). */
  private readonly drainRate = new DrainRate();

  constructor(private readonly opts: DispatcherOptions) {}

  /** Rows waiting. */
  get depth(): number {
    return this.queuedRows;
  }

  /** Batches in flight over all gpu-lets. */
  get inflight(): number {
    return this.slots.reduce((n, s) => n + s.worker.inflight, 0);
  }

  /** Replaces the gpu-lets this function routes to (atomically, for the next batch on). */
  setSlots(slots: Slot[]): void {
    const changed = slots.length !== this.slots.length || slots.some((s, i) => s.worker !== this.slots[i].worker);
    if (changed) this.drainRate.reset();
    this.slots = slots;
    for (const w of this.busyUntil.keys()) if (!slots.some((s) => s.worker === w)) this.busyUntil.delete(w);
    this.pump();
  }

  /** Current gpu-lets. */
  getSlots(): readonly Slot[] {
    return this.slots;
  }

  /**
   * Queues a request the controller had whole at `arrivedAt` (performance.now() ms; default now): its
   * deadline runs from then, so the controller's own work on it (decoding tensors) counts. Resolves with
   * its one answer.
   */
  submit(
    payload: Payload,
    rows: number,
    deadlineMs: number,
    signal?: AbortSignal,
    arrivedAt?: number,
  ): Promise<Answer> {
    const now = performance.now();
    arrivedAt ??= now;
    if (this.closed) return Promise.resolve({ status: 503, error: `function ${this.opts.name} is shutting down` });
    if (signal?.aborted) {
      // Gone before it was queued (e.g. a gRPC call cancelled while it was decoded): nothing to run.
      this.opts.observer?.answer({ status: 499, totalMs: 0, withinSlo: false });
      return Promise.resolve(CLIENT_GONE);
    }
    if (this.queuedRows + rows > this.opts.maxQueueRows && this.queue.length > 0) {
      this.opts.observer?.answer({ status: 429, totalMs: 0, withinSlo: false });
      return Promise.resolve({
        status: 429,
        error: `queue of ${this.opts.name} is full (${this.queuedRows} rows waiting)`,
        retryAfterS: 1,
      });
    }
    const waitMs = this.queue.length > 0 && !this.opts.admitAll
      ? predictedFinishMs(this.slots, this.busyUntil, this.drainRate, this.queuedRows + rows, now)
      : 0;
    if (waitMs > 0 && now - arrivedAt + waitMs > deadlineMs * ADMIT_FRACTION) {
      // Shed at the door: queueing it would only turn it into a 504 later, after it delayed others.
      this.opts.observer?.answer({ status: 429, totalMs: 0, withinSlo: false });
      return Promise.resolve({
        status: 429,
        error: `function ${this.opts.name} is overloaded: ${this.queuedRows} rows wait, ~${waitMs.toFixed(0)} ms ` +
          `to serve, SLO ${deadlineMs} ms`,
        retryAfterS: 1,
      });
    }
    return new Promise<Answer>((resolve) => {
      const p: Pending = {
        payload,
        rows,
        arrivedAt,
        deadline: arrivedAt + deadlineMs,
        resolve: (answer) => {
          if (p.onAbort) signal?.removeEventListener("abort", p.onAbort);
          // Answered after its client went away (it had already run): dropped, and counted as canceled.
          const a: Answer = signal?.aborted && answer.status === 200 ? CLIENT_GONE : answer;
          const answeredAt = performance.now();
          this.opts.observer?.answer({
            status: a.status,
            totalMs: answeredAt - p.arrivedAt,
            withinSlo: a.status === 200 && answeredAt <= p.deadline,
            timing: a.timing,
          });
          resolve(a);
        },
        signal,
      };
      if (signal) {
        // A client that went away does not keep its place (or take a batch slot).
        p.onAbort = () => {
          const i = this.queue.indexOf(p);
          if (i >= 0) {
            this.queue.splice(i, 1);
            this.queuedRows -= p.rows;
            p.resolve(CLIENT_GONE);
          }
        };
        signal.addEventListener("abort", p.onAbort, { once: true });
      }
      this.enqueue(p);
      this.queuedRows += rows;
      this.pump();
    });
  }

  /**
   * Queues a request in deadline order (earliest deadline first). Direct callers share one SLO, so they
   * arrive in deadline order and are appended; an app's stage call carries what is left of the app's budget
   * and may go ahead of them.
   */
  private enqueue(p: Pending): void {
    const q = this.queue;
    if (q.length === 0 || q[q.length - 1].deadline <= p.deadline) {
      q.push(p);
      return;
    }
    let lo = 0, hi = q.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (q[mid].deadline <= p.deadline) lo = mid + 1;
      else hi = mid;
    }
    q.splice(lo, 0, p);
  }

  /**
   * When `rows` more rows submitted now would be answered at the soonest (ms from now): behind the queue
   * when one waits, else the fastest batch. An app's admission adds these up over its stages.
   */
  expectedMs(rows: number): number {
    if (this.queue.length === 0) return leastLatencyMs(this.slots);
    return predictedFinishMs(this.slots, this.busyUntil, this.drainRate, this.queuedRows + rows, performance.now());
  }

  /**
   * Answers 504 to queued requests that cannot finish by their deadline even if run alone right now. The
   * queue is in deadline order (see `enqueue`; requests queued again after a lost batch go back to the
   * head, and they are the oldest), so this looks only at the head.
   */
  private expire(now: number): void {
    if (this.queue.length === 0 || this.opts.admitAll) return;
    const minLatency = leastLatencyMs(this.slots);
    while (this.queue.length > 0 && now + minLatency > this.queue[0].deadline) {
      const p = this.queue.shift()!;
      this.queuedRows -= p.rows;
      p.resolve({
        status: 504,
        error: `deadline cannot be met: waited ${(now - p.arrivedAt).toFixed(1)} ms, ` +
          `needs ≥ ${minLatency.toFixed(1)} ms more, SLO ${(p.deadline - p.arrivedAt).toFixed(0)} ms`,
      });
    }
  }

  /** Decides what to send now, and when to look again. */
  private pump(): void {
    const now = performance.now();
    this.expire(now);
    let wakeAt = Infinity;
    // Least-loaded gpu-lets first.
    const slots = this.slots.length > 1
      ? [...this.slots].sort((a, b) => a.worker.inflight - b.worker.inflight)
      : this.slots;
    for (const s of slots) {
      while (this.queue.length > 0 && s.worker.inflight < s.depth) {
        if (s.worker.inflight > 0) {
          // Pipelining: only just before the batches in flight should end, and not while they overrun.
          const until = this.busyUntil.get(s.worker) ?? now;
          if (now < until - PIPELINE_LEAD_MS) {
            wakeAt = Math.min(wakeAt, until - PIPELINE_LEAD_MS);
            break;
          }
          if (now > until + PIPELINE_LEAD_MS + 0.5 * s.latency.estimate(s.batch)) break;
        }
        const oldest = this.queue[0];
        const full = this.queuedRows >= s.batch;
        const idle = s.worker.inflight === 0;
        const windowEnd = oldest.arrivedAt + s.maxDelayMs;
        const lastStart = oldest.deadline - s.latency.estimate(s.batch) - DEADLINE_MARGIN_MS;
        if (full || (idle && now >= windowEnd) || now >= lastStart) {
          this.send(s, this.take(s.batch));
        } else {
          wakeAt = Math.min(wakeAt, idle ? Math.min(windowEnd, lastStart) : lastStart);
          break;
        }
      }
    }
    if (this.queue.length > 0) {
      // Also look again when the head would expire, e.g. while no gpu-let is available.
      wakeAt = Math.min(wakeAt, this.queue[0].deadline - leastLatencyMs(this.slots));
      this.wakeAt(wakeAt, now);
    } else this.cancelWake(); // nothing waits: a pending timer would only keep the process busy
    if (this.queue.length === 0 && this.inflight === 0) this.notifyIdle();
  }

  /**
   * Makes sure `pump` runs again by `at`. A timer already due no later is kept (an early look is harmless):
   * re-arming a timer on every request costs the serving loop more than the look.
   */
  private wakeAt(at: number, now: number): void {
    if (!Number.isFinite(at) || (this.timer !== undefined && this.timerAt <= at)) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.pump();
    }, Math.max(0, at - now));
  }

  private cancelWake(): void {
    if (this.timer === undefined) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
  }

  /** Takes requests from the head up to `maxRows` rows (always at least one request). */
  private take(maxRows: number): Pending[] {
    const batch: Pending[] = [];
    let rows = 0;
    while (this.queue.length > 0) {
      const p = this.queue[0];
      if (batch.length > 0 && rows + p.rows > maxRows) break;
      this.queue.shift();
      this.queuedRows -= p.rows;
      rows += p.rows;
      batch.push(p);
    }
    return batch;
  }

  private async send(slot: Slot, batch: Pending[]): Promise<void> {
    const sentAt = performance.now();
    const { items, body, rows } = frameBatch(batch);
    const w = slot.worker;
    this.busyUntil.set(w, Math.max(sentAt, this.busyUntil.get(w) ?? 0) + slot.latency.estimate(rows));
    try {
      const result = await runBounded(w, items, body, this.opts.hangTimeoutMs);
      const doneAt = performance.now();
      if (w.inflight === 0) this.busyUntil.delete(w); // free now
      // The gpu-let was busy for the whole batch, pre- and post-processing included.
      // (A batch whose every request was refused in preprocessing says nothing about the model.)
      if (result.rows > 0) slot.latency.observe(result.rows, result.workerMs);
      this.drainRate.note(rows, doneAt, this.queue.length > 0);
      this.opts.observer?.batch({
        executor: w.id,
        rows: result.rows,
        requests: batch.length,
        computeMs: result.computeMs,
        workerMs: result.workerMs,
      });
      try {
        const answered = new Set<number>();
        for (const r of result.items) {
          // One answer per request of this batch: an id out of range or seen twice is not one.
          if (!Number.isInteger(r.id) || r.id < 0 || r.id >= batch.length || answered.has(r.id)) continue;
          answered.add(r.id);
          const p = batch[r.id];
          const timing: Timing = {
            queueMs: sentAt - p.arrivedAt,
            // Sent to the gpu-let until it started on it (behind the batch before, and the hand-over).
            batchWaitMs: Math.max(0, doneAt - sentAt - result.workerMs),
            workerMs: result.workerMs,
            computeMs: result.computeMs,
            totalMs: doneAt - p.arrivedAt,
            batchRows: rows,
          };
          p.resolve(answerOf(r, result.body, timing));
        }
        // A request the gpu-let's result left out still gets its one answer.
        for (const [i, p] of batch.entries()) {
          if (!answered.has(i)) {
            p.resolve({ status: 500, error: "the gpu-let's result had no answer for this request" });
          }
        }
      } finally {
        result.release?.(); // every output was copied out
      }
    } catch (e) {
      const error = e instanceof Error ? e : new Error(String(e));
      this.lost(slot, batch, error);
    } finally {
      this.pump();
    }
  }

  /**
   * A batch was lost with its gpu-let: stop routing to it, queue each request again at the head (once) if
   * another gpu-let serves this function, else answer 503.
   */
  private lost(slot: Slot, batch: Pending[], error: Error): void {
    this.slots = this.slots.filter((s) => s.worker !== slot.worker);
    this.busyUntil.delete(slot.worker);
    this.drainRate.reset();
    const canRetry = this.slots.some((s) => !s.worker.stopping) && !this.closed;
    const again: Pending[] = [];
    for (const p of batch) {
      if (canRetry && !p.retried) {
        p.retried = true;
        again.push(p);
      } else {
        p.resolve({ status: 503, error: `the gpu-let running this request failed: ${error.message}` });
      }
    }
    // Back in deadline order: batches lost from two gpu-lets may come back newest first.
    this.queue = mergeByDeadline(again, this.queue);
    this.queuedRows += again.reduce((n, p) => n + p.rows, 0);
    if (again.length) this.opts.observer?.retried?.(again.length);
    this.opts.onWorkerLost?.(slot.worker, error);
  }

  private notifyIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Resolves once the queue is empty and nothing is in flight. */
  drain(): Promise<void> {
    if (this.queue.length === 0 && this.inflight === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** Stops admitting; queued requests are answered 503. In-flight batches still complete. */
  close(reason: string): void {
    this.closed = true;
    for (const p of this.queue.splice(0)) p.resolve({ status: 503, error: reason });
    this.queuedRows = 0;
    this.cancelWake();
    this.notifyIdle();
  }
}
