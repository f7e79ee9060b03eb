/**
 * What every async store shares, whatever keeps its state (Deno KV on one node, JetStream in a cluster):
 * the call record, the outcome of a run and which failures are worth another run, the slots that bound how
 * many calls run at once, the wait for a gap in the function's queue, and the callback post.
 */
import { z } from "zod";

/** A call's state. */
export type AsyncStatus = "queued" | "running" | "succeeded" | "failed";

/** One async call, as `GET …/results/{id}` shows it (the output is read apart). */
export interface AsyncCall {
  id: string;
  function: string;
  status: AsyncStatus;
  /** Runs tried so far. */
  tries: number;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  /** The function's HTTP status when finished (200, or its error's). */
  code?: number;
  error?: string;
  callbackUrl?: string;
  /** The callback's outcome: the status it got, or why it failed. */
  callback?: { code?: number; error?: string; tries: number };
  /** The node that ran it (in a cluster). */
  node?: string;
}

/** One run's outcome: the function's JSON answer, or its error. */
export type RunOutcome = { code: 200; json: Uint8Array } | { code: number; error: string };

/** The async calls of a server, whatever stores them: what the HTTP routes use. */
export interface AsyncCalls {
  /** Accepts a call: stored and queued, answered with its record at once (throws {@link AsyncRefused}). */
  submit(fn: string, body: Uint8Array, o?: { callbackUrl?: string; idempotencyKey?: string }): Promise<AsyncCall>;
  /** A call of `fn` by id (undefined when unknown, or of another function). */
  get(fn: string, id: string): Promise<AsyncCall | undefined>;
  /** A finished call's output JSON (undefined while it has none). */
  output(id: string): Promise<Uint8Array | undefined>;
  /** Starts running calls (once the functions are deployed). */
  start(): Promise<void>;
  /** Stops taking and starting calls; waits for the running ones. */
  close(): Promise<void>;
}

/** What a store needs to run calls. */
export interface RunnerOptions {
  /** Runs one call (the same path as `POST /functions/{name}/invoke`). */
  run: (fn: string, body: Uint8Array) => Promise<RunOutcome>;
  /** Whether `fn` has room now (nothing of it queued): async work waits for such a gap. */
  hasGap: (fn: string) => boolean;
  /** Most calls running at once on this node. Default 4. */
  maxRunning?: number;
  /** Runs of a call before it fails for good (the dead-letter record). Default 5. */
  maxTries?: number;
  /** Waits before the 2nd, 3rd, … run (ms); the last repeats. */
  retryDelaysMs?: number[];
  /** Waits before the callback's 2nd, 3rd, … post (ms); its length + 1 posts in all. */
  callbackDelaysMs?: number[];
  log?: (line: string) => void;
}

/** A call refused at submit (the HTTP status says why). */
export class AsyncRefused extends Error {
  constructor(readonly status: number, message: string, readonly retryAfterS?: number) {
    super(message);
  }
}

/** A callback URL: absolute http(s). */
export const CallbackUrl = z.url({ protocol: /^https?$/, error: "X-Callback-Url must be an absolute http(s) URL" });
/** An idempotency key: what a client may send to make a retried submit the same call. */
export const IdempotencyKey = z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, {
  error: "Idempotency-Key must be 1-128 letters, digits or ._:-",
});
/** A call id (what `submit` gives). */
export const CallId = z.uuid({ error: "a call id is a UUID" });

/** Statuses after which a later run may succeed: shed, not ready, past its deadline, a lost gpu-let. */
const RETRYABLE = new Set([429, 500, 502, 503, 504]);
/** How often a call waiting for a gap looks again (ms). */
const GAP_POLL_MS = 5;
/** A call waits at most this long for a gap (ms), then runs anyway: admission still protects the SLOs. */
const MAX_GAP_WAIT_MS = 30_000;

