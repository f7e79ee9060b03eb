/**
 * Async invocations in a cluster, as OpenFaaS runs them: a JetStream work queue. A submit on any node writes
 * the call's record to KV and publishes its body to the stream `GPULET_ASYNC` with the call id as the
 * message id (JetStream drops a duplicate within its window); every node pulls from one shared consumer, so
 * each message goes to one node at a time. A node claims the call in its record, runs it when the function
 * has a gap, stores the output in the object store, marks the record done and only then acks: a node that
 * dies mid-way leaves the message unacked, JetStream delivers it again after `ack_wait`, and the next node
 * finds the record done (ack, nothing run) or not (run). Failures worth another run are nak'd with a delay;
 * after `maxTries` deliveries the call fails for good and its message goes to `GPULET_ASYNC_DEAD`.
 */
import { headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import {
  AckPolicy,
  type Consumer,
  DiscardPolicy,
  jetstream,
  type JetStreamClient,
  jetstreamManager,
  type JsMsg,
  RetentionPolicy,
} from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import { type ObjectStore, Objm } from "@nats-io/obj";
import {
  type AsyncCall,
  type AsyncCalls,
  AsyncRefused,
  CallRunner,
  finished,
  retryable,
  type RunnerOptions,
  type RunOutcome,
} from "../async/call_runner.ts";

export const ASYNC_STREAM = "GPULET_ASYNC";
export const DEAD_STREAM = "GPULET_ASYNC_DEAD";
const CONSUMER = "async-workers";
const CALLS_BUCKET = "gpulet-calls";
const OUTPUTS_STORE = "gpulet-outputs";
/** A delivery not acked in this long goes to another node (ms); a call waiting for a gap says it is alive. */
const ACK_WAIT_MS = 30_000;
/** Pulls wait at most this long (ms): short, so a pull survives a stream leader's death (nats-server 2.9). */
const PULL_EXPIRES_MS = 1000;
const DAY_MS = 24 * 60 * 60 * 1000;
/** A stop waits this long for the calls running (ms); those not done are delivered again elsewhere. */
const CLOSE_WAIT_MS = 10_000;
const NS_PER_MS = 1_000_000;

export interface JetStreamCallsOptions extends RunnerOptions {
  /** This node's name (recorded on the calls it runs). */
  node: string;
  replicas: number;
  /** Most calls waiting in the stream (429 beyond). Default 10,000. */
  maxPending?: number;
  /** How long finished calls are kept (ms). Default 24 h. */
  keepMs?: number;
  /** A delivery not acked in this long goes to another node (ms). Default 30 s (set when the consumer is made). */
  ackWaitMs?: number;
}

/** Async calls on JetStream: any node takes them, any node runs them, once. */
export class JetStreamCalls implements AsyncCalls {
  private readonly runner: CallRunner;
  private consumer?: Consumer;
  private pulling?: Promise<void>;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly kv: KV,
    private readonly outputs: ObjectStore,
    private readonly opts: JetStreamCallsOptions,
  ) {
    this.runner = new CallRunner(opts);
  }

  /** Makes (or finds) the streams, the consumer, the call records and the output store. */
  static async open(nc: NatsConnection, opts: JetStreamCallsOptions): Promise<JetStreamCalls> {
    const jsm = await jetstreamManager(nc);
    const keepMs = opts.keepMs ?? DAY_MS;
    const ensure = async (name: string, subjects: string[], extra: Record<string, unknown>) => {
      try {
        await jsm.streams.info(name);
      } catch {
        await jsm.streams.add({ name, subjects, num_replicas: opts.replicas, ...extra });
      }
    };
    await ensure(ASYNC_STREAM, ["gpulet.async.>"], {
      retention: RetentionPolicy.Workqueue,
      max_msgs: opts.maxPending ?? 10_000,
      discard: DiscardPolicy.New,
      duplicate_window: 2 * 60_000 * NS_PER_MS,
    });
    await ensure(DEAD_STREAM, ["gpulet.async-dead.>"], { max_age: keepMs * NS_PER_MS });
    try {
      await jsm.consumers.info(ASYNC_STREAM, CONSUMER);
    } catch {
      await jsm.consumers.add(ASYNC_STREAM, {
        durable_name: CONSUMER,
        ack_policy: AckPolicy.Explicit,
        ack_wait: (opts.ackWaitMs ?? ACK_WAIT_MS) * NS_PER_MS,
        max_deliver: -1, // tries are counted here, so a call's last try can be recorded before it is dropped
      });
    }
    const kv = await new Kvm(nc).create(CALLS_BUCKET, { replicas: opts.replicas, ttl: keepMs });
    const outputs = await new Objm(nc).create(OUTPUTS_STORE, { replicas: opts.replicas, ttl: keepMs * NS_PER_MS });
    return new JetStreamCalls(nc, jetstream(nc), kv, outputs, opts);
  }

  async submit(fn: string, body: Uint8Array, o: { callbackUrl?: string; idempotencyKey?: string } = {}) {
    if (this.runner.closed) throw new AsyncRefused(503, "the server is shutting down");
    const room = (this.nc.info?.max_payload ?? 1024 * 1024) - 64 * 1024;
    if (body.byteLength > room) {
      throw new AsyncRefused(413, `an async call's body is at most ${room} bytes in a cluster (NATS max_payload)`);
    }
    let id: string = crypto.randomUUID();
    if (o.idempotencyKey) {
      // One key, one call: the first submit with it takes it, the others answer that call.
      const key = `key.${fn}.${await digest(o.idempotencyKey)}`;
      try {
        await this.kv.create(key, id);
      } catch {
        const known = (await this.kv.get(key))?.string();
        const call = known ? await this.get(fn, known) : undefined;
        if (call) return call;
        if (known) id = known; // taken, its record not written yet: publish under the same id (de-duplicated)
      }
    }
    const call: AsyncCall = {
      id,
      function: fn,
      status: "queued",
      tries: 0,
      createdAt: new Date().toISOString(),
      ...(o.callbackUrl ? { callbackUrl: o.callbackUrl } : {}),
    };
    await this.kv.put(`call.${id}`, JSON.stringify(call));
    const h = natsHeaders();
    h.set("x-call-id", id);
    try {
      await this.js.publish(`gpulet.async.${fn}`, body, { msgID: id, headers: h });
    } catch (e) {
      await this.kv.delete(`call.${id}`).catch(() => {});
      const full = /maximum messages/i.test((e as Error).message);
      throw full
        ? new AsyncRefused(429, `${this.opts.maxPending ?? 10_000} async calls are waiting already`, 1)
        : new AsyncRefused(503, `the async queue is unavailable: ${(e as Error).message}`, 1);
    }
    return call;
  }

  async get(fn: string, id: string): Promise<AsyncCall | undefined> {
    const e = await this.kv.get(`call.${id}`);
    if (!e || e.operation !== "PUT") return undefined;
    const call = e.json<AsyncCall>();
    return call.function === fn ? call : undefined;
  }

  async output(id: string): Promise<Uint8Array | undefined> {
    return (await this.outputs.getBlob(id)) ?? undefined;
  }

  async start(): Promise<void> {
    const js = jetstream(this.nc);
    this.consumer = await js.consumers.get(ASYNC_STREAM, CONSUMER);
    this.pulling = this.pull();
  }

  /** Stops pulling; waits for the calls running (at most {@link CLOSE_WAIT_MS}: NATS may be gone). */
  async close(): Promise<void> {
    await within(this.runner.close(), CLOSE_WAIT_MS);
    // A pull ends by its expiry, or never when NATS is gone.
    await within(this.pulling ?? Promise.resolve(), PULL_EXPIRES_MS + 500);
  }

  /** Pulls one message whenever a slot is free; runs each in the background. */
  private async pull(): Promise<void> {
    const r = this.runner;
    while (!r.closed) {
      await r.slot();
      if (r.closed) {
        r.release();
        break;
      }
      let m: JsMsg | null = null;
      try {
        m = await this.consumer!.next({ expires: PULL_EXPIRES_MS });
      } catch {
        await r.sleep(200); // no stream leader for now: look again
      }
      if (!m) {
        r.release();
        continue;
      }
      // A failure here (KV paused by an election, the connection gone) leaves the message un-acked: it is
      // delivered again after ack_wait. It must never become an unhandled rejection, which ends the process.
      r.track(
        this.handle(m).catch((e) => this.opts.log?.(`async: a call failed to run: ${(e as Error).message}`))
          .finally(() => r.release()),
      );
    }
  }

  /** One delivery of a call: done already (ack), or claimed, run, recorded, acked — or nak'd for later. */
  private async handle(m: JsMsg): Promise<void> {
    const r = this.runner;
    const id = m.headers?.get("x-call-id") ?? "";
    const entry = await this.kv.get(`call.${id}`).catch(() => null);
    if (!entry || entry.operation !== "PUT") {
      m.term("no record"); // expired or never written: nothing to report to
      return;
    }
    const rec = entry.json<AsyncCall>();
    if (rec.status === "succeeded" || rec.status === "failed") {
      m.ack(); // a node finished it and died before its ack
      return;
    }
    await r.gap(rec.function, () => m.working());
    if (r.closed) {
      m.nak(); // another node takes it now
      return;
    }
    const call: AsyncCall = {
      ...rec,
      status: "running",
      tries: m.info.deliveryCount,
      node: this.opts.node,
      startedAt: rec.startedAt ?? new Date().toISOString(),
    };
    await this.kv.put(`call.${id}`, JSON.stringify(call));
    let outcome: RunOutcome;
    try {
      outcome = await this.opts.run(call.function, m.data);
    } catch (e) {
      outcome = { code: 500, error: `the call could not run: ${(e as Error).message}` };
    }
    if (retryable(outcome) && "error" in outcome && call.tries < r.maxTries && !r.closed) {
      await this.kv.put(
        `call.${id}`,
        JSON.stringify({ ...call, status: "queued", code: outcome.code, error: outcome.error }),
      );
      m.nak(r.retryDelayMs(call.tries));
      return;
    }
    if (retryable(outcome) && r.closed) {
      await this.kv.put(`call.${id}`, JSON.stringify({ ...call, status: "queued" }));
      m.nak();
      return;
    }
    if ("json" in outcome) await this.outputs.putBlob({ name: id }, outcome.json);
    const done = finished(call, outcome);
    await this.kv.put(`call.${id}`, JSON.stringify(done));
    if (done.status === "failed") {
      const h = natsHeaders();
      h.set("x-call-id", id);
      await this.js.publish(`gpulet.async-dead.${call.function}`, m.data, { headers: h }).catch(() => {});
    }
    await m.ackAck().catch(() => m.ack());
    if (!call.callbackUrl) return;
    const callback = await r.postCallback(done, "json" in outcome ? outcome.json : undefined);
    await this.kv.put(`call.${id}`, JSON.stringify({ ...done, callback })).catch(() => {});
  }
}

/** Waits for `p`, for at most `ms`. */
async function within(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([p.catch(() => {}), new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

/** A KV-safe token for an idempotency key (KV keys take fewer characters than the key may have). */
async function digest(s: string): Promise<string> {
  const bytes = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(s)));
  return Array.from(bytes.subarray(0, 16), (b) => b.toString(16).padStart(2, "0")).join("");
}
