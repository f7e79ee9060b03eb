/**
 * The planner's worker (a Web Worker of the live controller): it rebuilds the profile and the interference
 * model once from plain data, then answers re-plans (`plan_demand.ts`) off the serving loop. Its tail
 * answers are remembered across re-plans (`LatencyTable.shared`), as they would be on the main thread.
 */
import { InterferenceModel, type InterferenceParams } from "../planner/interference.ts";
import { LatencyModel, type ProfileRow } from "../planner/latency_model.ts";
import type { Plan } from "../planner/plan.ts";
import { type PlanContext, planDemand, type PlanRequest, splitDemand } from "./plan_demand.ts";
import type { AppGraph } from "../planner/app_split.ts";

/** What the controller sends. */
export type PlanWorkerRequest =
  | {
    kind: "init";
    context: Omit<PlanContext, "latency" | "interference">;
    latency: { source: string; rows: ProfileRow[] };
    interference?: InterferenceParams;
  }
  | { kind: "plan"; id: number; request: PlanRequest }
  | { kind: "split"; id: number; app: AppGraph; rate: number };

/** What the worker answers to a `plan` (a plan) or a `split` (each level's budget, ms). */
export type PlanWorkerReply =
  | { id: number; plan: Plan }
  | { id: number; budgetsMs: number[] }
  | { id: number; error: string };

const scope = globalThis as unknown as {
  onmessage: ((e: MessageEvent<PlanWorkerRequest>) => void) | null;
  postMessage: (reply: PlanWorkerReply) => void;
};

let context: PlanContext | undefined;

scope.onmessage = (e) => {
  const m = e.data;
  if (m.kind === "init") {
    const latency = LatencyModel.fromRows(m.latency.rows, m.latency.source);
    context = {
      ...m.context,
      latency,
      interference: m.interference ? new InterferenceModel(latency, m.interference) : undefined,
    };
    return;
  }
  try {
    if (!context) throw new Error("the planner worker got a plan before its profile");
    if (m.kind === "split") scope.postMessage({ id: m.id, budgetsMs: splitDemand(context, m.app, m.rate) });
    else scope.postMessage({ id: m.id, plan: planDemand(context, m.request) });
  } catch (err) {
    scope.postMessage({ id: m.id, error: err instanceof Error ? err.message : String(err) });
  }
};
