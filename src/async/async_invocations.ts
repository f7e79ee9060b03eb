/**
 * Async invocations (OpenFaaS's shape): a call is accepted at once with an id, run later in the gaps that
 * synchronous traffic leaves, its result kept for `GET /async-functions/{name}/results/{id}` and posted to
 * its callback URL when it has one.
 *
 * On one node the state is Deno KV: a record per call (the truth: queued → running → succeeded | failed),
 * and Deno KV's queue as the trigger that runs it. The queue alone is not enough: a message whose handler
 * was running when the process died is not delivered again after a restart (measured with Deno 2.9.6), so
 * at start every call still queued or running is triggered again. A trigger claims its call with a
 * compare-and-set on the record, so a duplicate trigger does nothing and a call completes once. Bodies and
 * outputs are files beside the database: a Deno KV value holds at most 64 KiB.
 */
import { z } from "zod";

/** A call's state. */
export type AsyncStatus = "queued" | "running" | "succeeded" | "failed";

/** One async call, as `GET …/results/{id}` shows it (the output is read from its file). */
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
}

/** One run's outcome: the function's JSON answer, or its error and whether a later run may succeed. */
export type RunOutcome = { code: 200; json: Uint8Array } | { code: number; error: string };

export interface AsyncOptions {
  /** Where the database and the bodies go (created). */
  dir: string;
  /** Runs one call (the same path as `POST /functions/{name}/invoke`). */
  run: (fn: string, body: Uint8Array) => Promise<RunOutcome>;
  /** Whether `fn` has room now (nothing of it queued): async work waits for such a gap. */
  hasGap: (fn: string) => boolean;
  /** Most calls running at once on this node. Default 4. */
  maxRunning?: number;
  /** Most calls accepted and not finished (429 beyond). Default 10,000. */
  maxPending?: number;
  /** Runs of a call before it fails for good (the dead-letter record). Default 5. */
  maxTries?: number;
  /** Waits before the 2nd, 3rd, … run (ms); the last repeats. */
  retryDelaysMs?: number[];
  /** Waits before the callback's 2nd, 3rd, … post (ms); its length + 1 posts in all. */
  callbackDelaysMs?: number[];
  /** How long finished calls are kept (ms). Default 24 h. */
  keepMs?: number;
  log?: (line: string) => void;
}

/** Statuses after which a later run may succeed: shed, not ready, past its deadline, a lost gpu-let. */
const RETRYABLE = new Set([429, 500, 502, 503, 504]);
/** How often a call waiting for a gap looks again (ms). */
const GAP_POLL_MS = 5;
/** A call waits at most this long for a gap (ms), then runs anyway: admission still protects the SLOs. */
const MAX_GAP_WAIT_MS = 30_000;
const DAY_MS = 24 * 60 * 60 * 1000;

/** A callback URL: absolute http(s). */
export const CallbackUrl = z.url({ protocol: /^https?$/, error: "X-Callback-Url must be an absolute http(s) URL" });
/** An idempotency key: what a client may send to make a retried submit the same call. */
export const IdempotencyKey = z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, {
  error: "Idempotency-Key must be 1-128 letters, digits or ._:-",
});
/** A call id (what `submit` gives). */
export const CallId = z.uuid({ error: "a call id is a UUID" });

/** The queue's one message: which call to run. */
interface Trigger {
  id: string;
}

/** A call refused at submit (the HTTP status says why). */
export class AsyncRefused extends Error {
  constructor(readonly status: number, message: string, readonly retryAfterS?: number) {
    super(message);
  }
}

