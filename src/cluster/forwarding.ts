/**
 * Node-to-node forwarding of data-plane HTTP requests over NATS request/reply, with one rule: every
 * forwarded request gets exactly one answer. The target acknowledges a request (`accepted`) before it
 * starts on it, and drops one that reaches it after the sender stopped waiting for that; so a request never
 * acknowledged never ran, and the sender may try it once elsewhere. Once acknowledged, it is answered by
 * the target, or with a clear 503 when the target dies first (its heartbeats stop), or 504 at the deadline.
 * Answers larger than one NATS message come in parts; requests larger than one go over HTTP to the target.
 */
import { createInbox, headers as natsHeaders, type Msg, type NatsConnection } from "@nats-io/transport-node";
import type { Subscription } from "@nats-io/transport-node";

/** The header that marks a forwarded request: it is served where it lands, never forwarded again. */
export const FORWARDED_HEADER = "x-gpulet-forwarded-from";

/** How long a target has to acknowledge a request before the sender gives up on it (ms). */
export const ACCEPT_WITHIN_MS = 500;

/** Request headers a forwarded request keeps (the rest are the front door's business). */
const KEPT_REQUEST_HEADERS = [
  "content-type",
  "inference-header-content-length",
  "x-callback-url",
  "idempotency-key",
  "x-gpulet-deadline-ms",
];
/** Headers room in a NATS message, besides the body (bytes). */
const HEADER_ROOM = 64 * 1024;

/** The subject a node takes forwarded requests on. */
export const forwardSubject = (node: string) => `gpulet.node.${node}.http`;

/** A forwarded request's outcome. */
export type ForwardOutcome =
  | { kind: "answered"; response: Response }
  /** Never acknowledged: it did not run there. */
  | { kind: "not-started"; reason: string }
  /** Acknowledged, then no answer: the target died or the deadline passed. */
  | { kind: "lost"; status: 503 | 504; reason: string };

/** What the sender knows of the target besides its name. */
export interface ForwardTarget {
  node: string;
  /** Its HTTP base URL, for bodies too large for a NATS message. */
  url: string;
  /** Whether it is still alive (its heartbeats). */
  alive: () => boolean;
}

/** Sends `req` (its body already read) to `target` and waits for its one answer. */
export async function forward(
  nc: NatsConnection,
  from: string,
  target: ForwardTarget,
  req: { method: string; path: string; headers: Headers; body: Uint8Array },
  answerWithinMs: number,
): Promise<ForwardOutcome> {
  const maxPayload = nc.info?.max_payload ?? 1024 * 1024;
  if (req.body.byteLength > maxPayload - HEADER_ROOM) return forwardHttp(from, target, req, answerWithinMs);
  const h = natsHeaders();
  h.set("x-gpulet-method", req.method);
  h.set("x-gpulet-path", req.path);
  h.set("x-gpulet-from", from);
  // Wall clocks of the nodes are assumed NTP-close (ms): a target drops what it was sent too long ago.
  h.set("x-gpulet-sent-at", String(Date.now()));
  for (const k of KEPT_REQUEST_HEADERS) {
    const v = req.headers.get(k);
    if (v !== null) h.set(k, v);
  }
  const inbox = createInbox();
  const parts: Uint8Array[] = [];
  let head: Msg | undefined;
  return await new Promise<ForwardOutcome>((resolve) => {
    let accepted = false;
    let sub: Subscription | undefined = undefined;
    const timers: ReturnType<typeof setTimeout | typeof setInterval>[] = [];
    const done = (o: ForwardOutcome) => {
      for (const t of timers) clearTimeout(t);
      sub?.unsubscribe();
      resolve(o);
    };
    sub = nc.subscribe(inbox, {
      callback: (err, msg) => {
        if (err) {
          return done(
            accepted
              ? { kind: "lost", status: 503, reason: err.message }
              : { kind: "not-started", reason: err.message },
          );
        }
        // No subscriber on the target's subject: the server says so at once.
        if (msg.headers?.code === 503 && msg.data.length === 0 && !msg.headers.get("x-gpulet-phase")) {
          return done({ kind: "not-started", reason: `node ${target.node} takes no requests` });
        }
        const phase = msg.headers?.get("x-gpulet-phase");
        if (phase === "accepted") {
          accepted = true;
          return;
        }
        if (phase !== "answer") return;
        head ??= msg;
        parts.push(msg.data);
        const of = Number(head.headers!.get("x-gpulet-parts") || "1");
        if (parts.length < of) return;
        done({ kind: "answered", response: responseOf(head, parts) });
      },
    });
    timers.push(setTimeout(() => {
      if (!accepted) done({ kind: "not-started", reason: `node ${target.node} did not take the request` });
    }, ACCEPT_WITHIN_MS));
    timers.push(setTimeout(() => {
      done({ kind: "lost", status: 504, reason: `node ${target.node} did not answer within ${answerWithinMs} ms` });
    }, answerWithinMs));
    // A target that dies after taking the request will not answer it: say so as soon as its heartbeats stop.
    timers.push(setInterval(() => {
      if (accepted && !target.alive()) {
        done({ kind: "lost", status: 503, reason: `node ${target.node} died while serving the request` });
      }
    }, 50));
    nc.publish(forwardSubject(target.node), req.body, { reply: inbox, headers: h });
  });
}

