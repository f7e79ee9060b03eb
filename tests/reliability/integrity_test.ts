/**
 * Every answer carries its own request's bytes. An identity model (float32, int64, uint8 and float16 rows of
 * up to 400 KB) is called concurrently with OIP binary and OIP JSON requests, and a JSON function over an
 * identity model with `invoke` (its JSON answers travel as bytes too), each request filled with a pattern of
 * its own, while the controller's event loop stalls now and then (a busy loop of 20 ms, like a large JSON
 * body or a re-plan). Batches mix requests, so answers are also split from shared result bodies.
 */
import assert from "node:assert/strict";
import { GraphBuilder } from "../../src/models/onnx_builder.ts";
import { binaryInferRequest, readInferResponse } from "../../src/api/oip_client.ts";
import type { NumericType, OipDatatype, TensorData } from "../../src/functions/tensor.ts";
import { TYPES } from "../../src/functions/tensor.ts";
import { makeFunctionFolder } from "../fixtures/function_folders.ts";
import { deploy, startTestServer } from "../helpers.ts";

/** The tensors of one request: name, types and width of one row. */
const TENSORS: { name: string; type: NumericType; datatype: OipDatatype; width: number }[] = [
  { name: "f32", type: "float32", datatype: "FP32", width: 100_000 },
  { name: "i64", type: "int64", datatype: "INT64", width: 20_000 },
  { name: "u8", type: "uint8", datatype: "UINT8", width: 50_000 },
  { name: "f16", type: "float16", datatype: "FP16", width: 8_192 },
];

function identityModel(): Uint8Array {
  const g = new GraphBuilder(1);
  for (const t of TENSORS) {
    g.input(`x_${t.name}`, ["N", t.width], t.type);
    g.op("Identity", [`x_${t.name}`], {}, `y_${t.name}`);
    g.output(`y_${t.name}`, ["N", t.width], t.type);
  }
  return g.encode("identity_wide");
}

/** Request `k`'s value at element `i` of tensor `t`: distinct per request and per position. */
function expected(t: (typeof TENSORS)[number], k: number, i: number): number {
  switch (t.type) {
    case "uint8":
      return (k * 31 + i) % 256;
    case "float16":
      return (k * 7 + i) % 2048; // integers up to 2048 are exact in float16
    case "float32":
      return (k * 100_003 + i) % 16_777_216; // exact in float32
    default:
      return k * 1_000_003 + i;
  }
}

/** Request `k`'s tensor `t` as typed data. */
function pattern(t: (typeof TENSORS)[number], k: number): TensorData {
  const data = TYPES[t.type].alloc(t.width);
  for (let i = 0; i < t.width; i++) {
    const v = expected(t, k, i);
    if (t.type === "int64") (data as BigInt64Array)[i] = BigInt(v);
    else (data as Float32Array)[i] = v;
  }
  return data;
}

/** How many elements of an answer's tensor differ from request `k`'s pattern. */
function wrongValues(t: (typeof TENSORS)[number], k: number, data: ArrayLike<unknown>): number {
  let wrong = Math.abs(data.length - t.width);
  for (let i = 0; i < t.width; i++) if (Number(data[i]) !== expected(t, k, i)) wrong++;
  return wrong;
}

/** Elements per row of the JSON function (`echo`): an identity model behind JSON pre- and post-processing. */
const ECHO_WIDTH = 20_000;

function echoModel(): Uint8Array {
  const g = new GraphBuilder(1);
  g.input("x", ["N", ECHO_WIDTH], "float32");
  g.op("Identity", ["x"], {}, "y");
  g.output("y", ["N", ECHO_WIDTH], "float32");
  return g.encode("echo");
}

const ECHO_SOURCE = `import { defineFunction, tensor, z } from "gpulet";
export default defineFunction({
  model: "model.onnx",
  sloMs: 60000,
  maxBatch: 4,
  input: z.object({ k: z.number(), values: z.array(z.number()).length(${ECHO_WIDTH}) }),
  example: { k: 0, values: new Array(${ECHO_WIDTH}).fill(0) },
  preprocess: ({ values }) => ({ x: tensor("float32", Float32Array.from(values), [1, ${ECHO_WIDTH}]) }),
  postprocess: ({ y }, { k }) => ({ k, values: Array.from(y.data as Float32Array) }),
});
`;

