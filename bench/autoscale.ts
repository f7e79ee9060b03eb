/**
 * `deno task bench autoscale`: the live platform on simulated GPUs (`sim:h100x8`, time dilated ×K) under
 * the open-loop load generator: a step (30 % → 90 % → 30 % of what the 8 GPUs serve) and a ramp. Reports
 * time to recover ≥ 99 % attainment, GPU-seconds against the best static plan of each phase, re-plans, and
 * requests lost. Capacity is the planner's peak for the mix on 8 GPUs (gpulet policy, interference on).
 */
import { deployFolder } from "../src/api/admin_client.ts";
import { type LoadReport, runOpenLoop } from "../src/loadgen/open_loop.ts";
import { timelineSvg } from "../src/loadgen/report.ts";
import { Schedule } from "../src/loadgen/schedule.ts";
import { discoverTargets, gpuSampler } from "../src/api/load_targets.ts";
import { InterferenceModel } from "../src/planner/interference.ts";
import { loadLatencyModel } from "../src/planner/latency_model.ts";
import { loadPairs, observations } from "../src/planner/pairs.ts";
import { peakFor } from "../src/planner/policies.ts";
import { PROJECT_ROOT } from "../src/runtime/worker_command.ts";
import { startServer } from "../src/server.ts";
import { bestStatic, recoveries } from "../src/sim/simulator.ts";

/** Time dilation: 8 simulated H100s at 90 % take ~160 requests/s of real HTTP. */
const SCALE = 200;
const GPUS = 8;
/** The mix: bert carries the load, lenet rides along (SLOs of the Gpu-let scenarios). */
const MIX = [
  { name: "bert", model: "bert", sloMs: 20, maxBatch: 32, share: 0.9 },
  { name: "lenet", model: "lenet", sloMs: 0.3, maxBatch: 32, share: 0.1 },
];

export interface AutoscaleCase {
  name: string;
  /** Schedule rows `time_s,fraction,shape` of the 8-GPU capacity. */
  shape: [number, number, "step" | "ramp"][];
  seconds: number;
}

export const AUTOSCALE_CASES: AutoscaleCase[] = [
  { name: "step", shape: [[0, 0.3, "step"], [20, 0.9, "step"], [60, 0.3, "step"]], seconds: 100 },
  {
    name: "ramp",
    shape: [[0, 0.3, "step"], [20, 0.3, "step"], [50, 0.9, "ramp"], [70, 0.9, "step"], [100, 0.3, "ramp"]],
    seconds: 130,
  },
];

export interface AutoscaleResult {
  case: string;
  scale: number;
  /** Real requests/s at 100 % of the 8 GPUs (simulated rate / scale). */
  capacityPerS: number;
  attainment: number;
  sent: number;
  lost: number;
  errors: Record<string, number>;
  rejected: number;
  gpuSeconds: number;
  bestStaticGpuSeconds: number;
  gpuSecondsRatio: number;
  replans: number;
  recoveries: { at: number; seconds: number | null }[];
  history: { at: string; direction: string; gpusBefore: number; gpusAfter: number; reason: string }[];
  timeline: LoadReport["timeline"];
}

