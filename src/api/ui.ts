/**
 * The live dashboard: `GET /ui` (one static page, no build step), `GET /ui/state` (its data as JSON) and
 * `GET /ui/events` (the same data every second as server-sent events). Read-only, like `/metrics`.
 */
import type { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import type { Controller } from "../controller/controller.ts";
import type { Cluster } from "../cluster/cluster.ts";
import { type DashboardInput, dashboardState } from "../observability/dashboard_state.ts";

const PAGE = new URL("../ui/dashboard.html", import.meta.url);
/** How often `/ui/events` sends the state (ms). */
export const UI_INTERVAL_MS = 1000;
/** An event stream is ended after this long; EventSource reconnects by itself (ms). */
const STREAM_MAX_MS = 10 * 60_000;

/** The controller's running plan, normalised for {@link dashboardState}. */
export function dashboardInput(controller: Controller, cluster?: Cluster): DashboardInput {
  const plan = controller.plan();
  const backend = controller.backend;
  const scale = backend.timeScale;
  return {
    mode: backend.kind,
    devices: backend.gpus,
    gpus: plan.gpus.map((g) => ({
      id: g.id,
      gpulets: g.gpulets.map((l) => ({
        part: l.part,
        // Plans of simulated GPUs are in profile time: in real requests/s their rates are K times lower.
        functions: l.functions.map((f) => ({ name: f.name, batch: f.batch, rate: f.rate / scale })),
        executors: l.executors ?? [],
      })),
    })),
    functions: [
      ...controller.list().map((d) => ({
        name: d.name,
        version: d.version,
        sloMs: d.record.manifest.sloMs * scale,
        queueRows: d.dispatcher.depth,
      })),
      // An app's row: its requests end to end; the queue column shows its requests in flight.
      ...controller.listApps().map((a) => ({
        name: a.name,
        version: a.version,
        sloMs: a.record.manifest.sloMs * scale,
        queueRows: a.inflight,
        stages: a.stages.map((s) => `${s.name}→${s.function} ${Math.round(a.budgetsMs[s.level] * scale)} ms`),
      })),
    ],
    changes: plan.history.map((h) => ({
      at: h.at,
      direction: h.direction,
      gpusBefore: h.gpusBefore,
      gpusAfter: h.gpusAfter,
      reason: h.reason,
    })),
    ...(cluster ? { cluster: cluster.summary() } : {}),
  };
}

/** Adds the dashboard's routes to `app`. */
export function registerUi(
  app: Hono,
  controller: Controller,
  cluster: () => Cluster | undefined = () => undefined,
): void {
  let page: string | undefined;
  const state = () => dashboardState(dashboardInput(controller, cluster()), controller.metrics.live, Date.now());

  app.get("/ui", async (c) => {
    page ??= await Deno.readTextFile(PAGE);
    return c.html(page);
  });
  app.get("/ui/state", (c) => c.json(state()));
  app.get("/ui/events", (c) =>
    streamSSE(c, async (stream) => {
      const end = Date.now() + STREAM_MAX_MS;
      // The server's shutdown waits for open responses: a stream must end when the controller stops.
      while (!stream.aborted && !controller.stopping && Date.now() < end) {
        await stream.writeSSE({ event: "state", data: JSON.stringify(state()) });
        await stream.sleep(UI_INTERVAL_MS);
      }
    }));
}