/** Whether a failed run is worth another. */
export function retryable(o: RunOutcome): boolean {
  return "error" in o && RETRYABLE.has(o.code);
}

/** The record of a call that just finished with `outcome`. */
export function finished(call: AsyncCall, outcome: RunOutcome): AsyncCall {
  const done: AsyncCall = {
    ...call,
    status: outcome.code === 200 ? "succeeded" : "failed",
    code: outcome.code,
    finishedAt: new Date().toISOString(),
  };
  if ("error" in outcome) done.error = outcome.error;
  else delete done.error;
  return done;
}

/** Slots, gaps, sleeps that end at close, and callbacks: the run-time half every store shares. */
export class CallRunner {
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly sleepers = new Set<() => void>();
  private readonly inFlight = new Set<Promise<void>>();
  closed = false;

  constructor(readonly opts: RunnerOptions) {}

  /** Keeps `p` until it settles, so {@link close} can wait for it. */
  track(p: Promise<void>): Promise<void> {
    this.inFlight.add(p);
    return p.finally(() => this.inFlight.delete(p));
  }

  /** Stops: waiters and sleepers wake at once; resolves when every tracked run has ended. */
  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.waiting.splice(0)) w();
    for (const wake of [...this.sleepers]) wake();
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  /** Waits until fewer than `maxRunning` calls run, and takes a slot ({@link release} gives it back). */
  async slot(): Promise<void> {
    while (this.running >= (this.opts.maxRunning ?? 4) && !this.closed) {
      await new Promise<void>((r) => this.waiting.push(r));
    }
    this.running++;
  }

  release(): void {
    this.running--;
    this.waiting.shift()?.();
  }

  /** Whether a slot is free now. */
  get hasSlot(): boolean {
    return this.running < (this.opts.maxRunning ?? 4);
  }

  /** Waits until `fn` has nothing queued (synchronous requests first), for at most MAX_GAP_WAIT_MS. */
  async gap(fn: string, whileWaiting?: () => void): Promise<void> {
    const until = performance.now() + MAX_GAP_WAIT_MS;
    let ticks = 0;
    while (!this.opts.hasGap(fn) && performance.now() < until && !this.closed) {
      await this.sleep(GAP_POLL_MS);
      if (++ticks % 1000 === 0) whileWaiting?.();
    }
  }

  /** The wait before run `tries + 1` (ms). */
  retryDelayMs(tries: number): number {
    const delays = this.opts.retryDelaysMs ?? [200, 1000, 5000];
    return delays[Math.min(Math.max(0, tries - 1), delays.length - 1)];
  }

  get maxTries(): number {
    return this.opts.maxTries ?? 5;
  }

  /** Resolves after `ms`, or at once when the runner closes (its timer cleared). */
  sleep(ms: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }

  /** Posts a finished call's outcome to its callback URL, retrying a few times; says how it went. */
  async postCallback(call: AsyncCall, output: Uint8Array | undefined): Promise<AsyncCall["callback"]> {
    const delays = this.opts.callbackDelaysMs ?? [500, 2000, 5000];
    const body = call.status === "succeeded"
      ? output ?? new Uint8Array()
      : new TextEncoder().encode(JSON.stringify({ error: call.error }));
    let outcome: AsyncCall["callback"] = { tries: 0 };
    for (let i = 0; i <= delays.length; i++) {
      if (i > 0) await this.sleep(delays[i - 1]);
      if (this.closed && i > 0) break;
      try {
        const res = await fetch(call.callbackUrl!, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "x-call-id": call.id,
            "x-function-name": call.function,
            "x-function-status": String(call.code),
          },
          body: body as Uint8Array<ArrayBuffer>,
          signal: AbortSignal.timeout(10_000),
        });
        await res.body?.cancel();
        outcome = { code: res.status, tries: i + 1 };
        if (res.ok) break;
      } catch (e) {
        outcome = { error: (e as Error).message, tries: i + 1 };
      }
    }
    return outcome;
  }
}
