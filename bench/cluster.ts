/**
 * `deno task bench cluster`: a gpulet cluster on NATS JetStream against one big node, side by side.
 * 1. Forwarding: the added latency of a request that lands on a node which forwards it (NATS request/reply)
 *    to the node serving it, against the same request sent straight to that node (one at a time, alternating).
 * 2. Goodput: 3 nodes × `sim:h100x4` (real `start --cluster` processes, load spread over their three front
 *    doors) against 1 node × `sim:h100x12`, the same mix at 0.8× the planner's peak for 12 GPUs: goodput and
 *    SLO attainment after a warm-up in which the autoscalers size themselves.
 */
import { deployFolder } from "../src/api/admin_client.ts";
import { type LoadReport, runOpenLoop } from "../src/loadgen/open_loop.ts";
import { Schedule } from "../src/loadgen/schedule.ts";
import { discoverTargets } from "../src/api/load_targets.ts";
import { InterferenceModel } from "../src/planner/interference.ts";
import { loadLatencyModel } from "../src/planner/latency_model.ts";
import { loadPairs, observations } from "../src/planner/pairs.ts";
import { peakFor } from "../src/planner/policies.ts";
import { PROJECT_ROOT } from "../src/runtime/worker_command.ts";
import { startServer } from "../src/server.ts";
import { percentile } from "../src/loadgen/stats.ts";
import { type LocalNats, startLocalNats } from "../scripts/nats_local.ts";

/** Time dilation of the simulated GPUs: 12 H100s at 80 % take ~200 real requests/s. */
const SCALE = 200;
const GPUS = 12;
const NODES = 3;
/** The mix of the autoscaling benchmark: bert carries the load, lenet rides along. */
const MIX = [
  { name: "bert", model: "bert", sloMs: 20, maxBatch: 32, share: 0.9 },
  { name: "lenet", model: "lenet", sloMs: 0.3, maxBatch: 32, share: 0.1 },
];
/** Share of the 12-GPU peak the load runs at. */
const LOAD = 0.8;
const WARMUP_S = 15;
const MEASURE_S = 30;
/** Requests per arm of the forwarding measurement, after as many to warm up. */
const FORWARD_REQUESTS = 1500;
/** Length of the node-kill run (s). */
const KILL_S = 20;

export interface ClusterBenchResult {
  forwarding: {
    requests: number;
    directP50Ms: number;
    forwardedP50Ms: number;
    addedP50Ms: number;
    directP99Ms: number;
    forwardedP99Ms: number;
  };
  goodput: {
    scale: number;
    peakPerS: number;
    loadPerS: number;
    single: ArmStats;
    cluster: ArmStats;
    goodputRatio: number;
    kill: KillStats;
  };
}

/** A node killed under load (the whole load on the survivors' front doors). */
interface KillStats {
  node: string;
  gpusOfVictim: number;
  sent: number;
  lost: number;
  errors: Record<string, number>;
  /** Within-SLO share per second of the run (the kill at 5 s). */
  perSecond: number[];
  /** Seconds from the kill to the first second from which every second is ≥ 99 % within SLO. */
  servedAgainAfterS: number | null;
}

interface ArmStats {
  /** Within-SLO share per measured second (all front doors together). */
  perSecond: number[];
  /** Per function over the whole run (warm-up included): within SLO / sent. */
  functions: Record<string, number>;
  sent: number;
  good: number;
  goodputPerS: number;
  attainment: number;
  errors: Record<string, number>;
  lost: number;
  gpusPlanned?: number;
  /** Cluster plans the leader made over the run. */
  clusterPlans?: number;
  /** Re-plans of each node's own autoscaler over the run. */
  nodeReplans?: number[];
}

/** A `start` process of one node. */
interface NodeProcess {
  url: string;
  child: Deno.ChildProcess;
}

