/**
 * `deno task bench reliability`: the figures behind the reliability suite, measured on the live platform.
 *
 * - Overload: the `sleepy` fixture (8 ms of CPU per request, SLO 300 ms, one gpu-let) at 0.5×–3× the peak
 *   a closed loop measures: goodput, admitted requests within the SLO, how fast 429s come back, lost.
 * - Bursts of lenet requests sent at once, idle and under a CPU hog, next to a shadow controller that admits
 *   everything: how many refused requests would have met their SLO (`./bursts.ts`).
 * - kill -9 of a gpu-let under load (two gpu-lets: the lost batch is retried; one: it gets 503), a hung
 *   gpu-let (killed at the hang bound), and a SIGKILLed controller (its workers exit; a restart is ready).
 *   Each is timed from the fault to the function being whole again; requests lost is counted.
 */
import { closedLoop } from "../src/loadgen/closed_loop.ts";
import { prepareRequest } from "../src/loadgen/http.ts";
import { type LoadStats, runOpenLoop } from "../src/loadgen/open_loop.ts";
import { Schedule } from "../src/loadgen/schedule.ts";
import { PROJECT_ROOT } from "../src/runtime/worker_command.ts";
import { type BurstPoint, burstsMarkdown, measureBursts } from "./bursts.ts";
import { deployFolder, metric, server, workerPids } from "./live_server.ts";

const FIXTURES = `${PROJECT_ROOT}/tests/fixtures/functions`;
const SLEEPY_SLO_MS = 300;
export const OVERLOAD_FACTORS = [0.5, 1, 1.5, 2, 3];

export interface OverloadPoint {
  factor: number;
  offeredPerS: number;
  goodputPerS: number;
  /** goodput / peak. */
  goodputOfPeak: number;
  /** Of the requests admitted (2xx), the share within the SLO. */
  admittedWithinSlo: number;
  /** Share of requests answered 429. */
  shed: number;
  stats: LoadStats;
}

export interface FaultRun {
  /** Fault → function whole again (all its gpu-lets warm and serving), ms. */
  recoveryMs: number;
  sent: number;
  ok: number;
  /** Statuses other than 200, by code. */
  errors: Record<string, number>;
  /** Requests that got no answer at all. */
  lost: number;
  retried: number;
  maxLatencyMs: number;
}

export interface ReliabilityResult {
  peakPerS: number;
  overload: OverloadPoint[];
  killTwoGpulets: FaultRun[];
  killOneGpulet: FaultRun[];
  hang: { boundMs: number; answeredAfterMs: number; status: number; recoveryMs: number }[];
  controllerCrash: { workersGoneMs: number; restartReadyMs: number; firstRequestMs: number }[];
  bursts: BurstPoint[];
}