/** Request `k`'s values for the JSON function. */
const echoValue = (k: number, i: number) => (k * 7_919 + i) % 16_777_216;

Deno.test("integrity: every answer carries its own request's bytes under event-loop stalls", async () => {
  const wide = await makeFunctionFolder(
    "wide",
    `import { defineFunction } from "gpulet";\n` +
      `export default defineFunction({ model: "model.onnx", sloMs: 60000, maxBatch: 4 });\n`,
    { "model.onnx": identityModel() },
  );
  const echo = await makeFunctionFolder("echo", ECHO_SOURCE, { "model.onnx": echoModel() });
  const server = await startTestServer();
  // The controller runs in this process: stall its event loop for 20 ms every 45 ms.
  const stall = setInterval(() => {
    const t = performance.now();
    while (performance.now() - t < 20) { /* busy */ }
  }, 45);
  const failures: string[] = [];
  const answers = { binary: 0, "OIP JSON": 0, invoke: 0 };
  try {
    await deploy(server, wide);
    await deploy(server, echo);
    const url = `${server.url}/v2/models/wide/infer`;
    const one = async (k: number) => {
      const kind = (["OIP JSON", "invoke", "binary", "binary"] as const)[k % 4];
      let res: Response;
      if (kind === "invoke") {
        res = await fetch(`${server.url}/functions/echo/invoke`, {
          method: "POST",
          body: JSON.stringify({ k, values: Array.from({ length: ECHO_WIDTH }, (_, i) => echoValue(k, i)) }),
        });
        if (res.status !== 200) return void failures.push(`request ${k}: status ${res.status} ${await res.text()}`);
        const out = await res.json();
        let wrong = out.k === k ? 0 : ECHO_WIDTH;
        for (let i = 0; i < ECHO_WIDTH; i++) if (out.values[i] !== echoValue(k, i)) wrong++;
        if (wrong > 0) failures.push(`request ${k} (invoke): ${wrong} values wrong`);
        answers[kind]++;
        return;
      }
      if (kind === "OIP JSON") {
        const inputs = TENSORS.map((t) => ({
          name: `x_${t.name}`,
          datatype: t.datatype,
          shape: [1, t.width],
          data: Array.from({ length: t.width }, (_, i) => expected(t, k, i)),
        }));
        res = await fetch(url, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ id: `r${k}`, inputs }),
        });
      } else {
        const req = binaryInferRequest(
          TENSORS.map((t) => ({ name: `x_${t.name}`, datatype: t.datatype, shape: [1, t.width], data: pattern(t, k) })),
          { id: `r${k}` },
        );
        res = await fetch(url, { method: "POST", body: req.body, headers: req.headers });
      }
      if (res.status !== 200) return void failures.push(`request ${k}: status ${res.status} ${await res.text()}`);
      const out = await readInferResponse(res);
      if (out.id !== `r${k}`) failures.push(`request ${k}: answered with id ${out.id}`);
      for (const t of TENSORS) {
        const o = out.outputs.find((x) => x.name === `y_${t.name}`);
        const wrong = o ? wrongValues(t, k, o.data as ArrayLike<unknown>) : t.width;
        if (wrong > 0) failures.push(`request ${k} (${kind}): ${wrong} values of ${t.name} wrong`);
      }
      answers[kind]++;
    };
    const CONCURRENCY = 12, ROUNDS = 16;
    for (let round = 0; round < ROUNDS; round++) {
      await Promise.all(Array.from({ length: CONCURRENCY }, (_, i) => one(round * CONCURRENCY + i + 1)));
    }
  } finally {
    clearInterval(stall);
    await server.shutdown();
  }
  assert.deepEqual(failures.slice(0, 10), [], `${failures.length} bad answers`);
  assert.deepEqual(answers, { binary: 96, "OIP JSON": 48, invoke: 48 });
});
