/**
 * gRPC against HTTP on the same platform, side by side in one run: lenet-sized requests (784 FP32) as HTTP
 * JSON, gRPC typed contents and gRPC raw contents, and a 600 KB tensor as HTTP binary and gRPC raw, each at
 * 16 concurrent clients (throughput) and at one (p50). One platform process serves both protocols (a fixed
 * gpu-let of one core); the load generator is a child process per run that encodes its request once and
 * reads answers as bytes: the project's lean HTTP/1.1 client, or gRPC's C core (Python grpcio). The rows run twice, interleaved, and are
 * averaged, because this VM's speed drifts over minutes.
 */
import { deployFolder } from "../src/api/admin_client.ts";
import { startChild, stopChild } from "./overhead.ts";
import { ModelInferRequest } from "../src/api/grpc/codec.ts";
import { binaryInferRequest } from "../src/api/oip_client.ts";
import { GraphBuilder } from "../src/models/onnx_builder.ts";
import { PROJECT_ROOT } from "../src/runtime/worker_command.ts";
import { seededRandom } from "../src/planner/random.ts";

/** Concurrent clients of the throughput runs (the target is at 16). */
const CLIENTS = 16;

/** One way of sending one request. */
interface Row {
  label: string;
  protocol: "http" | "grpc";
  /** Function the row calls (its worker time is subtracted for the added latency). */
  fn: string;
  /** The encoded request: an HTTP body, or a ModelInferRequest message. */
  body: Uint8Array;
  headers: Record<string, string>;
  /** Bytes of input tensor data one request carries. */
  tensorBytes: number;
}

export interface ProtocolResult {
  label: string;
  tensorBytes: number;
  /** Requests/s at 16 clients, per round and their mean. */
  rounds: number[];
  requestsPerS: number;
  p50Ms: number;
  p99Ms: number;
  /** p50 at one client minus the model's median time on the same request: what platform and protocol add. */
  addedP50Ms: number;
  errors: number;
}

/** ReduceMean over a [N, 3, 224, 224] FP32 image (602,112 bytes a row): the request, not the model, costs. */
function bigTensorModel(): Uint8Array {
  const g = new GraphBuilder(1);
  g.input("x", ["N", 3, 224, 224]);
  g.op("ReduceMean", ["x"], { axes: [1, 2, 3], keepdims: 1 }, "mean");
  g.output("mean", ["N", 1, 1, 1]);
  return g.encode("reduce_600k");
}

async function startPlatform(state: string): Promise<{ url: string; grpc: string; child: Deno.ChildProcess }> {
  const args = ["run", "-A", `${PROJECT_ROOT}/src/cli/start.ts`, "--port", "0", "--grpc-port", "0", "--state", state];
  // A fixed gpu-let of one core, as in the overhead rows: the protocols are measured, not the planner.
  args.push("--max-queue", "100000", "--gpulets-per-function", "1");
  const { url, match, child } = await startChild(args, /listening on (http:\/\/[0-9.:]+), gRPC on ([0-9.:]+)/);
  return { url, grpc: match[2], child };
}

/** Debian's Python, whose dist-packages hold grpcio (the project's setup installs it). */
const PYTHON = Deno.env.get("GPULET_PYTHON") ?? "/usr/bin/python3";

/**
 * One closed-loop run in a fresh client process: HTTP from the project's lean HTTP/1.1 client
 * (`protocol_client.ts`), gRPC from gRPC's C core (`grpc_load.py`): the cheapest client of each protocol
 * at hand, since they share core 0 with the controller.
 */
async function load(row: Row, target: string, clients: number, seconds: number) {
  const file = await Deno.makeTempFile({ prefix: "gpulet-proto-" });
  await Deno.writeFile(file, row.body);
  const command = row.protocol === "http"
    ? new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        `${PROJECT_ROOT}/bench/protocol_client.ts`,
        target,
        file,
        JSON.stringify(row.headers),
        String(clients),
        String(seconds),
      ],
      stderr: "inherit",
    })
    : new Deno.Command(PYTHON, {
      args: [`${PROJECT_ROOT}/bench/grpc_load.py`, target, file, String(clients), String(seconds)],
      stderr: "inherit",
    });
  const out = await command.output();
  await Deno.remove(file);
  if (!out.success) throw new Error(`${row.label}: the load client failed`);
  return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").pop()!) as {
    perS: number;
    p50Ms: number;
    p99Ms: number;
    errors: number;
  };
}