/** Async invocations on one node: Deno KV records and queue, bodies and outputs as files. */
export class AsyncInvocations {
  private running = 0;
  private pending = 0;
  private closed = false;
  private readonly waiting: (() => void)[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private readonly sleepers = new Set<() => void>();

  private constructor(private readonly kv: Deno.Kv, private readonly opts: AsyncOptions) {}

  /** Opens (or creates) the store under `opts.dir`; calls are accepted, and run once {@link start}ed. */
  static async open(opts: AsyncOptions): Promise<AsyncInvocations> {
    await Deno.mkdir(opts.dir, { recursive: true });
    return new AsyncInvocations(await Deno.openKv(`${opts.dir}/async.sqlite3`), opts);
  }

  /** Starts running calls (once the functions are deployed) and triggers again every one left unfinished. */
  async start(): Promise<void> {
    this.kv.listenQueue((m: Trigger) => this.track(this.runCall(m.id)));
    await this.recover();
  }

  /** Accepts a call: stored, queued, answered with its record at once. */
  async submit(fn: string, body: Uint8Array, o: { callbackUrl?: string; idempotencyKey?: string } = {}) {
    if (this.closed) throw new AsyncRefused(503, "the server is shutting down");
    if (o.idempotencyKey) {
      const known = await this.kv.get<string>(["key", fn, o.idempotencyKey]);
      if (known.value) {
        const call = await this.get(fn, known.value);
        if (call) return call;
      }
    }
    const maxPending = this.opts.maxPending ?? 10_000;
    if (this.pending >= maxPending) {
      throw new AsyncRefused(429, `${maxPending} async calls are waiting already`, 1);
    }
    const id = crypto.randomUUID();
    const call: AsyncCall = {
      id,
      function: fn,
      status: "queued",
      tries: 0,
      createdAt: new Date().toISOString(),
      ...(o.callbackUrl ? { callbackUrl: o.callbackUrl } : {}),
    };
    await Deno.writeFile(this.bodyPath(id), body);
    const op = this.kv.atomic().set(["call", id], call).enqueue({ id } satisfies Trigger);
    if (o.idempotencyKey) {
      // The key is taken by one call only: a concurrent submit with it loses and answers the winner's call.
      op.check({ key: ["key", fn, o.idempotencyKey], versionstamp: null })
        .set(["key", fn, o.idempotencyKey], id, { expireIn: this.keepMs() });
    }
    if (!(await op.commit()).ok) {
      await Deno.remove(this.bodyPath(id)).catch(() => {});
      const winner = (await this.kv.get<string>(["key", fn, o.idempotencyKey!])).value;
      const call = winner ? await this.get(fn, winner) : undefined;
      if (call) return call;
      throw new AsyncRefused(409, "a call with this Idempotency-Key is being accepted; retry");
    }
    this.pending++;
    return call;
  }

  /** A call of `fn` by id (undefined when unknown, or of another function). */
  async get(fn: string, id: string): Promise<AsyncCall | undefined> {
    const call = (await this.kv.get<AsyncCall>(["call", id])).value ?? undefined;
    return call?.function === fn ? call : undefined;
  }

  /** A finished call's output JSON (undefined while it has none). */
  async output(id: string): Promise<Uint8Array | undefined> {
    try {
      return await Deno.readFile(this.outputPath(id));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return undefined;
      throw e;
    }
  }

  /** Calls accepted and not finished. */
  get pendingCount(): number {
    return this.pending;
  }

  /** Stops taking and starting calls; waits for the running ones; closes the database. */
  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.waiting.splice(0)) w();
    for (const wake of [...this.sleepers]) wake();
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
    this.kv.close();
  }

  private track(p: Promise<void>): Promise<void> {
    this.inFlight.add(p);
    return p.finally(() => this.inFlight.delete(p));
  }

  private keepMs(): number {
    return this.opts.keepMs ?? DAY_MS;
  }

  private bodyPath(id: string): string {
    return `${this.opts.dir}/${id}.in.json`;
  }

  private outputPath(id: string): string {
    return `${this.opts.dir}/${id}.out.json`;
  }

  /** Triggers again every call queued or running (a restart lost its trigger); counts them as pending. */
  private async recover(): Promise<void> {
    let n = 0;
    for await (const e of this.kv.list<AsyncCall>({ prefix: ["call"] })) {
      if (e.value.status === "succeeded" || e.value.status === "failed") continue;
      const op = this.kv.atomic().check(e).set(e.key, { ...e.value, status: "queued" }).enqueue({ id: e.value.id });
      if ((await op.commit()).ok) n++;
    }
    this.pending += n;
    if (n > 0) this.opts.log?.(`async: ${n} unfinished call(s) queued again`);
  }

  /** Runs one call: waits for a slot and a gap, claims it, runs it (retrying what may pass), records it. */
  private async runCall(id: string, attemptDelayMs = 0): Promise<void> {
    if (attemptDelayMs > 0) await this.sleep(attemptDelayMs);
    const queued = async () => {
      const e = await this.kv.get<AsyncCall>(["call", id]);
      return !this.closed && e.value?.status === "queued" ? e : undefined; // else finished, or taken
    };
    const first = await queued();
    if (!first) return;
    await this.slot();
    let outcome: RunOutcome, call: AsyncCall;
    try {
      await this.gap(first.value!.function);
      // Claimed only now, so it shows as queued while it waits; a duplicate trigger loses here.
      const entry = await queued();
      if (!entry) return;
      call = { ...entry.value!, status: "running", tries: entry.value!.tries + 1 };
      call.startedAt ??= new Date().toISOString();
      if (!(await this.kv.atomic().check(entry).set(entry.key, call).commit()).ok) return;
      try {
        outcome = await this.opts.run(call.function, await Deno.readFile(this.bodyPath(id)));
      } catch (e) {
        outcome = { code: 500, error: `the call could not run: ${(e as Error).message}` };
      }
    } finally {
      this.release();
    }
    const maxTries = this.opts.maxTries ?? 5;
    const retryable = "error" in outcome && RETRYABLE.has(outcome.code);
    if ("error" in outcome && retryable && call.tries < maxTries && !this.closed) {
      await this.kv.set(["call", id], { ...call, status: "queued", code: outcome.code, error: outcome.error });
      const delays = this.opts.retryDelaysMs ?? [200, 1000, 5000];
      return this.runCall(id, delays[Math.min(call.tries - 1, delays.length - 1)]);
    }
    if (retryable && this.closed) {
      // Shutting down: left queued, run again at the next start.
      await this.kv.set(["call", id], { ...call, status: "queued" });
      return;
    }
    await this.finish(call, outcome);
  }

  private async finish(call: AsyncCall, outcome: RunOutcome): Promise<void> {
    if ("json" in outcome) await Deno.writeFile(this.outputPath(call.id), outcome.json);
    const done: AsyncCall = {
      ...call,
      status: outcome.code === 200 ? "succeeded" : "failed",
      code: outcome.code,
      finishedAt: new Date().toISOString(),
    };
    if ("error" in outcome) done.error = outcome.error;
    else delete done.error;
    const keep = { expireIn: this.keepMs() };
    const op = this.kv.atomic().set(["call", call.id], done, keep);
    // Failed for good: also in the dead-letter list, for an operator to look at.
    if (done.status === "failed") op.set(["dead", call.id], done, keep);
    await op.commit();
    this.pending--;
    await Deno.remove(this.bodyPath(call.id)).catch(() => {});
    if (call.callbackUrl) await this.postCallback(done);
  }

  /** Posts the result to the call's callback URL, retrying a few times; records how it went. */
  private async postCallback(call: AsyncCall): Promise<void> {
    const delays = this.opts.callbackDelaysMs ?? [500, 2000, 5000];
    const body = call.status === "succeeded"
      ? (await this.output(call.id)) ?? new Uint8Array()
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
    await this.kv.set(["call", call.id], { ...call, callback: outcome }, { expireIn: this.keepMs() });
  }

  /** Waits until fewer than `maxRunning` calls run. */
  private async slot(): Promise<void> {
    while (this.running >= (this.opts.maxRunning ?? 4) && !this.closed) {
      await new Promise<void>((r) => this.waiting.push(r));
    }
    this.running++;
  }

  private release(): void {
    this.running--;
    this.waiting.shift()?.();
  }

  /** Waits until `fn` has nothing queued (synchronous requests first), for at most MAX_GAP_WAIT_MS. */
  private async gap(fn: string): Promise<void> {
    const until = performance.now() + MAX_GAP_WAIT_MS;
    while (!this.opts.hasGap(fn) && performance.now() < until && !this.closed) await this.sleep(GAP_POLL_MS);
  }

  /** Resolves after `ms`, or at once when the store closes (its timer cleared). */
  private sleep(ms: number): Promise<void> {
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
}
