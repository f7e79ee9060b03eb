/**
 * The autoscaling simulator's request-level mode: the plan in force as request-level GPUs (`GpuEngine`), each
 * arrival routed to one of its function's gpu-lets (weighted by their planned rates, as the dispatcher
 * spreads load), answered when the model says. A new plan gets new GPUs; the old ones finish what they hold
 * (make-before-break). Pure apart from the random source it is given.
 */
import type { InterferenceModel } from "../planner/interference.ts";
import type { LatencyModel } from "../planner/latency_model.ts";
import type { Plan } from "../planner/plan.ts";
import { planGpulets } from "./plan_replay.ts";
import { GpuEngine } from "./request_sim.ts";

/** A function as the simulator knows it. */
export interface SimFunction {
  name: string;
  model: string;
  sloMs: number;
}

/** Where a function's requests can go: engine, function index there, planned rate. */
interface Route {
  engine: GpuEngine;
  fn: number;
  weight: number;
}

/** A function's routes and the sum of their weights (fixed while a plan is in force). */
interface Routes {
  list: Route[];
  total: number;
}

/** The plan in force (and those draining), request by request. */
export class RequestLevel {
  private engines: GpuEngine[] = [];
  private draining: GpuEngine[] = [];
  private routes = new Map<string, Routes>();

  /**
   * @param onAnswer called for every answered request (function name, arrival and latency in ms, the tag it
   *   arrived with)
   */
  private readonly byName: Map<string, SimFunction>;

  constructor(
    functions: readonly SimFunction[],
    private readonly latency: LatencyModel,
    private readonly interference: InterferenceModel | undefined,
    private readonly random: () => number,
    private readonly onAnswer: (name: string, arrivalMs: number, latencyMs: number, tag: number) => void,
  ) {
    this.byName = new Map(functions.map((f) => [f.name, f]));
  }

  /** Puts `plan` in force at `t`: its GPUs take new arrivals, the previous ones drain. */
  use(plan: Plan, t: number): void {
    for (const e of this.engines) e.runUntil(t);
    this.draining.push(...this.engines);
    this.engines = [];
    this.routes = new Map();
    for (const gpu of plan.gpus) {
      const engine: GpuEngine = new GpuEngine(planGpulets(gpu, this.byName), this.latency, this.interference, {
        random: this.random,
        onAnswer: (i, arrival, ms, tag) => this.onAnswer(engine.fns[i].name, arrival, ms, tag),
      });
      engine.fns.forEach((f, i) => {
        const routes = this.routes.get(f.name) ?? { list: [], total: 0 };
        const weight = Math.max(f.rate, 1e-9);
        routes.list.push({ engine, fn: i, weight });
        routes.total += weight;
        this.routes.set(f.name, routes);
      });
      this.engines.push(engine);
    }
  }

  /**
   * A request of `name` arrives at `t` (with an optional `tag`, handed back with its answer); false when no
   * gpu-let of the plan serves the function (shed).
   */
  arrive(name: string, t: number, tag = -1): boolean {
    const routes = this.routes.get(name);
    if (!routes) return false;
    let pick = this.random() * routes.total;
    const route = routes.list.find((r) => (pick -= r.weight) <= 0) ?? routes.list[routes.list.length - 1];
    route.engine.arrive(route.fn, t, tag);
    return true;
  }

  /** When the next batch anywhere ends (ms; Infinity when nothing runs). */
  nextEventMs(): number {
    let next = Infinity;
    for (const e of this.engines) next = Math.min(next, e.nextEndMs());
    for (const e of this.draining) next = Math.min(next, e.nextEndMs());
    return next;
  }

  /** Serves what ends by `t` everywhere. */
  advance(t: number): void {
    for (const e of this.engines) e.runUntil(t);
    for (const e of this.draining) e.runUntil(t);
    this.draining = this.draining.filter((e) => !e.idle);
  }

  /** Serves everything still queued. */
  finish(): void {
    for (const e of [...this.engines, ...this.draining]) e.drain();
  }
}