/** The model's median time (compute_ms) on one request of `fn`, from HTTP answers. */
async function computeMs(url: string, fn: string, body: Uint8Array, headers: Record<string, string>) {
  const times: number[] = [];
  for (let i = 0; i < 30; i++) {
    const res = await fetch(`${url}/v2/models/${fn}/infer`, { method: "POST", headers, body: body.slice() });
    const bytes = new Uint8Array(await res.arrayBuffer());
    const n = Number(res.headers.get("inference-header-content-length") ?? bytes.byteLength);
    times.push(JSON.parse(new TextDecoder().decode(bytes.subarray(0, n))).parameters.compute_ms);
  }
  return times.sort((a, b) => a - b)[15];
}

/** Runs the comparison; `progress` gets a line per run. */
export async function measureProtocols(progress: (s: string) => void, seconds: number): Promise<ProtocolResult[]> {
  const random = seededRandom(3);
  const image = Array.from({ length: 784 }, () => random());
  const big = new Float32Array(3 * 224 * 224).map(() => random());
  const lenetJson = new TextEncoder().encode(JSON.stringify({
    inputs: [{ name: "input", datatype: "FP32", shape: [1, 1, 28, 28], data: image }],
  }));
  const bigHttp = binaryInferRequest([{ name: "x", datatype: "FP32", shape: [1, 3, 224, 224], data: big }]);
  const grpcMessage = (m: unknown) => ModelInferRequest.encode(m as never).finish();
  const lenetInput = { name: "input", datatype: "FP32", shape: [1, 1, 28, 28] };
  const rows: Row[] = [
    {
      label: "lenet 784 FP32, HTTP JSON",
      protocol: "http",
      fn: "lenet",
      body: lenetJson,
      headers: { "content-type": "application/json" },
      tensorBytes: 784 * 4,
    },
    {
      label: "lenet 784 FP32, gRPC typed contents",
      protocol: "grpc",
      fn: "lenet",
      body: grpcMessage({ modelName: "lenet", inputs: [{ ...lenetInput, contents: { fp32Contents: image } }] }),
      headers: {},
      tensorBytes: 784 * 4,
    },
    {
      label: "lenet 784 FP32, gRPC raw contents",
      protocol: "grpc",
      fn: "lenet",
      body: grpcMessage({
        modelName: "lenet",
        inputs: [lenetInput],
        rawInputContents: [new Uint8Array(new Float32Array(image).buffer)],
      }),
      headers: {},
      tensorBytes: 784 * 4,
    },
    {
      label: "600 KB FP32, HTTP binary",
      protocol: "http",
      fn: "big",
      body: bigHttp.body,
      headers: bigHttp.headers,
      tensorBytes: big.byteLength,
    },
    {
      label: "600 KB FP32, gRPC raw contents",
      protocol: "grpc",
      fn: "big",
      body: grpcMessage({
        modelName: "big",
        inputs: [{ name: "x", datatype: "FP32", shape: [1, 3, 224, 224] }],
        rawInputContents: [new Uint8Array(big.buffer)],
      }),
      headers: {},
      tensorBytes: big.byteLength,
    },
  ];
  const state = await Deno.makeTempDir({ prefix: "gpulet-bench-" });
  const bigDir = `${await Deno.makeTempDir({ prefix: "gpulet-fn-" })}/big`;
  await Deno.mkdir(bigDir);
  await Deno.writeFile(`${bigDir}/big.onnx`, bigTensorModel());
  await Deno.writeTextFile(
    `${bigDir}/function.ts`,
    `import { defineFunction } from "gpulet";\nexport default defineFunction({ model: "big.onnx", sloMs: 5000, maxBatch: 16 });\n`,
  );
  const platform = await startPlatform(state);
  const runs = new Map<string, { perS: number[]; p99: number[]; errors: number }>();
  const lows = new Map<string, number[]>();
  try {
    await deployFolder(platform.url, `${PROJECT_ROOT}/functions/lenet`);
    await deployFolder(platform.url, bigDir);
    const target = (r: Row) => (r.protocol === "http" ? `${platform.url}/v2/models/${r.fn}/infer` : platform.grpc);
    for (let round = 1; round <= 2; round++) {
      for (const r of rows) {
        progress(`protocols: ${r.label}, ${CLIENTS} clients, ${seconds} s (round ${round} of 2)`);
        const sat = await load(r, target(r), CLIENTS, seconds);
        const entry = runs.get(r.label) ?? { perS: [], p99: [], errors: 0 };
        entry.perS.push(sat.perS);
        entry.p99.push(sat.p99Ms);
        entry.errors += sat.errors;
        runs.set(r.label, entry);
        progress(`protocols: ${r.label}, 1 client, ${Math.min(seconds, 5)} s`);
        const low = await load(r, target(r), 1, Math.min(seconds, 5));
        lows.set(r.label, [...(lows.get(r.label) ?? []), low.p50Ms]);
      }
    }
    const compute = new Map<string, number>([
      ["lenet", await computeMs(platform.url, "lenet", lenetJson, { "content-type": "application/json" })],
      ["big", await computeMs(platform.url, "big", bigHttp.body, bigHttp.headers)],
    ]);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    return rows.map((r) => {
      const run = runs.get(r.label)!;
      const p50 = mean(lows.get(r.label)!);
      return {
        label: r.label,
        tensorBytes: r.tensorBytes,
        rounds: run.perS,
        requestsPerS: mean(run.perS),
        p50Ms: p50,
        p99Ms: mean(run.p99),
        addedP50Ms: p50 - compute.get(r.fn)!,
        errors: run.errors,
      };
    });
  } finally {
    await stopChild(platform.child);
    await Deno.remove(state, { recursive: true }).catch(() => {});
    await Deno.remove(bigDir.replace(/\/big$/, ""), { recursive: true }).catch(() => {});
  }
}

