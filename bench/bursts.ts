/**
 * Bursts, for `deno task bench reliability`: N clients send lenet requests at the same moment (JSON invoke,
 * and OIP JSON tensors), with the machine idle and with a CPU hog on every core. Each burst is also sent to
 * a shadow controller that admits everything (no 429, no early 504): the requests the shadow answers within
 * the SLO beyond those the real one did are the ones admission refused although they would have met it.
 */
import { findTaskset, PROJECT_ROOT } from "../src/runtime/worker_command.ts";
import type { RunningServer, ServerOptions } from "../src/server.ts";
import { deployFolder, metric, server } from "./live_server.ts";
import type { BurstConfig, BurstRound } from "./burst_client.ts";
import { percentile } from "../src/loadgen/stats.ts";

const LENET_SLO_MS = 100;
export const BURST_SIZES = [16, 64, 128, 256];
const ROUNDS = 5;

/** One burst configuration: what the real controller answered, and what the shadow one did. */
export interface BurstPoint {
  request: string;
  load: "idle" | "cpu hog";
  size: number;
  sent: number;
  /** Answers by status (0: no answer). */
  statuses: Record<string, number>;
  /** Answered 200 within the SLO: by the controller's own clock, and as the client saw it. */
  good: number;
  goodClient: number;
  /** The same in the shadow run (admits everything). */
  shadowGood: number;
  shadowGoodClient: number;
  /** Refused (429/504) by the real controller. */
  refused: number;
  /**
   * Refused although admitting them would have met the SLO: what the shadow answered within it beyond the
   * real one (controller clocks), at most as many as were refused.
   */
  refusedButWouldMeet: number;
  p99Ms: number;
  shadowP99Ms: number;
}

/** A controller serving lenet. */
async function serve(opts: Partial<ServerOptions>): Promise<RunningServer> {
  const s = await server(opts);
  await deployFolder(s.url, `${PROJECT_ROOT}/functions/lenet`);
  return s;
}

/** Requests lenet answered 200 within its SLO so far, by the controller's own account. */
const withinSlo = (s: RunningServer) => metric(s.url, 'gpulet_requests_within_slo_total{function="lenet"}');

/** Sends the bursts to `s`; the client's answers and the controller's own within-SLO count for them. */
async function measured(s: RunningServer, cfg: BurstConfig) {
  const before = await withinSlo(s);
  const rounds = await burst(cfg);
  return { ...summarise(rounds), serverGood: (await withinSlo(s)) - before };
}

async function burst(cfg: BurstConfig): Promise<BurstRound[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", `${PROJECT_ROOT}/bench/burst_client.ts`, JSON.stringify(cfg)],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error("burst client failed");
  return new TextDecoder().decode(out.stdout).trim().split("\n").map((l) => JSON.parse(l) as BurstRound);
}

/** Busy loops on every core, until stopped. */
function cpuHog(): { stop(): Promise<void> } {
  const taskset = findTaskset();
  const cores = Deno.build.os === "linux" ? [0, 1] : [];
  const procs = cores.map((c) =>
    new Deno.Command(taskset ?? "sh", {
      args: taskset ? ["-c", String(c), "sh", "-c", "while :; do :; done"] : ["-c", "while :; do :; done"],
      stdout: "null",
      stderr: "null",
    }).spawn()
  );
  return {
    async stop() {
      for (const p of procs) p.kill("SIGKILL");
      await Promise.all(procs.map((p) => p.status));
    },
  };
}

function summarise(rounds: BurstRound[]) {
  const statuses: Record<string, number> = {};
  const okMs: number[] = [];
  let good = 0;
  for (const r of rounds) {
    r.statuses.forEach((s, i) => {
      statuses[s] = (statuses[s] ?? 0) + 1;
      if (s === 200) {
        okMs.push(r.latenciesMs[i]);
        if (r.latenciesMs[i] <= LENET_SLO_MS) good++;
      }
    });
  }
  return { statuses, good, p99: percentile(okMs.sort((a, b) => a - b), 0.99) ?? NaN };
}

