/**
 * The dashboard's data (`GET /ui/state`, and each `/ui/events` message): every GPU as its gpu-lets with their
 * functions, batch sizes and utilisation; every function's rate, p99 and SLO attainment over the last minute;
 * the recent plan changes. Pure: built from a normalised view of the controller and the live statistics.
 */
import { type LiveStats, type SecondPoint } from "./live_stats.ts";

/** What the controller says, normalised. */
export interface DashboardInput {
  /** The device kind (`cpu`, `sim`, `cuda`). */
  mode: string;
  /** Devices available (GPUs, or CPU devices). */
  devices: number;
  gpus: {
    id: number;
    gpulets: {
      part: number;
      functions: { name: string; batch: number; rate?: number }[];
      /** Executor ids of the processes running it (for utilisation). */
      executors: string[];
    }[];
  }[];
  /** Functions and apps (`stages`: an app's, as `stage→function` with its budget). */
  functions: { name: string; version: number; sloMs: number; queueRows: number; stages?: string[] }[];
  changes: { at: string; direction: string; gpusBefore: number; gpusAfter: number; reason: string }[];
  /** This node's cluster, when it is in one. */
  cluster?: ClusterSummary;
}

/** A cluster as the dashboard shows it: its nodes, the leader, the GPUs the cluster plan uses. */
export interface ClusterSummary {
  node: string;
  leader: string | null;
  epoch: number;
  gpusPlanned: number;
  gpusTotal: number;
  nodes: { name: string; alive: boolean; leader: boolean; gpus: number; gpusPlanned: number; ready: number }[];
  /** Where this node's front door sent requests. */
  routing: Record<string, number>;
}

export interface DashboardState {
  at: string;
  mode: string;
  devices: number;
  gpusInUse: number;
  gpus: {
    id: number;
    /** Share of the GPU no gpu-let holds (%). */
    free: number;
    gpulets: {
      part: number;
      functions: { name: string; batch: number; rate: number | null }[];
      /** Busy share (0–1) over the last 5 s. */
      utilisation: number;
    }[];
  }[];
  functions: {
    name: string;
    version: number;
    sloMs: number;
    queueRows: number;
    /** Requests/s over the last 10 s. */
    rate: number;
    /** Planned requests/s (the plan in force; 0 on a fixed gpu-let). */
    plannedRate: number | null;
    p99Ms: number | null;
    attainment: number | null;
    /** The last 60 s, a point per second, oldest first. */
    series: SecondPoint[];
    /** An app's stages (`stage→function budget`); absent for a function. */
    stages?: string[];
  }[];
  changes: DashboardInput["changes"];
  cluster?: ClusterSummary;
}

/** Builds the dashboard state at `now` (ms since the epoch). */
export function dashboardState(input: DashboardInput, live: LiveStats, now: number): DashboardState {
  const planned = new Map<string, number>();
  for (const g of input.gpus) {
    for (const l of g.gpulets) {
      for (const f of l.functions) if (f.rate !== undefined) planned.set(f.name, (planned.get(f.name) ?? 0) + f.rate);
    }
  }
  const gpus = input.gpus.map((g) => ({
    id: g.id,
    free: Math.max(0, 100 - g.gpulets.reduce((n, l) => n + l.part, 0)),
    gpulets: g.gpulets.map((l) => ({
      part: l.part,
      functions: l.functions.map((f) => ({ name: f.name, batch: f.batch, rate: f.rate ?? null })),
      // Members of a time-shared gpu-let take turns: their busy shares add up.
      utilisation: Math.min(1, l.executors.reduce((n, id) => n + live.utilisation(id), 0)),
    })),
  }));
  return {
    at: new Date(now).toISOString(),
    mode: input.mode,
    devices: input.devices,
    gpusInUse: gpus.filter((g) => g.gpulets.length > 0).length,
    gpus,
    functions: input.functions.map((f) => ({
      name: f.name,
      version: f.version,
      sloMs: f.sloMs,
      queueRows: f.queueRows,
      rate: live.rate(f.name),
      plannedRate: planned.get(f.name) ?? null,
      p99Ms: live.p99(f.name),
      attainment: live.attainment(f.name),
      series: live.series(f.name, 60),
      ...(f.stages ? { stages: f.stages } : {}),
    })),
    changes: input.changes.slice(-10).reverse(),
    ...(input.cluster ? { cluster: input.cluster } : {}),
  };
}