/** The results as a Markdown table, with the ratios the targets are stated in. */
export function protocolsMarkdown(results: ProtocolResult[], command: string, seconds: number): string {
  const by = (label: string) => results.find((r) => r.label === label)!;
  const ratio = (a: string, b: string) => (by(a).requestsPerS / by(b).requestsPerS).toFixed(2);
  return [
    `# gRPC against HTTP`,
    ``,
    `Command: \`${command}\` (${seconds} s a run, two interleaved rounds averaged). One platform process serves`,
    `both protocols on a fixed gpu-let of one core; each run's load comes from a fresh client process on the`,
    `controller's core, request encoded once, answers read as bytes: HTTP from the project's lean HTTP/1.1`,
    `client (\`bench/protocol_client.ts\`), gRPC from gRPC's C core (Python grpcio, \`bench/grpc_load.py\`; one`,
    `channel). Added p50 = p50 at one client minus the model's median time (compute_ms) on the same request.`,
    ``,
    `| request | tensor bytes | req/s at ${CLIENTS} clients (rounds) | p99 ms at ${CLIENTS} | p50 ms at 1 client | added p50 ms | errors |`,
    `|---|---|---|---|---|---|---|`,
    ...results.map((r) =>
      `| ${r.label} | ${r.tensorBytes} | ${r.requestsPerS.toFixed(0)} (${
        r.rounds.map((x) => x.toFixed(0)).join(", ")
      }) | ${r.p99Ms.toFixed(2)} | ${r.p50Ms.toFixed(2)} | ${r.addedP50Ms.toFixed(2)} | ${r.errors} |`
    ),
    ``,
    `Ratios (target ≥ 1): gRPC typed / HTTP JSON = ${
      ratio("lenet 784 FP32, gRPC typed contents", "lenet 784 FP32, HTTP JSON")
    }; gRPC raw / HTTP JSON = ${ratio("lenet 784 FP32, gRPC raw contents", "lenet 784 FP32, HTTP JSON")}; ` +
    `600 KB gRPC raw / HTTP binary = ${ratio("600 KB FP32, gRPC raw contents", "600 KB FP32, HTTP binary")}.`,
    ``,
  ].join("\n");
}
