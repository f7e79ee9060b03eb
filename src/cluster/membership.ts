/**
 * Who is in the cluster, from plain NATS heartbeats: every node publishes what it is (its devices, its
 * functions, the demand at its front door) every {@link HEARTBEAT_MS} and counts a peer dead after
 * {@link DEAD_AFTER_MS} without one. Liveness is never read from KV writes: a JetStream leader election in
 * nats-server 2.9 pauses them for seconds, while plain publishes keep flowing.
 */
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { z } from "zod";

/** How often a node says it is alive (ms). */
export const HEARTBEAT_MS = 250;
/** A node not heard from for this long is dead (ms): a SIGSTOPped node is noticed within it. */
export const DEAD_AFTER_MS = 1500;
/** The subject heartbeats go to. */
export const HEARTBEAT_SUBJECT = "gpulet.heartbeat";

/** A node's name: what `--node` takes (it becomes part of NATS subjects and KV keys). */
export const NodeName = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, {
  error: "a node name is 1-63 lower-case letters, digits, - or _, starting with a letter or digit",
});

/** What a node says about itself in every heartbeat. */
export const NodeInfo = z.object({
  node: NodeName,
  /** Its HTTP base URL (for bodies too large for a NATS message). */
  url: z.string(),
  startedAt: z.string(),
  devices: z.object({
    kind: z.enum(["cpu", "sim", "cuda"]),
    /** The profile its plans are made for. */
    device: z.string(),
    gpus: z.number().int().nonnegative(),
    timeScale: z.number().positive(),
  }),
  /** Its functions and apps that are live and ready to serve. */
  ready: z.array(z.string()),
  /** Requests/s arriving at its front door per function (before any forwarding). */
  demand: z.record(z.string(), z.number().nonnegative()),
  /** Rows waiting in its queue per function (what the front doors steer by between plans). */
  queued: z.record(z.string(), z.number().nonnegative()).default({}),
  /** The epoch of the cluster plan it routes by (0: none yet). */
  planEpoch: z.number().int().nonnegative(),
});
export type NodeInfo = z.infer<typeof NodeInfo>;

/** A peer as this node sees it. */
export interface Peer {
  info: NodeInfo;
  /** When its last heartbeat came (performance.now()). */
  seenAt: number;
  alive: boolean;
}

/** Heartbeats out and in; `onChange` hears joins and deaths. */
export class Membership {
  private readonly peers = new Map<string, Peer>();
  private sub?: Subscription;
  private beat?: ReturnType<typeof setInterval>;
  private sweep?: ReturnType<typeof setInterval>;
  private lastSweep = performance.now();
  private listeningSince?: number;

  constructor(
    private readonly nc: NatsConnection,
    private readonly me: string,
    private readonly self: () => NodeInfo,
    private readonly onChange: (node: string, alive: boolean) => void = () => {},
  ) {}

  /** Starts publishing and listening. */
  start(): void {
    this.sub = this.nc.subscribe(HEARTBEAT_SUBJECT, {
      callback: (err, msg) => {
        if (err) return;
        // A throw in a subscription callback stops the connection's reader: anything malformed is ignored.
        try {
          const parsed = NodeInfo.safeParse(msg.json());
          if (parsed.success) this.heard(parsed.data);
        } catch { /* not JSON */ }
      },
    });
    const publish = () => {
      if (!this.nc.isClosed()) this.nc.publish(HEARTBEAT_SUBJECT, JSON.stringify(this.self()));
    };
    publish();
    this.beat = setInterval(publish, HEARTBEAT_MS);
    this.sweep = setInterval(() => this.expire(performance.now()), HEARTBEAT_MS / 2);
  }

  /** Stops both; peers are forgotten. */
  stop(): void {
    clearInterval(this.beat);
    clearInterval(this.sweep);
    this.sub?.unsubscribe();
  }

  /** Every node heard from, alive or not (this one included once its own heartbeat came back). */
  all(): Peer[] {
    return [...this.peers.values()];
  }

  /** The live nodes' latest infos. */
  alive(): NodeInfo[] {
    return this.all().filter((p) => p.alive).map((p) => p.info);
  }

  /**
   * How long this node has heard its own heartbeats (ms; 0 before the first came back): a peer not heard
   * from in a window this long is really silent, not just not yet heard.
   */
  listeningForMs(now = performance.now()): number {
    return this.listeningSince === undefined ? 0 : now - this.listeningSince;
  }

  /** Whether `node` is alive now. */
  isAlive(node: string): boolean {
    return this.peers.get(node)?.alive ?? false;
  }

  private heard(info: NodeInfo): void {
    if (info.node === this.me) this.listeningSince ??= performance.now();
    const prev = this.peers.get(info.node);
    this.peers.set(info.node, { info, seenAt: performance.now(), alive: true });
    if (!prev?.alive) this.onChange(info.node, true);
  }

  private expire(now: number): void {
    // This process was stalled (a long synchronous step): the heartbeats that came meanwhile are not read
    // yet, so silence now says nothing about the peers. Look again at the next sweep.
    const stalled = now - this.lastSweep > 2 * HEARTBEAT_MS;
    this.lastSweep = now;
    if (stalled) return;
    for (const [name, p] of this.peers) {
      if (p.alive && now - p.seenAt > DEAD_AFTER_MS) {
        p.alive = false;
        this.onChange(name, false);
      }
    }
  }
}
