/**
 * The function registry in Deno KV: every deployed version of every function, and which version is live.
 * Survives restarts; the controller restores live versions from it at start-up.
 */
import type { AppManifest, Manifest } from "./manifest.ts";

/** One deployed version of a function. */
export interface FunctionRecord {
  name: string;
  version: number;
  manifest: Manifest;
  /** Folder holding the version's files. */
  dir: string;
  deployedAt: string;
}

/** One deployed version of an app: the same record, with the app's manifest. */
export interface AppRecord extends Omit<FunctionRecord, "manifest"> {
  manifest: AppManifest;
}

/** A deployed version of a function or of an app (functions and apps share one name space). */
export type DeployedRecord = FunctionRecord | AppRecord;

/** True if the record is an app's. */
export function isAppRecord(rec: DeployedRecord): rec is AppRecord {
  return "kind" in rec.manifest && rec.manifest.kind === "app";
}

export class Registry {
  private constructor(private readonly kv: Deno.Kv) {}

  /** Opens (or creates) the registry at `path` (a Deno KV SQLite file). */
  static async open(path: string): Promise<Registry> {
    return new Registry(await Deno.openKv(path));
  }

  /** Reserves the next version number of `name` (1, 2, …), atomically. */
  async nextVersion(name: string): Promise<number> {
    for (;;) {
      const key = ["counter", name];
      const cur = await this.kv.get<number>(key);
      const next = (cur.value ?? 0) + 1;
      const res = await this.kv.atomic().check(cur).set(key, next).commit();
      if (res.ok) return next;
    }
  }

  /** Takes `version` of `name`, given from outside (a cluster's): later versions here count on from it. */
  async takeVersion(name: string, version: number): Promise<void> {
    for (;;) {
      const key = ["counter", name];
      const cur = await this.kv.get<number>(key);
      if ((cur.value ?? 0) >= version) return;
      if ((await this.kv.atomic().check(cur).set(key, version).commit()).ok) return;
    }
  }

  /** Stores a version record (not yet live). */
  async putVersion(rec: DeployedRecord): Promise<void> {
    await this.kv.set(["version", rec.name, rec.version], rec);
  }

  /** Marks a stored version as the live one (a name that was unloaded is no longer). */
  async setLive(name: string, version: number): Promise<void> {
    await this.kv.atomic().set(["live", name], version).delete(["unloaded", name]).commit();
  }

  /** The live version of `name`, if any. */
  live(name: string): Promise<DeployedRecord | null> {
    return this.pointed("live", name);
  }

  /** Every function's and app's live version. */
  listLive(): Promise<DeployedRecord[]> {
    return this.listPointed("live");
  }

  /** All stored versions of `name`, oldest first. */
  async versions(name: string): Promise<DeployedRecord[]> {
    const out: DeployedRecord[] = [];
    for await (const e of this.kv.list<DeployedRecord>({ prefix: ["version", name] })) out.push(e.value);
    return out;
  }

  /**
   * Unloads `name` (the repository API): its live version stops being live but stays stored, to be made live
   * again with {@link setLive}. Returns the version, or null when none was live.
   */
  async unload(name: string): Promise<number | null> {
    const live = await this.kv.get<number>(["live", name]);
    if (live.value === null) return null;
    const res = await this.kv.atomic().check(live).delete(["live", name]).set(["unloaded", name], live.value).commit();
    return res.ok ? live.value : null;
  }

  /** The stored version record of an unloaded function or app, if `name` is one. */
  unloaded(name: string): Promise<DeployedRecord | null> {
    return this.pointed("unloaded", name);
  }

  /** Every unloaded function's and app's record. */
  listUnloaded(): Promise<DeployedRecord[]> {
    return this.listPointed("unloaded");
  }

  /** The version record that pointer `kind` (`["live" | "unloaded", name]` → a version) points at. */
  private async pointed(kind: "live" | "unloaded", name: string): Promise<DeployedRecord | null> {
    const v = await this.kv.get<number>([kind, name]);
    if (v.value === null) return null;
    return (await this.kv.get<DeployedRecord>(["version", name, v.value])).value;
  }

  /** The version records every pointer of `kind` points at. */
  private async listPointed(kind: "live" | "unloaded"): Promise<DeployedRecord[]> {
    const out: DeployedRecord[] = [];
    for await (const e of this.kv.list<number>({ prefix: [kind] })) {
      const rec = await this.kv.get<DeployedRecord>(["version", e.key[1] as string, e.value]);
      if (rec.value) out.push(rec.value);
    }
    return out;
  }

  /** Removes a function: its live pointer and its version records (the counter stays, versions never repeat). */
  async remove(name: string): Promise<void> {
    await this.kv.delete(["live", name]);
    await this.kv.delete(["unloaded", name]);
    for await (const e of this.kv.list({ prefix: ["version", name] })) await this.kv.delete(e.key);
  }

  close(): void {
    this.kv.close();
  }
}