/** Polls every 10 ms until `cond` holds; resolves with the time since `since` (ms). */
async function until(cond: () => Promise<boolean> | boolean, since: number, timeoutMs = 60_000): Promise<number> {
  while (!(await cond())) {
    if (performance.now() - since > timeoutMs) throw new Error(`no recovery within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return performance.now() - since;
}

/** Running, as opposed to gone or a zombie waiting for its reaper (exited all the same). */
const alive = (pid: number) => {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
};

async function measureOverload(log: (l: string) => void, seconds: number) {
  const s = await server();
  try {
    await deployFolder(s.url, `${FIXTURES}/sleepy`);
    const url = new URL(`${s.url}/functions/sleepy/invoke`);
    const request = prepareRequest(url, JSON.stringify({ delayMs: 8, value: 1 }), {
      "content-type": "application/json",
    });
    const peakRun = await closedLoop(url, request, 6, 5);
    const peakPerS = peakRun.latencies.filter((ms) => ms <= SLEEPY_SLO_MS).length / 5;
    log(`overload: peak ${peakPerS.toFixed(1)} req/s within the SLO (closed loop, 6 clients)`);
    const overload: OverloadPoint[] = [];
    for (const factor of OVERLOAD_FACTORS) {
      const rate = factor * peakPerS;
      const report = await runOpenLoop({
        url: new URL(s.url),
        targets: [{ name: "sleepy", request, sloMs: SLEEPY_SLO_MS }],
        schedule: new Schedule([{ time_s: 0, function: "sleepy", rate, shape: "step" }]),
        seconds,
        graceMs: 10_000,
        seed: 7,
      });
      const st = report.overall;
      overload.push({
        factor,
        offeredPerS: rate,
        goodputPerS: st.goodput,
        goodputOfPeak: st.goodput / peakPerS,
        admittedWithinSlo: st.ok ? st.good / st.ok : 1,
        shed: st.rejected / st.sent,
        stats: st,
      });
      log(
        `  ${factor}×: goodput ${st.goodput.toFixed(1)}/s (${(100 * st.goodput / peakPerS).toFixed(0)} % of peak), ` +
          `admitted within SLO ${(100 * (st.ok ? st.good / st.ok : 1)).toFixed(2)} %, 429 p99 ${
            st.rejectP99Ms?.toFixed(1) ?? "-"
          } ms, lost ${st.lost}`,
      );
      await new Promise((r) => setTimeout(r, 1000));
    }
    return { peakPerS, overload };
  } finally {
    await s.shutdown();
  }
}

/** Paced load on `slow` (10 ms of CPU each, one every 20 ms) with a kill -9 of one gpu-let 1.5 s in. */
async function killRun(gpulets: number): Promise<FaultRun> {
  const s = await server({ gpuletsPerFunction: gpulets });
  try {
    await deployFolder(s.url, `${FIXTURES}/slow`);
    const before = await workerPids(s.url);
    const answers: Promise<{ status: number; ms: number } | null>[] = [];
    const start = performance.now();
    let recovery: Promise<number> | undefined;
    for (let i = 0; performance.now() - start < 4000; i++) {
      if (!recovery && performance.now() - start > 1500) {
        Deno.kill(before[0], "SIGKILL");
        recovery = until(async () => {
          const now = await workerPids(s.url);
          return now.length === gpulets && !now.includes(before[0]);
        }, performance.now());
      }
      const t0 = performance.now();
      answers.push(
        fetch(`${s.url}/functions/slow/invoke`, { method: "POST", body: JSON.stringify({ delayMs: 10, value: i }) })
          .then(async (r) => {
            await r.body?.cancel();
            return { status: r.status, ms: performance.now() - t0 };
          })
          .catch(() => null),
      );
      await new Promise((r) => setTimeout(r, 20));
    }
    const recoveryMs = await recovery!;
    const got = await Promise.all(answers);
    const errors: Record<string, number> = {};
    for (const a of got) if (a && a.status !== 200) errors[a.status] = (errors[a.status] ?? 0) + 1;
    return {
      recoveryMs,
      sent: got.length,
      ok: got.filter((a) => a?.status === 200).length,
      errors,
      lost: got.filter((a) => a === null).length,
      retried: await metric(s.url, 'gpulet_retries_total{function="slow"}'),
      maxLatencyMs: Math.max(...got.map((a) => a?.ms ?? 0)),
    };
  } finally {
    await s.shutdown();
  }
}

async function hangRun(boundMs: number) {
  const s = await server({ hangTimeoutMs: boundMs });
  try {
    await deployFolder(s.url, `${FIXTURES}/sleepy`);
    const [pid] = await workerPids(s.url);
    const t0 = performance.now();
    const res = await fetch(`${s.url}/functions/sleepy/invoke`, {
      method: "POST",
      body: JSON.stringify({ delayMs: 0, value: 1, hang: true }),
    });
    await res.body?.cancel();
    const answeredAfterMs = performance.now() - t0;
    const recoveryMs = await until(async () => {
      const now = await workerPids(s.url);
      return now.length === 1 && now[0] !== pid;
    }, t0);
    return { boundMs, answeredAfterMs, status: res.status, recoveryMs };
  } finally {
    await s.shutdown();
  }
}

/** `deno task start` as a process on `port`; resolves once it prints that it listens. */
async function startProcess(state: string, port: number): Promise<Deno.ChildProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${PROJECT_ROOT}/src/cli/start.ts`, "--port", String(port), "--state", state],
    cwd: PROJECT_ROOT,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!out.includes("listening on")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`start exited: ${out}`);
    out += value;
  }
  reader.releaseLock();
  child.stdout.cancel().catch(() => {});
  return child;
}

async function controllerCrashRun() {
  const state = await Deno.makeTempDir({ prefix: "gpulet-bench-restart-" });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const base = `http://127.0.0.1:${port}`;
  const first = await startProcess(state, port);
  await deployFolder(base, `${PROJECT_ROOT}/functions/lenet`);
  await deployFolder(base, `${FIXTURES}/slow`);
  const workers = await workerPids(base);
  first.kill("SIGKILL");
  await first.status;
  const killedAt = performance.now();
  const workersGoneMs = await until(() => !workers.some(alive), killedAt);

  const startedAt = performance.now();
  const second = startProcess(state, port);
  const restartReadyMs = await until(async () => {
    try {
      const r = await fetch(`${base}/v2/health/ready`);
      await r.body?.cancel();
      return r.status === 200;
    } catch {
      return false;
    }
  }, startedAt);
  const t0 = performance.now();
  const r = await fetch(`${base}/functions/lenet/invoke`, {
    method: "POST",
    body: JSON.stringify({ image: new Array(784).fill(3) }),
  });
  await r.body?.cancel();
  const firstRequestMs = performance.now() - t0;
  const child = await second;
  child.kill("SIGTERM");
  await child.status;
  return { workersGoneMs, restartReadyMs, firstRequestMs };
}

