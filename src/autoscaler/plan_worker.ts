/**
 * The planner's worker (a Web Worker of the live controller): it rebuilds the profile and the interference
 * model once from plain data, then answers re-plans (`plan_demand.ts`) off the serving loop. Its tail
 * answers are remembered across re-plans (`LatencyTable.shared`), as they would be on the main thread.
 */
import { InterferenceModel, type InterferenceParams } from "../planner/interference.ts";
import { LatencyModel, type ProfileRow } from "../planner/latency_model.ts";
import type { Plan } from "../planner/plan.ts";
import { type PlanContext, planDemand, type PlanRequest } from "./plan_demand.ts";

/** What the controller sends. */
export type PlanWorkerRequest =
  | {
    kind: "init";
    context: Omit<PlanContext, "latency" | "interference">;
    latency: { source: string; rows: ProfileRow[] };
    interference?: InterferenceParams;
  }
  | { kind: "plan"; id: number; request: PlanRequest };

/** What the worker answers to a `plan`. */
export type PlanWorkerReply = { id: number; plan: Plan } | { id: number; error: string };

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
    scope.postMessage({ id: m.id, plan: planDemand(context, m.request) });
  } catch (err) {
    scope.postMessage({ id: m.id, error: err instanceof Error ? err.message : String(err) });
  }
};
