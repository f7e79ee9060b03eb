/**
 * The cluster's leader: the node named by the KV key `leader`, taken with a compare-and-set that raises a
 * fencing epoch. The leader's liveness is its heartbeat ({@link Membership}), not the key: a node that finds
 * the named leader dead (or no leader) tries to take the key at the revision it read; one wins, the others
 * read the winner from their watch. Whatever a leader writes carries its epoch, and nodes ignore what an
 * older epoch wrote, so a leader that was frozen and comes back cannot overrule its successor.
 */
import type { KV } from "@nats-io/kv";
import { z } from "zod";
import { DEAD_AFTER_MS, type Membership } from "./membership.ts";

/** The `leader` key's value. */
export const LeaderRecord = z.object({ node: z.string(), epoch: z.number().int().positive(), at: z.string() });
export type LeaderRecord = z.infer<typeof LeaderRecord>;

export const LEADER_KEY = "leader";

/** Leader election over one KV key; `onChange` hears every new leader (and whether it is this node). */
export class Leadership {
  private current?: LeaderRecord;
  private taking = false;
  private started = false;
  private stopped = false;
  private watchStop?: () => void;

  constructor(
    private readonly kv: KV,
    private readonly me: string,
    private readonly membership: Membership,
    private readonly onChange: (leader: LeaderRecord, isMe: boolean) => void = () => {},
  ) {}

  /** The leader as last read (undefined before one is known). */
  get leader(): LeaderRecord | undefined {
    return this.current;
  }

  /** True while this node holds the latest epoch it knows of. */
  get isLeader(): boolean {
    return this.current?.node === this.me;
  }

  /** Watches the key and takes it when it is free. */
  async start(): Promise<void> {
    const watch = await this.kv.watch({ key: LEADER_KEY });
    this.watchStop = () => watch.stop();
    (async () => {
      for await (const e of watch) {
        if (e.operation !== "PUT") continue;
        const parsed = LeaderRecord.safeParse(e.json());
        if (parsed.success) this.learn(parsed.data);
      }
    })().catch(() => {});
    const first = await this.kv.get(LEADER_KEY).catch(() => null);
    if (first?.operation === "PUT") {
      const parsed = LeaderRecord.safeParse(first.json());
      if (parsed.success) this.learn(parsed.data);
    }
    this.started = true;
    await this.check();
  }

  stop(): void {
    this.stopped = true;
    this.watchStop?.();
  }

  /** Takes the key if no live node holds it (call on every membership change and now and then). */
  async check(): Promise<void> {
    if (!this.started || this.stopped || this.taking) return;
    const held = this.current;
    if (held && (held.node === this.me || this.membership.isAlive(held.node))) return;
    // A leader named by the key may just not have been heard from yet: it is dead only when this node has
    // listened for a whole death's time.
    if (held && this.membership.listeningForMs() < DEAD_AFTER_MS) return;
    this.taking = true;
    try {
      const entry = await this.kv.get(LEADER_KEY);
      const next = (epoch: number): string =>
        JSON.stringify({ node: this.me, epoch, at: new Date().toISOString() } satisfies LeaderRecord);
      if (!entry || entry.operation !== "PUT") {
        await this.kv.create(LEADER_KEY, next(1)).catch(() => {}); // lost: the watch says who won
        return;
      }
      const seen = LeaderRecord.safeParse(entry.json());
      const heardEnough = this.membership.listeningForMs() >= DEAD_AFTER_MS;
      if (seen.success && seen.data.node !== this.me && (this.membership.isAlive(seen.data.node) || !heardEnough)) {
        this.learn(seen.data);
        return;
      }
      const epoch = seen.success ? seen.data.epoch + 1 : 1;
      await this.kv.update(LEADER_KEY, next(epoch), entry.revision).catch(() => {});
    } catch {
      // KV unavailable for now (a JetStream election): the next check tries again.
    } finally {
      this.taking = false;
    }
  }

  private learn(rec: LeaderRecord): void {
    if (this.current && rec.epoch <= this.current.epoch) return; // an older leader's word
    this.current = rec;
    this.onChange(rec, rec.node === this.me);
  }
}