/** Runs every measurement; `seconds` is the length of each overload step. */
export async function measureReliability(log: (l: string) => void, seconds = 10): Promise<ReliabilityResult> {
  const { peakPerS, overload } = await measureOverload(log, seconds);
  const bursts = await measureBursts(log);
  const REPEATS = 3;
  const killTwoGpulets: FaultRun[] = [];
  const killOneGpulet: FaultRun[] = [];
  for (let i = 0; i < REPEATS; i++) {
    killTwoGpulets.push(await killRun(2));
    log(`kill -9, two gpu-lets: ${JSON.stringify(killTwoGpulets.at(-1))}`);
    killOneGpulet.push(await killRun(1));
    log(`kill -9, one gpu-let: ${JSON.stringify(killOneGpulet.at(-1))}`);
  }
  const hang = [];
  for (let i = 0; i < REPEATS; i++) {
    hang.push(await hangRun(1000));
    log(`hang: ${JSON.stringify(hang.at(-1))}`);
  }
  const controllerCrash = [];
  for (let i = 0; i < REPEATS; i++) {
    controllerCrash.push(await controllerCrashRun());
    log(`controller SIGKILL: ${JSON.stringify(controllerCrash.at(-1))}`);
  }
  return { peakPerS, overload, killTwoGpulets, killOneGpulet, hang, controllerCrash, bursts };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const f = (x: number | null | undefined, d = 1) => (x === null || x === undefined ? "-" : x.toFixed(d));

/** The results as a Markdown page (with the figure's file name). */
export function reliabilityMarkdown(r: ReliabilityResult, command: string): string {
  const sum = (runs: FaultRun[], k: "sent" | "ok" | "lost" | "retried") => runs.reduce((n, x) => n + x[k], 0);
  const errs = (runs: FaultRun[]) => {
    const all: Record<string, number> = {};
    for (const x of runs) for (const [k, v] of Object.entries(x.errors)) all[k] = (all[k] ?? 0) + v;
    return Object.keys(all).length ? Object.entries(all).map(([k, v]) => `${v}× ${k}`).join(", ") : "none";
  };
  const fault = (what: string, runs: FaultRun[]) =>
    `| ${what} | ${runs.length} | ${sum(runs, "sent")} | ${sum(runs, "ok")} | ${errs(runs)} | **${
      sum(runs, "lost")
    }** | ${sum(runs, "retried")} | ${f(median(runs.map((x) => x.recoveryMs)), 0)} (${
      runs.map((x) => f(x.recoveryMs, 0)).join(", ")
    }) | ${f(Math.max(...runs.map((x) => x.maxLatencyMs)), 0)} |`;
  return [
    `# Reliability`,
    ``,
    `Command: \`${command}\` (${new Date().toISOString()}). Figure: \`reliability-overload.svg\`.`,
    ``,
    `## Overload`,
    ``,
    `\`sleepy\` fixture: 8 ms of CPU per request, SLO ${SLEEPY_SLO_MS} ms, one gpu-let, maxBatch 1. Peak = ${
      f(r.peakPerS)
    } req/s within the SLO (closed loop, 6 clients). Open-loop Poisson arrivals at each factor of the peak.`,
    ``,
    `| offered | req/s | goodput req/s | goodput / peak | admitted within SLO | shed (429) | 429 p50 / p99 ms | admitted p50 / p99 ms | other errors | lost |`,
    `|---|---|---|---|---|---|---|---|---|---|`,
    ...r.overload.map((p) =>
      `| ${p.factor}× | ${f(p.offeredPerS)} | ${f(p.goodputPerS)} | **${f(100 * p.goodputOfPeak, 0)} %** | **${
        f(100 * p.admittedWithinSlo, 2)
      } %** | ${f(100 * p.shed, 0)} % | ${f(p.stats.rejectP50Ms)} / ${f(p.stats.rejectP99Ms)} | ${
        f(p.stats.p50Ms, 0)
      } / ${f(p.stats.p99Ms, 0)} | ${Object.values(p.stats.errors).reduce((a, b) => a + b, 0)} | ${p.stats.lost} |`
    ),
    ``,
    ...burstsMarkdown(r.bursts),
    `## Faults`,
    ``,
    `kill -9: \`slow\` fixture (10 ms of CPU per request, one request every 20 ms for 4 s), one gpu-let killed`,
    `1.5 s in. Recovery = kill → every gpu-let of the function warm and serving again (median, then each run).`,
    ``,
    `| fault | runs | sent | 200 | other answers | lost | retried | recovery ms | slowest answer ms |`,
    `|---|---|---|---|---|---|---|---|---|`,
    fault("kill -9 of one of two gpu-lets", r.killTwoGpulets),
    fault("kill -9 of the only gpu-let", r.killOneGpulet),
    ``,
    `| fault | runs | bound / answered after ms | status | recovery ms |`,
    `|---|---|---|---|---|`,
    `| gpu-let hangs | ${r.hang.length} | ${r.hang[0]?.boundMs} / ${
      r.hang.map((h) => f(h.answeredAfterMs, 0)).join(", ")
    } | ${[...new Set(r.hang.map((h) => h.status))].join(", ")} | ${f(median(r.hang.map((h) => h.recoveryMs)), 0)} (${
      r.hang.map((h) => f(h.recoveryMs, 0)).join(", ")
    }) |`,
    ``,
    `Controller SIGKILL with lenet and slow deployed (two workers), then \`deno task start\` on the same state:`,
    ``,
    `| runs | workers gone after ms | restart → ready ms | first request after ready ms |`,
    `|---|---|---|---|`,
    `| ${r.controllerCrash.length} | ${r.controllerCrash.map((c) => f(c.workersGoneMs, 0)).join(", ")} | ${
      r.controllerCrash.map((c) => f(c.restartReadyMs, 0)).join(", ")
    } | ${r.controllerCrash.map((c) => f(c.firstRequestMs, 1)).join(", ")} |`,
    ``,
  ].join("\n");
}

/** Goodput and admitted-within-SLO against offered load, as an SVG line chart. */
export function overloadSvg(r: ReliabilityResult): string {
  const W = 640, H = 360, L = 60, R = 60, T = 40, B = 50;
  const maxX = Math.max(...r.overload.map((p) => p.factor));
  const maxY = Math.max(...r.overload.map((p) => p.offeredPerS), r.peakPerS) * 1.05;
  const x = (v: number) => L + (v / maxX) * (W - L - R);
  const y = (v: number) => H - B - (v / maxY) * (H - T - B);
  const yPct = (v: number) => H - B - v * (H - T - B);
  const line = (pts: [number, number][], color: string, dash = "") =>
    `<polyline fill="none" stroke="${color}" stroke-width="2" ${dash ? `stroke-dasharray="${dash}"` : ""} points="${
      pts.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(" ")
    }"/>` + pts.map(([a, b]) => `<circle cx="${a.toFixed(1)}" cy="${b.toFixed(1)}" r="3" fill="${color}"/>`).join("");
  const ticks = r.overload.map((p) =>
    `<text x="${x(p.factor)}" y="${H - B + 18}" text-anchor="middle">${p.factor}×</text>`
  ).join("");
  const yTicks = [0, 0.25, 0.5, 0.75, 1].map((k) =>
    `<text x="${L - 6}" y="${y(k * maxY) + 4}" text-anchor="end">${(k * maxY).toFixed(0)}</text>` +
    `<text x="${W - R + 6}" y="${yPct(k) + 4}">${(100 * k).toFixed(0)} %</text>` +
    `<line x1="${L}" x2="${W - R}" y1="${y(k * maxY)}" y2="${y(k * maxY)}" stroke="#eee"/>`
  ).join("");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="${L}" y="20" font-size="14">Overload: goodput and admitted requests within the SLO (sleepy, one gpu-let)</text>
${yTicks}${ticks}
<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">offered load (× peak)</text>
<text x="14" y="${(T + H - B) / 2}" transform="rotate(-90 14 ${(T + H - B) / 2})" text-anchor="middle">requests/s</text>
${line(r.overload.map((p) => [x(p.factor), y(p.offeredPerS)]), "#999", "4 3")}
${line(r.overload.map((p) => [x(p.factor), y(p.goodputPerS)]), "#1f77b4")}
${line(r.overload.map((p) => [x(p.factor), yPct(p.admittedWithinSlo)]), "#2ca02c")}
<line x1="${L}" x2="${W - R}" y1="${y(r.peakPerS)}" y2="${y(r.peakPerS)}" stroke="#d62728" stroke-dasharray="2 2"/>
<text x="${L + 4}" y="${y(r.peakPerS) - 4}" fill="#d62728">peak ${r.peakPerS.toFixed(0)}/s</text>
<g transform="translate(${W / 2},${H - B - 48})">
<text y="0" fill="#999">offered</text><text y="16" fill="#1f77b4">goodput (req/s, left)</text>
<text y="32" fill="#2ca02c">admitted within SLO (%, right)</text></g>
</svg>
`;
}
