/**
 * The running plan: the typed view `GET /admin/plan` serves and `/ui` and the metrics read. The plan in force
 * (with the fixed gpu-lets beside its own), each gpu-let with the process serving it, and the history.
 */
import type { Plan } from "../planner/plan.ts";
import type { Backend } from "./backends.ts";
import type { PlanChange } from "../autoscaler/autoscaler.ts";
import type { AppDeployment } from "./app_deployment.ts";

/** One gpu-let of the running plan: the plan's entry, and the process serving it once it runs. */
export interface RunningGpuletView {
  part: number;
  /** Not sized by the planner (no profile, or a fixed layout). */
  fixed?: true;
  functions: Plan["gpus"][number]["gpulets"][number]["functions"];
  /** Its process, once it runs. */
  id?: string;
  pid?: number;
  cores?: number[];
  /** Its functions' executors (the ids their batches are measured under). */
  executors?: string[];
}

/** One running gpu-let process and the functions in it. */
export interface RunningWorker {
  gpu: number;
  part: number;
  cores?: number[];
  id: string;
  pid: number;
  functions: { name: string; version: number; id: string; inflight: number; latencyMs: Record<string, number> }[];
}

/** The running plan: what `GET /admin/plan` serves and `/ui` and the metrics read. */
export type RunningPlan = Omit<Plan, "gpus"> & {
  gpus: { id: number; gpulets: RunningGpuletView[] }[];
  devices: { kind: Backend["kind"]; count: number; timeScale: number };
  gpusInUse: number;
  gpulets: number;
  replans: number;
  workers: RunningWorker[];
  history: Omit<PlanRecord, "plan">[];
  /** The deployed apps, each with its stages' budgets. */
  apps?: AppView[];
};

/** An app as `GET /admin/plan` shows it. */
export type AppView = ReturnType<AppDeployment["describe"]>;

/** A plan change as `GET /admin/plan` shows it. */
export interface PlanRecord extends Omit<PlanChange, "at"> {
  /** ISO time of the decision. */
  at: string;
  /** Gpu-lets started and stopped by applying it. */
  started: number;
  stopped: number;
  /** Time to apply it (start and warm new gpu-lets, switch routing), ms. */
  applyMs?: number;
}
