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
import {
  type AsyncCall,
  type AsyncCalls,
  AsyncRefused,
  CallRunner,
  finished,
  retryable,
  type RunnerOptions,
  type RunOutcome,
} from "./call_runner.ts";

export interface AsyncOptions extends RunnerOptions {
  /** Where the database and the bodies go (created). */
  dir: string;
  /** Most calls accepted and not finished (429 beyond). Default 10,000. */
  maxPending?: number;
  /** How long finished calls are kept (ms). Default 24 h. */
  keepMs?: number;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** The queue's one message: which call to run. */
interface Trigger {
  id: string;
}

/** Async invocations on one node: Deno KV records and queue, bodies and outputs as files. */
export class AsyncInvocations implements AsyncCalls {
  private pending = 0;
  private readonly runner: CallRunner;

  private constructor(private readonly kv: Deno.Kv, private readonly opts: AsyncOptions) {
    this.runner = new CallRunner(opts);
  }

  /** Opens (or creates) the store under `opts.dir`; calls are accepted, and run once {@link start}ed. */
  static async open(opts: AsyncOptions): Promise<AsyncInvocations> {
    await Deno.mkdir(opts.dir, { recursive: true });
    return new AsyncInvocations(await Deno.openKv(`${opts.dir}/async.sqlite3`), opts);
  }

  /** Starts running calls (once the functions are deployed) and triggers again every one left unfinished. */
  async start(): Promise<void> {
    this.kv.listenQueue((m: Trigger) => this.runner.track(this.runCall(m.id)));
    await this.recover();
  }

  /** Accepts a call: stored, queued, answered with its record at once. */
  async submit(fn: string, body: Uint8Array, o: { callbackUrl?: string; idempotencyKey?: string } = {}) {
    if (this.runner.closed) throw new AsyncRefused(503, "the server is shutting down");
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
    await this.runner.close();
    this.kv.close();
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
    const r = this.runner;
    if (attemptDelayMs > 0) await r.sleep(attemptDelayMs);
    const queued = async () => {
      const e = await this.kv.get<AsyncCall>(["call", id]);
      return !r.closed && e.value?.status === "queued" ? e : undefined; // else finished, or taken
    };
    const first = await queued();
    if (!first) return;
    await r.slot();
    let outcome: RunOutcome, call: AsyncCall;
    try {
      await r.gap(first.value!.function);
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
      r.release();
    }
    if (retryable(outcome) && "error" in outcome) {
      if (r.closed) {
        // Shutting down: left queued, run again at the next start.
        await this.kv.set(["call", id], { ...call, status: "queued" });
        return;
      }
      if (call.tries < r.maxTries) {
        await this.kv.set(["call", id], { ...call, status: "queued", code: outcome.code, error: outcome.error });
        return this.runCall(id, r.retryDelayMs(call.tries));
      }
    }
    await this.finish(call, outcome);
  }

  private async finish(call: AsyncCall, outcome: RunOutcome): Promise<void> {
    if ("json" in outcome) await Deno.writeFile(this.outputPath(call.id), outcome.json);
    const done = finished(call, outcome);
    const keep = { expireIn: this.keepMs() };
    const op = this.kv.atomic().set(["call", call.id], done, keep);
    // Failed for good: also in the dead-letter list, for an operator to look at.
    if (done.status === "failed") op.set(["dead", call.id], done, keep);
    await op.commit();
    this.pending--;
    await Deno.remove(this.bodyPath(call.id)).catch(() => {});
    if (!call.callbackUrl) return;
    const callback = await this.runner.postCallback(done, await this.output(call.id));
    await this.kv.set(["call", call.id], { ...done, callback }, keep);
  }
}
