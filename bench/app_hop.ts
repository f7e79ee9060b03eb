/**
 * The added latency of an app hop: the same lenet request sent straight to the function
 * (`POST /functions/lenet/invoke`) and through a one-stage app that passes it on (`POST /functions/hop/invoke`:
 * controller → app process → stage call back into lenet's dispatcher → reply → answer), one request at a
 * time, the arms alternating in rounds on the real server, so the VM's drift falls on both alike.
 */
import { startServer } from "../src/server.ts";
import { deployFolder } from "../src/api/admin_client.ts";
import { percentile } from "../src/loadgen/stats.ts";
import { PROJECT_ROOT } from "../src/runtime/worker_command.ts";

export interface AppHopResult {
  requestsPerArm: number;
  directP50Ms: number;
  appP50Ms: number;
  directP99Ms: number;
  appP99Ms: number;
  /** p50 of the app path less p50 of the direct path (ms). */
  hopP50Ms: number;
}

const REQUESTS = 300;
const ROUNDS = 6;

const HOP_APP = `import { defineApp, z } from "gpulet";
export default defineApp({
  sloMs: 1000,
  input: z.object({ image: z.array(z.number()) }),
  stages: { digit: { function: "lenet" } },
  run: ({ image }, ctx) => ctx.call("digit", { image }),
});
`;

const median = (xs: number[], q = 0.5) => percentile([...xs].sort((a, b) => a - b), q) ?? NaN;

/** Measures both arms; `progress` gets a line per round. */
export async function measureAppHop(progress: (line: string) => void): Promise<AppHopResult> {
  const stateDir = await Deno.makeTempDir({ prefix: "gpulet-bench-hop-" });
  const appDir = `${stateDir}/src/hop`;
  await Deno.mkdir(appDir, { recursive: true });
  await Deno.writeTextFile(`${appDir}/function.ts`, HOP_APP);
  const server = await startServer({ port: 0, stateDir: `${stateDir}/state`, log: () => {}, gpuletsPerFunction: 1 });
  const post = async (path: string, body: string) => {
    const res = await fetch(`${server.url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${path}: ${res.status} ${text}`);
    return text;
  };
  const arms = { direct: [] as number[], app: [] as number[] };
  try {
    for (const folder of [`${PROJECT_ROOT}/functions/lenet`, appDir]) {
      await deployFolder(server.url, folder);
    }
    const body = JSON.stringify({ image: new Array(784).fill(0) });
    const run = async (path: string, into: number[]) => {
      for (let i = 0; i < REQUESTS; i++) {
        const t0 = performance.now();
        await post(path, body);
        into.push(performance.now() - t0);
      }
    };
    for (let round = 1; round <= ROUNDS; round++) {
      await run("/functions/lenet/invoke", arms.direct);
      await run("/functions/hop/invoke", arms.app);
      progress(`app hop: round ${round}/${ROUNDS}`);
    }
  } finally {
    await server.shutdown();
    await Deno.remove(stateDir, { recursive: true }).catch(() => {});
  }
  // The first round warms both paths up.
  const direct = arms.direct.slice(REQUESTS), app = arms.app.slice(REQUESTS);
  return {
    requestsPerArm: direct.length,
    directP50Ms: median(direct),
    appP50Ms: median(app),
    directP99Ms: median(direct, 0.99),
    appP99Ms: median(app, 0.99),
    hopP50Ms: median(app) - median(direct),
  };
}

/** The result as Markdown. */
export function appHopMarkdown(r: AppHopResult, command: string): string {
  const f = (x: number) => x.toFixed(3);
  return [
    `# App hop: added latency of a stage call inside the platform`,
    ``,
    `Command: \`${command}\` (${new Date().toISOString()}). The same lenet JSON request, one at a time over HTTP,`,
    `${r.requestsPerArm} per arm after a warm-up round, the arms alternating: straight to the function, and`,
    `through a one-stage app (app process → stage call → lenet's dispatcher → reply). ms.`,
    ``,
    `| path | p50 | p99 |`,
    `|---|---|---|`,
    `| direct: POST /functions/lenet/invoke | ${f(r.directP50Ms)} | ${f(r.directP99Ms)} |`,
    `| app: POST /functions/hop/invoke | ${f(r.appP50Ms)} | ${f(r.appP99Ms)} |`,
    ``,
    `Added by the app hop, p50: **${f(r.hopP50Ms)} ms** (target ≤ 1 ms).`,
    ``,
  ].join("\n");
}