/** Runs one case on a fresh controller. */
async function runCase(c: AutoscaleCase, log: (line: string) => void): Promise<AutoscaleResult> {
  const latency = await loadLatencyModel(`${PROJECT_ROOT}/profiles/h100.csv`);
  const interference = InterferenceModel.fit(
    latency,
    observations(await loadPairs(`${PROJECT_ROOT}/profiles/h100-pairs.csv`)),
  );
  const fns = MIX.map((m) => ({ name: m.name, model: m.model, sloMs: m.sloMs, maxBatch: m.maxBatch, rate: m.share }));
  const peak = peakFor({ device: "h100", gpus: GPUS, functions: fns, latency, interference }, "gpulet");
  const capacity = peak.aggregateRate / SCALE;
  const csv = (k: number) =>
    "time_s,function,rate,shape\n" +
    c.shape.flatMap(([t, f, shape]) => MIX.map((m) => `${t},${m.name},${f * capacity * m.share * k},${shape}`))
      .join("\n");
  const schedule = Schedule.parse(csv(1), c.name);

  const stateDir = await Deno.makeTempDir({ prefix: "gpulet-bench-" });
  const server = await startServer({
    port: 0,
    stateDir,
    devices: `sim:h100x${GPUS}`,
    simScale: SCALE,
    log: (l) => {
      if (l.startsWith("plan ")) log(`  ${l}`);
    },
  });
  try {
    for (const m of MIX) {
      const dir = `${stateDir}/src/${m.name}`;
      await Deno.mkdir(dir, { recursive: true });
      await Deno.writeTextFile(
        `${dir}/function.ts`,
        `import { defineFunction } from "gpulet";\nexport default defineFunction(${
          JSON.stringify({ model: m.model, sloMs: m.sloMs, maxBatch: m.maxBatch })
        });\n`,
      );
      await deployFolder(server.url, dir);
    }
    log(`${c.name}: capacity ${capacity.toFixed(1)} req/s real (${peak.aggregateRate.toFixed(0)}/s simulated)`);
    const report = await runOpenLoop({
      url: new URL(server.url),
      targets: await discoverTargets(server.url, MIX.map((m) => m.name)),
      schedule,
      seconds: c.seconds,
      seed: 11,
      sampleGpus: gpuSampler(server.url),
      progress: (s) => {
        if (s.t % 10 === 9) log(`  ${s.t + 1} s: ${s.sent} req/s, ${s.gpus ?? "-"} GPUs`);
      },
    });
    const plan = await (await fetch(`${server.url}/admin/plan`)).json();
    const gpuSeconds = report.timeline.reduce((n, s) => n + (s.gpus ?? 0), 0);
    const best = bestStatic(
      { device: "h100", gpus: GPUS, latency, interference, policy: "gpulet" },
      MIX.map((m) => ({ name: m.name, model: m.model, sloMs: m.sloMs, maxBatch: m.maxBatch })),
      Schedule.parse(csv(SCALE), c.name),
      c.seconds,
    );
    const result: AutoscaleResult = {
      case: c.name,
      scale: SCALE,
      capacityPerS: capacity,
      attainment: report.overall.attainment,
      sent: report.overall.sent,
      lost: report.overall.lost,
      errors: report.overall.errors,
      rejected: report.overall.rejected,
      gpuSeconds,
      bestStaticGpuSeconds: best,
      gpuSecondsRatio: gpuSeconds / best,
      replans: plan.replans,
      recoveries: recoveries(schedule, report.timeline, c.seconds),
      history: plan.history.map((h: AutoscaleResult["history"][number]) => ({
        at: h.at,
        direction: h.direction,
        gpusBefore: h.gpusBefore,
        gpusAfter: h.gpusAfter,
        reason: h.reason,
      })),
      timeline: report.timeline,
    };
    await Deno.writeTextFile(
      `${PROJECT_ROOT}/bench/results/autoscale-${c.name}.svg`,
      timelineSvg(report, `autoscale ${c.name}: sim:h100x8 ×${SCALE}, bert + lenet`),
    );
    return result;
  } finally {
    await server.shutdown();
    await Deno.remove(stateDir, { recursive: true }).catch(() => {});
  }
}

/** Runs every case. */
export async function measureAutoscale(log: (line: string) => void, only?: string): Promise<AutoscaleResult[]> {
  const out: AutoscaleResult[] = [];
  for (const c of AUTOSCALE_CASES) if (!only || c.name.includes(only)) out.push(await runCase(c, log));
  return out;
}

/** The results as markdown. */
export function autoscaleMarkdown(results: AutoscaleResult[], command: string): string {
  const pct = (x: number) => `${(100 * x).toFixed(2)} %`;
  const rows = results.map((r) =>
    `| ${r.case} | ${r.capacityPerS.toFixed(1)} | ${r.sent} | ${pct(r.attainment)} | ${
      r.recoveries.map((x) => `${x.at} s: ${x.seconds === null ? "never" : `${x.seconds} s`}`).join(", ")
    } | ${r.gpuSeconds} / ${r.bestStaticGpuSeconds} = **${
      r.gpuSecondsRatio.toFixed(2)
    }** | ${r.replans} | ${r.rejected} | ${JSON.stringify(r.errors)} | **${r.lost}** |`
  );
  return [
    "# Autoscaling (live platform, simulated GPUs)",
    "",
    `Command: \`${command}\` (${
      new Date().toISOString()
    }). Devices \`sim:h100x${GPUS}\` with \`--sim-scale ${SCALE}\`;`,
    "functions bert (SLO 20 ms) and lenet (SLO 0.3 ms), 9:1, Poisson arrivals from the open-loop load generator over",
    "HTTP; default autoscaler policy (25 % headroom, 3σ up, down after 20 s below 60 % or 5 s below 40 %). Capacity = the planner's peak",
    "for the mix on 8 GPUs. GPU-seconds are sampled once a second from `GET /admin/plan` (draining gpu-lets count);",
    "the best static plan of each phase is planned for the phase's peak rates without headroom.",
    "",
    "| case | capacity (req/s real) | requests | within SLO | back to ≥ 99 % after each change | GPU-s vs best static per phase | re-plans | 429 | other errors | lost |",
    "|---|---|---|---|---|---|---|---|---|---|",
    ...rows,
    "",
    ...results.map((r) => `![${r.case}](autoscale-${r.case}.svg)`),
    "",
  ].join("\n");
}