async function startNode(name: string, nats: LocalNats, devices: string, scale: number): Promise<NodeProcess> {
  const state = await Deno.makeTempDir({ prefix: `gpulet-bench-${name}-` });
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${PROJECT_ROOT}/src/cli/start.ts`,
      "--port",
      "0",
      "--grpc-port",
      "off",
      "--cluster",
      nats.clusterFlag,
      "--node",
      name,
      "--devices",
      devices,
      "--sim-scale",
      String(scale),
      "--state",
      state,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`node ${name} ended: ${out}`);
    out += value;
    const url = out.match(/listening on (http:\/\/[0-9.:]+)/)?.[1];
    if (url) {
      (async () => {
        while (!(await reader.read()).done) { /* drain its log */ }
      })();
      return { url, child };
    }
  }
}

async function stopNodes(nodes: NodeProcess[]): Promise<void> {
  for (const n of nodes) {
    try {
      n.child.kill("SIGTERM");
    } catch { /* gone */ }
  }
  await Promise.all(nodes.map((n) => n.child.status));
}

async function json(url: string) {
  return await (await fetch(url)).json();
}

async function writeFunctions(dir: string): Promise<string[]> {
  return await Promise.all(MIX.map(async (m) => {
    const d = `${dir}/${m.name}`;
    await Deno.mkdir(d, { recursive: true });
    await Deno.writeTextFile(
      `${d}/function.ts`,
      `import { defineFunction } from "gpulet";\nexport default defineFunction(${
        JSON.stringify({ model: m.model, sloMs: m.sloMs, maxBatch: m.maxBatch })
      });\n`,
    );
    return d;
  }));
}

/** The added latency of one forwarding hop: 2 nodes, lenet, sequential requests alternating between them. */
async function measureForwarding(log: (l: string) => void): Promise<ClusterBenchResult["forwarding"]> {
  const nats = await startLocalNats(1);
  const nodes: NodeProcess[] = [];
  try {
    for (const n of ["n1", "n2"]) nodes.push(await startNode(n, nats, "sim:h100x1", 1));
    // The shipped lenet function (SLO 100 ms): at scale 1 the mix's lenet SLO (0.3 ms) is no HTTP request's.
    await deployFolder(nodes[0].url, `${PROJECT_ROOT}/functions/lenet`);
    const body = JSON.stringify({ image: new Array(784).fill(0) });
    const call = async (url: string) => {
      const t0 = performance.now();
      const res = await fetch(`${url}/functions/lenet/invoke`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      await res.arrayBuffer();
      if (!res.ok) throw new Error(`infer at ${url}: ${res.status}`);
      return performance.now() - t0;
    };
    for (let i = 0; i < 300; i++) {
      const v = await json(`${nodes[1].url}/admin/cluster`);
      if (v.nodes.length === 2 && v.nodes.every((x: { ready: string[] }) => x.ready.includes("lenet"))) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    // Load until the plan routes lenet to one node: that node serves, the other forwards.
    let served = "";
    for (let i = 0; i < 20_000 && !served; i++) {
      await call(nodes[i % 2].url);
      if (i % 200 === 199) {
        const routes = (await json(`${nodes[0].url}/admin/cluster`)).plan?.routes?.lenet ?? [];
        if (routes.length === 1) served = routes[0].node;
      }
    }
    if (!served) throw new Error("the cluster plan never routed lenet to one node");
    const direct = nodes[served === "n1" ? 0 : 1].url, via = nodes[served === "n1" ? 1 : 0].url;
    const d: number[] = [], f: number[] = [];
    for (let i = 0; i < 2 * FORWARD_REQUESTS; i++) {
      const a = await call(direct), b = await call(via);
      if (i >= FORWARD_REQUESTS) d.push(a), f.push(b);
      if (i % 500 === 499) log(`forwarding: ${i + 1}/${2 * FORWARD_REQUESTS}`);
    }
    const routing = (await json(`${via}/admin/cluster`)).routing;
    if (routing.forwarded < FORWARD_REQUESTS) throw new Error(`only ${routing.forwarded} were forwarded`);
    d.sort((x, y) => x - y);
    f.sort((x, y) => x - y);
    const p = (xs: number[], q: number) => percentile(xs, q)!;
    return {
      requests: d.length,
      directP50Ms: p(d, 0.5),
      forwardedP50Ms: p(f, 0.5),
      addedP50Ms: p(f, 0.5) - p(d, 0.5),
      directP99Ms: p(d, 0.99),
      forwardedP99Ms: p(f, 0.99),
    };
  } finally {
    await stopNodes(nodes);
    await nats.stop();
  }
}

/** Counts over the measured seconds of one or more runs (after the warm-up). */
function measured(reports: LoadReport[]): ArmStats {
  let sent = 0, good = 0;
  const errors: Record<string, number> = {};
  let lost = 0;
  for (const r of reports) {
    for (const s of r.timeline) {
      if (s.t < WARMUP_S || s.t >= WARMUP_S + MEASURE_S) continue;
      sent += s.sent;
      good += s.good;
    }
    for (const [k, v] of Object.entries(r.overall.errors)) errors[k] = (errors[k] ?? 0) + v;
    lost += r.overall.lost;
  }
  const perSecond: number[] = [];
  for (let t = WARMUP_S; t < WARMUP_S + MEASURE_S; t++) {
    const at = reports.flatMap((r) => r.timeline.filter((x) => x.t === t));
    const n = at.reduce((a, x) => a + x.sent, 0);
    perSecond.push(n ? at.reduce((a, x) => a + x.good, 0) / n : 1);
  }
  const functions: Record<string, number> = {};
  for (const m of MIX) {
    const st = reports.map((r) => r.functions[m.name]).filter(Boolean);
    const n = st.reduce((a, x) => a + x.sent, 0);
    functions[m.name] = n ? st.reduce((a, x) => a + x.good, 0) / n : 0;
  }
  return {
    perSecond,
    functions,
    sent,
    good,
    goodputPerS: good / MEASURE_S,
    attainment: sent ? good / sent : 0,
    errors,
    lost,
  };
}

function scheduleFor(ratePerS: number): Schedule {
  const csv = "time_s,function,rate,shape\n" + MIX.map((m) => `0,${m.name},${ratePerS * m.share},step`).join("\n");
  return Schedule.parse(csv, "steady");
}

async function measureGoodput(log: (l: string) => void): Promise<ClusterBenchResult["goodput"]> {
  const latency = await loadLatencyModel(`${PROJECT_ROOT}/profiles/h100.csv`);
  const interference = InterferenceModel.fit(
    latency,
    observations(await loadPairs(`${PROJECT_ROOT}/profiles/h100-pairs.csv`)),
  );
  const fns = MIX.map((m) => ({ name: m.name, model: m.model, sloMs: m.sloMs, maxBatch: m.maxBatch, rate: m.share }));
  const peak = peakFor({ device: "h100", gpus: GPUS, functions: fns, latency, interference }, "gpulet");
  const peakPerS = peak.aggregateRate / SCALE;
  const loadPerS = LOAD * peakPerS;
  const seconds = WARMUP_S + MEASURE_S;
  log(`goodput: peak ${peakPerS.toFixed(1)} req/s real on ${GPUS} GPUs; load ${loadPerS.toFixed(1)} req/s`);
  const dirs = await writeFunctions(await Deno.makeTempDir({ prefix: "gpulet-bench-fns-" }));

  // One node with 12 simulated GPUs.
  const state = await Deno.makeTempDir({ prefix: "gpulet-bench-single-" });
  const server = await startServer({
    port: 0,
    stateDir: state,
    devices: `sim:h100x${GPUS}`,
    simScale: SCALE,
    log: () => {},
  });
  let single: ArmStats;
  try {
    for (const d of dirs) await deployFolder(server.url, d);
    let gpusPlanned: number | undefined;
    const sampler = setTimeout(async () => {
      gpusPlanned = (await json(`${server.url}/admin/plan`)).gpusInUse;
    }, (WARMUP_S + MEASURE_S - 2) * 1000);
    const report = await runOpenLoop({
      url: new URL(server.url),
      targets: await discoverTargets(server.url, MIX.map((m) => m.name)),
      schedule: scheduleFor(loadPerS),
      seconds,
      seed: 5,
    });
    clearTimeout(sampler);
    single = measured([report]);
    single.gpusPlanned = gpusPlanned;
    single.nodeReplans = [(await json(`${server.url}/admin/plan`)).replans];
  } finally {
    await server.shutdown();
  }
  log(`goodput: one node ${single.goodputPerS.toFixed(1)} good/s, ${(100 * single.attainment).toFixed(2)} %`);
  log(
    `  per second: ${single.perSecond.map((x) => x.toFixed(3)).join(" ")}; per function: ${
      JSON.stringify(single.functions)
    }`,
  );

  // Three nodes with 4 each, the load spread over their front doors.
  const nats = await startLocalNats(3);
  const nodes: NodeProcess[] = [];
  let cluster: ArmStats;
  let kill: KillStats;
  try {
    for (let i = 1; i <= NODES; i++) nodes.push(await startNode(`n${i}`, nats, `sim:h100x${GPUS / NODES}`, SCALE));
    for (const d of dirs) await deployFolder(nodes[0].url, d);
    for (const n of nodes) {
      for (let i = 0; i < 200; i++) {
        const v = await json(`${n.url}/admin/cluster`);
        if (v.nodes.every((x: { ready: string[] }) => MIX.every((m) => x.ready.includes(m.name)))) break;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    let gpusPlanned: number | undefined;
    const sampler = setTimeout(async () => {
      gpusPlanned = (await json(`${nodes[0].url}/admin/cluster`)).plan?.gpusUsed;
    }, (WARMUP_S + MEASURE_S - 2) * 1000);
    const reports = await Promise.all(nodes.map(async (n, i) =>
      runOpenLoop({
        url: new URL(n.url),
        targets: await discoverTargets(n.url, MIX.map((m) => m.name)),
        schedule: scheduleFor(loadPerS / NODES),
        seconds,
        seed: 5 + i,
      })
    ));
    clearTimeout(sampler);
    cluster = measured(reports);
    cluster.gpusPlanned = gpusPlanned;
    cluster.clusterPlans = (await json(`${nodes[0].url}/admin/cluster`)).plan?.seq;
    cluster.nodeReplans = await Promise.all(nodes.map(async (n) => (await json(`${n.url}/admin/plan`)).replans));
    // A node killed under load: the two others' front doors take the whole load; the node the plan gives
    // the most GPUs is killed with SIGKILL 5 s in.
    const plan = (await json(`${nodes[0].url}/admin/cluster`)).plan;
    const victimName = [...plan.nodes].sort((x: { gpusUsed: number }, y: { gpusUsed: number }) =>
      y.gpusUsed - x.gpusUsed
    )[0].name as string;
    const victim = nodes[Number(victimName.slice(1)) - 1];
    const survivors = nodes.filter((n) => n !== victim);
    const killAt = 5;
    setTimeout(() => victim.child.kill("SIGKILL"), killAt * 1000);
    const after = await Promise.all(survivors.map(async (n, i) =>
      runOpenLoop({
        url: new URL(n.url),
        targets: await discoverTargets(n.url, MIX.map((m) => m.name)),
        schedule: scheduleFor(loadPerS / survivors.length),
        seconds: KILL_S,
        seed: 50 + i,
      })
    ));
    const perSecond = Array.from({ length: KILL_S }, (_, t) => {
      const at = after.flatMap((r) => r.timeline.filter((x) => x.t === t));
      const n = at.reduce((a, x) => a + x.sent, 0);
      return n ? at.reduce((a, x) => a + x.good, 0) / n : 1;
    });
    const firstGood = perSecond.findIndex((_, t) => t > killAt && perSecond.slice(t).every((y) => y >= 0.99));
    kill = {
      node: victimName,
      gpusOfVictim: plan.nodes.find((n: { name: string }) => n.name === victimName).gpusUsed,
      sent: after.reduce((a, r) => a + r.overall.sent, 0),
      lost: after.reduce((a, r) => a + r.overall.lost, 0),
      errors: after.reduce((acc, r) => {
        for (const [k, v] of Object.entries(r.overall.errors)) acc[k] = (acc[k] ?? 0) + v;
        return acc;
      }, {} as Record<string, number>),
      perSecond,
      servedAgainAfterS: firstGood < 0 ? null : firstGood - killAt,
    };
  } finally {
    await stopNodes(nodes);
    await nats.stop();
  }
  log(`goodput: cluster ${cluster.goodputPerS.toFixed(1)} good/s, ${(100 * cluster.attainment).toFixed(2)} %`);
  log(
    `  per second: ${cluster.perSecond.map((x) => x.toFixed(3)).join(" ")}; per function: ${
      JSON.stringify(cluster.functions)
    }`,
  );
  log(`kill: ${JSON.stringify(kill)}`);
  return {
    scale: SCALE,
    peakPerS,
    loadPerS,
    single,
    cluster,
    goodputRatio: cluster.goodputPerS / single.goodputPerS,
    kill,
  };
}

/** Both measurements. */
export async function measureCluster(log: (l: string) => void): Promise<ClusterBenchResult> {
  const forwarding = await measureForwarding(log);
  log(`forwarding: +${forwarding.addedP50Ms.toFixed(3)} ms p50`);
  return { forwarding, goodput: await measureGoodput(log) };
}

/** The result as Markdown. */
export function clusterMarkdown(r: ClusterBenchResult, command: string): string {
  const f = (x: number, d = 3) => x.toFixed(d);
  const g = r.goodput;
  const arm = (name: string, a: ArmStats) =>
    `| ${name} | ${a.sent} | ${f(a.goodputPerS, 1)} | ${f(100 * a.attainment, 2)} % | ${a.gpusPlanned ?? "-"} | ${
      JSON.stringify(a.errors)
    } | ${a.lost} |`;
  return [
    `# Cluster: NATS JetStream, 3 nodes against 1`,
    ``,
    `Command: \`${command}\` (${new Date().toISOString()}), everything on this machine's loopback.`,
    ``,
    `## Forwarding`,
    ``,
    `Two nodes (\`sim:h100x1\`, 1 nats-server), lenet; ${r.forwarding.requests} requests per arm, one at a time,`,
    `alternating: straight to the node the cluster plan routes lenet to, and to the other node, which forwards`,
    `it over NATS request/reply. ms.`,
    ``,
    `| path | p50 | p99 |`,
    `|---|---|---|`,
    `| direct | ${f(r.forwarding.directP50Ms)} | ${f(r.forwarding.directP99Ms)} |`,
    `| forwarded | ${f(r.forwarding.forwardedP50Ms)} | ${f(r.forwarding.forwardedP99Ms)} |`,
    ``,
    `Added by forwarding, p50: **${f(r.forwarding.addedP50Ms)} ms** (target ≤ 1 ms).`,
    ``,
    `## Goodput`,
    ``,
    `bert (90 %) + lenet (10 %) at ${f(g.loadPerS, 1)} real req/s = ${LOAD}× the planner's peak for ${GPUS} H100s`,
    `(${f(g.peakPerS, 1)} req/s; simulated GPUs dilated ×${g.scale}), Poisson, ${WARMUP_S} s warm-up then`,
    `${MEASURE_S} s measured. Cluster: 3 \`start --cluster\` processes × \`sim:h100x4\`, 3 nats-servers, the load`,
    `split over the three front doors; single: one node × \`sim:h100x12\`.`,
    ``,
    `| arm | sent (measured) | goodput req/s | within SLO | GPUs planned | errors (whole run) | lost |`,
    `|---|---|---|---|---|---|---|`,
    arm("1 node × 12 GPUs", g.single),
    arm("3 nodes × 4 GPUs", g.cluster),
    ``,
    `Goodput ratio cluster / single: **${f(g.goodputRatio, 3)}** (target ≥ 0.9; attainment target ≥ 99 %).`,
    ``,
    `## A node killed under load`,
    ``,
    `Then the same load on the two other nodes' front doors for ${KILL_S} s, and the node with the most planned`,
    `GPUs (${g.kill.node}, ${g.kill.gpusOfVictim}) killed with SIGKILL 5 s in: ${g.kill.sent} requests sent, ${g.kill.lost} lost,`,
    `errors ${JSON.stringify(g.kill.errors)}; within SLO per second:`,
    `${g.kill.perSecond.map((x) => f(x, 3)).join(" ")}.`,
    `Served again (every second from then on ≥ 99 % within SLO) **${
      g.kill.servedAgainAfterS === null ? "never" : `${g.kill.servedAgainAfterS} s`
    }** after the kill (target ≤ 3 s, 0 lost).`,
    ``,
  ].join("\n");
}
