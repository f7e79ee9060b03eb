/**
 * The cluster planner (pure): the same planner as one node's, over every GPU of every live node of the
 * leader's device type, for the demand summed over every node's front door. The plan's GPUs are numbered
 * node by node (nodes in name order), so the fewest GPUs it needs are also the fewest nodes; what a node's
 * GPUs serve is that node's slice, and each function's routes are the nodes whose slices serve it.
 */
import { z } from "zod";
import type { InterferenceModel } from "../planner/interference.ts";
import type { LatencyModel } from "../planner/latency_model.ts";
import { DEFAULT_OPTIONS, type PlannerOptions } from "../planner/planner.ts";
import { makePlan } from "../planner/policies.ts";
import type { PlannedFunction } from "../planner/sizing.ts";
import type { Plan } from "../planner/plan.ts";

/** A node as the planner sees it. */
export interface PlanNode {
  name: string;
  /** Profile its devices are planned with. */
  device: string;
  gpus: number;
  /** Time dilation of simulated devices (profile ms per real ms). */
  timeScale: number;
}

/** The cluster plan: the leader's decision, in KV under `plan`. Rates are real requests/s. */
export const ClusterPlan = z.object({
  /** The leader's fencing epoch: nodes follow only the latest. */
  epoch: z.number().int().positive(),
  /** Plans made by this leader so far (1, 2, …). */
  seq: z.number().int().positive(),
  leader: z.string(),
  at: z.string(),
  device: z.string(),
  feasible: z.boolean(),
  gpusUsed: z.number().int().nonnegative(),
  gpusTotal: z.number().int().nonnegative(),
  nodes: z.array(z.object({
    name: z.string(),
    gpus: z.number().int().nonnegative(),
    gpusUsed: z.number().int().nonnegative(),
    functions: z.array(z.object({ name: z.string(), rate: z.number().nonnegative() })),
  })),
  /** Per function: the nodes that serve it and at what rate (front doors send it to these nodes). */
  routes: z.record(z.string(), z.array(z.object({ node: z.string(), rate: z.number().nonnegative() }))),
  unserved: z.array(z.object({ name: z.string(), rate: z.number().nonnegative() })),
  /** The demand it was made for (requests/s per function). */
  demand: z.record(z.string(), z.number().nonnegative()),
});
export type ClusterPlan = z.infer<typeof ClusterPlan>;

/** What the planner needs besides the nodes and the demand. */
export interface ClusterPlanContext {
  /** The leader's device type: only nodes of it are planned. */
  device: string;
  latency: LatencyModel;
  interference?: InterferenceModel;
  options?: PlannerOptions;
}

/** A function to plan: its model and SLO (profile ms, as in its manifest) and its demand (real req/s). */
export type ClusterFunction = Omit<PlannedFunction, "rate"> & { demand: number };

/** The planner's problem for a cluster: the nodes it plans on (in GPU order) and the functions in profile time. */
export interface ClusterProblem {
  /** Nodes of the leader's device type with GPUs, in name order: GPU ids run through them in turn. */
  planned: PlanNode[];
  gpusTotal: number;
  timeScale: number;
  /** Functions with demand, their rates in profile time (a real request/s is `timeScale` of them). */
  functions: PlannedFunction[];
  demand: Record<string, number>;
}

/** What of `nodes` and `functions` the planner plans. */
export function clusterProblem(
  nodes: readonly PlanNode[],
  functions: readonly ClusterFunction[],
  device: string,
): ClusterProblem {
  const planned = [...nodes].filter((n) => n.device === device && n.gpus > 0)
    .sort((a, b) => a.name.localeCompare(b.name));
  const timeScale = planned[0]?.timeScale ?? 1;
  return {
    planned,
    gpusTotal: planned.reduce((s, n) => s + n.gpus, 0),
    timeScale,
    functions: functions.filter((f) => f.demand > 0).map(({ demand, ...f }) => ({ ...f, rate: demand * timeScale })),
    demand: Object.fromEntries(functions.map((f) => [f.name, f.demand])),
  };
}

/** The cluster plan of `plan` (made for `problem`): each node's slice, the routes, stamped. */
export function sliceCluster(
  problem: ClusterProblem,
  plan: Plan | undefined,
  nodes: readonly PlanNode[],
  device: string,
  stamp: { epoch: number; seq: number; leader: string; at: string },
): ClusterPlan {
  const { planned, timeScale } = problem;
  // GPU g of the plan is on the node whose range of ids holds it.
  const ownerOf: string[] = planned.flatMap((n) => Array.from({ length: n.gpus }, () => n.name));
  const slices = new Map(planned.map((n) => [n.name, new Map<string, number>()]));
  const used = new Map<string, Set<number>>();
  for (const g of plan?.gpus ?? []) {
    const owner = ownerOf[g.id];
    if (!owner) continue;
    for (const l of g.gpulets) {
      for (const f of l.functions) {
        if (f.rate <= 0) continue;
        const slice = slices.get(owner)!;
        slice.set(f.name, (slice.get(f.name) ?? 0) + f.rate / timeScale);
        if (!used.has(owner)) used.set(owner, new Set());
        used.get(owner)!.add(g.id);
      }
    }
  }
  const routes: ClusterPlan["routes"] = {};
  for (const [node, slice] of slices) {
    for (const [fn, rate] of slice) (routes[fn] ??= []).push({ node, rate });
  }
  return {
    ...stamp,
    device,
    feasible: plan?.feasible ?? true,
    gpusUsed: [...used.values()].reduce((s, ids) => s + ids.size, 0),
    gpusTotal: problem.gpusTotal,
    nodes: nodes.map((n) => ({
      name: n.name,
      gpus: n.gpus,
      gpusUsed: used.get(n.name)?.size ?? 0,
      functions: [...(slices.get(n.name) ?? new Map<string, number>())].map(([name, rate]) => ({ name, rate })),
    })),
    routes,
    unserved: (plan?.unserved ?? []).map((u) => ({ name: u.name, rate: u.rate / timeScale })),
    demand: problem.demand,
  };
}

/**
 * Plans `functions` on `nodes` on this thread: which nodes' GPUs serve which functions at what rates, on the
 * fewest GPUs. (The leader plans the same in a worker, incrementally from its last plan.)
 */
export function planCluster(
  nodes: readonly PlanNode[],
  functions: readonly ClusterFunction[],
  ctx: ClusterPlanContext,
  stamp: { epoch: number; seq: number; leader: string; at: string },
): ClusterPlan {
  const problem = clusterProblem(nodes, functions, ctx.device);
  const plan = problem.functions.length > 0 && problem.gpusTotal > 0
    ? makePlan(
      {
        device: ctx.device,
        gpus: problem.gpusTotal,
        functions: problem.functions,
        latency: ctx.latency,
        interference: ctx.interference,
      },
      ctx.interference ? "gpulet" : "gpulet-noint",
      ctx.options ?? DEFAULT_OPTIONS,
    )
    : undefined;
  return sliceCluster(problem, plan, nodes, ctx.device, stamp);
}