/** The answer an `answer` message (and its parts) carries. */
function responseOf(head: Msg, parts: Uint8Array[]): Response {
  const h = new Headers();
  for (const [k, vs] of head.headers!) {
    if (k.toLowerCase().startsWith("x-gpulet-phase") || k.toLowerCase() === "x-gpulet-parts") continue;
    if (k.toLowerCase() === "x-gpulet-status") continue;
    for (const v of vs) h.append(k, v);
  }
  const total = parts.reduce((s, p) => s + p.byteLength, 0);
  const body = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    body.set(p, at);
    at += p.byteLength;
  }
  const status = Number(head.headers!.get("x-gpulet-status"));
  return new Response(status === 204 ? null : body, { status, headers: h });
}

/** A body too large for NATS: straight to the target's HTTP port. */
async function forwardHttp(
  from: string,
  target: ForwardTarget,
  req: { method: string; path: string; headers: Headers; body: Uint8Array },
  answerWithinMs: number,
): Promise<ForwardOutcome> {
  const headers = new Headers();
  for (const k of KEPT_REQUEST_HEADERS) {
    const v = req.headers.get(k);
    if (v !== null) headers.set(k, v);
  }
  headers.set(FORWARDED_HEADER, from);
  let res: Response;
  try {
    res = await fetch(`${target.url}${req.path}`, {
      method: req.method,
      headers,
      body: req.body as Uint8Array<ArrayBuffer>,
      signal: AbortSignal.timeout(answerWithinMs),
    });
  } catch (e) {
    const err = e as Error;
    // Refused: nothing listens there, so nothing ran. Anything else may have reached it.
    if (err instanceof TypeError && /refused/i.test(err.message)) {
      return { kind: "not-started", reason: `node ${target.node}: ${err.message}` };
    }
    return err.name === "TimeoutError"
      ? { kind: "lost", status: 504, reason: `node ${target.node} did not answer within ${answerWithinMs} ms` }
      : { kind: "lost", status: 503, reason: `node ${target.node} failed while serving the request: ${err.message}` };
  }
  return { kind: "answered", response: new Response(await res.arrayBuffer(), res) };
}

/** Response headers a forwarded answer keeps. */
const KEPT_RESPONSE_HEADERS = [
  "content-type",
  "server-timing",
  "retry-after",
  "inference-header-content-length",
  "x-gpulet-simulated",
  "x-gpulet-weights",
  "x-call-id",
  "location",
];

/**
 * Serves forwarded requests on this node's subject with `handle` (the node's own HTTP app): acknowledges
 * each at once, drops those that came too late to be acknowledged in time, answers the rest in parts of at
 * most one NATS message.
 */
export function serveForwarded(
  nc: NatsConnection,
  me: string,
  handle: (req: Request) => Promise<Response>,
): Subscription {
  const sub = nc.subscribe(forwardSubject(me), {
    // A throw in a subscription callback stops the connection's reader: every step is guarded.
    callback: (err, msg) => {
      try {
        serveOne(err, msg);
      } catch { /* a malformed message: no answer is owed to it */ }
    },
  });
  return sub;

  function serveOne(err: Error | null, msg: Msg): void {
    if (err || !msg.reply || !msg.headers) return;
    // Only data-plane paths: the admin API is never reachable through NATS.
    const path = msg.headers.get("x-gpulet-path");
    if (!isForwardable(path)) return;
    const sentAt = Number(msg.headers.get("x-gpulet-sent-at"));
    // The sender has given up on it (and may have sent it elsewhere): running it now could run it twice.
    if (!(Date.now() - sentAt < ACCEPT_WITHIN_MS)) return;
    const reply = msg.reply;
    const accepted = natsHeaders();
    accepted.set("x-gpulet-phase", "accepted");
    nc.publish(reply, new Uint8Array(), { headers: accepted });
    const headers = new Headers({ [FORWARDED_HEADER]: msg.headers.get("x-gpulet-from") });
    for (const k of KEPT_REQUEST_HEADERS) {
      const v = msg.headers.get(k);
      if (v) headers.set(k, v);
    }
    const method = msg.headers.get("x-gpulet-method") || "POST";
    const request = new Request(`http://${me}.gpulet${msg.headers.get("x-gpulet-path")}`, {
      method,
      headers,
      body: method === "GET" || method === "HEAD" ? undefined : msg.data as Uint8Array<ArrayBuffer>,
    });
    (async () => {
      let res: Response;
      try {
        res = await handle(request);
      } catch (e) {
        res = Response.json({ error: `internal error: ${(e as Error).message}` }, { status: 500 });
      }
      const body = new Uint8Array(await res.arrayBuffer());
      const room = Math.max(1024, (nc.info?.max_payload ?? 1024 * 1024) - HEADER_ROOM);
      const count = Math.max(1, Math.ceil(body.byteLength / room));
      for (let i = 0; i < count; i++) {
        const h = natsHeaders();
        h.set("x-gpulet-phase", "answer");
        if (i === 0) {
          h.set("x-gpulet-status", String(res.status));
          h.set("x-gpulet-parts", String(count));
          for (const k of KEPT_RESPONSE_HEADERS) {
            const v = res.headers.get(k);
            if (v !== null) h.set(k, v);
          }
        }
        nc.publish(reply, body.subarray(i * room, (i + 1) * room), { headers: h });
      }
    })().catch(() => {}); // the connection closed under the answer: the sender times out
  }
}

/** The paths a node serves for another (its front door's routed ones). */
function isForwardable(path: string): boolean {
  return /^\/functions\/[^/]+\/invoke$/.test(path) ||
    /^\/v2\/models\/[^/]+(?:\/versions\/[^/]+)?\/infer$/.test(path) ||
    /^\/internal\/grpc\/infer\/[^/]+$/.test(path);
}