/** Runs every burst configuration against the real and the shadow controller, interleaved. */
export async function measureBursts(log: (l: string) => void): Promise<BurstPoint[]> {
  const real = await serve({});
  const shadow = await serve({ admitAll: true, maxQueueRows: 1_000_000 });
  const image = Array.from({ length: 784 }, (_, i) => (i * 37) % 256);
  const requests = [
    { label: "JSON invoke", path: "/functions/lenet/invoke", body: JSON.stringify({ image }) },
    {
      label: "OIP JSON tensor",
      path: "/v2/models/lenet/infer",
      body: JSON.stringify({
        inputs: [{ name: "input", datatype: "FP32", shape: [1, 1, 28, 28], data: image.map((v) => v / 255) }],
      }),
    },
  ];
  const points: BurstPoint[] = [];
  try {
    for (const load of ["idle", "cpu hog"] as const) {
      const hog = load === "cpu hog" ? cpuHog() : undefined;
      try {
        for (const r of requests) {
          for (const size of BURST_SIZES) {
            const cfg = (s: RunningServer): BurstConfig => ({
              url: `${s.url}${r.path}`,
              body: r.body,
              headers: { "content-type": "application/json" },
              size,
              rounds: ROUNDS,
              gapMs: 300,
            });
            const a = await measured(real, cfg(real));
            const b = await measured(shadow, cfg(shadow));
            const refused = (a.statuses["429"] ?? 0) + (a.statuses["504"] ?? 0);
            const p: BurstPoint = {
              request: r.label,
              load,
              size,
              sent: size * ROUNDS,
              statuses: a.statuses,
              good: a.serverGood,
              goodClient: a.good,
              shadowGood: b.serverGood,
              shadowGoodClient: b.good,
              refused,
              refusedButWouldMeet: Math.min(refused, Math.max(0, b.serverGood - a.serverGood)),
              p99Ms: a.p99,
              shadowP99Ms: b.p99,
            };
            points.push(p);
            log(
              `bursts: ${r.label}, ${load}, ${size} at once ×${ROUNDS}: ${JSON.stringify(a.statuses)}, within SLO ` +
                `${a.serverGood} (client ${a.good}), shadow ${b.serverGood} (client ${b.good}), refused but would ` +
                `have met ${p.refusedButWouldMeet}`,
            );
          }
        }
      } finally {
        await hog?.stop();
      }
    }
  } finally {
    await real.shutdown();
    await shadow.shutdown();
  }
  return points;
}

/** The bursts as a Markdown section. */
export function burstsMarkdown(points: BurstPoint[]): string[] {
  const f = (x: number, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : "-");
  const codes = (s: Record<string, number>) =>
    Object.entries(s).sort().map(([k, v]) => `${v}× ${k === "0" ? "none" : k}`).join(", ");
  return [
    `## Bursts`,
    ``,
    `lenet (SLO ${LENET_SLO_MS} ms, maxBatch 32, one gpu-let): N clients (a separate process, connections open)`,
    `send at the same moment, ${ROUNDS} rounds 300 ms apart; with the machine idle and with a busy loop on`,
    `every core. Each burst also goes to a shadow controller that admits everything (no 429, no early 504).`,
    `Within SLO: answered 200 in time by the controller's clock (from the whole request in hand), and in`,
    `brackets as the client saw it (its own time on the shared core included). "Refused but would have met" =`,
    `what the shadow answered within the SLO beyond the real one (controller clocks), at most what was refused.`,
    ``,
    `| request | load | burst | sent | answers | within SLO (client) | shadow within SLO (client) | refused (429/504) | refused but would have met | client p99 ms (shadow) |`,
    `|---|---|---|---|---|---|---|---|---|---|`,
    ...points.map((p) =>
      `| ${p.request} | ${p.load} | ${p.size} | ${p.sent} | ${
        codes(p.statuses)
      } | ${p.good} (${p.goodClient}) | ${p.shadowGood} (${p.shadowGoodClient}) | ${p.refused} | **${p.refusedButWouldMeet}** | ${
        f(p.p99Ms)
      } (${f(p.shadowP99Ms)}) |`
    ),
    ``,
  ];
}
