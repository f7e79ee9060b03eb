/**
 * Integration: every numeric OIP datatype goes through a real worker and back unchanged, as JSON tensors and
 * with the binary tensor data extension; concurrent requests of different batch sizes are batched together.
 */
import assert from "node:assert/strict";
import { binaryInferRequest, readInferResponse } from "../../src/api/oip_client.ts";
import { type NumericType, TYPES } from "../../src/functions/tensor.ts";
import { ALL_TYPES, identityModel, makeFunctionFolder, tensorFunctionSource } from "../fixtures/function_folders.ts";
import { deploy, postJson, startTestServer } from "../helpers.ts";

/** Two rows of three values per type, at the edges of each type's range where JSON can carry them exactly. */
const VALUES: Record<NumericType, (number | boolean)[]> = {
  bool: [true, false, true, false, false, true],
  uint8: [0, 1, 255, 7, 128, 254],
  int8: [-128, 127, 0, -1, 5, -7],
  uint16: [0, 65535, 1, 300, 40000, 2],
  int16: [-32768, 32767, 0, -1, 1000, -1000],
  uint32: [0, 4294967295, 1, 70000, 3, 99],
  int32: [-2147483648, 2147483647, 0, -1, 12345, -54321],
  uint64: [0, Number.MAX_SAFE_INTEGER, 1, 2 ** 40, 3, 4],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, 0, -1, 2 ** 40, -(2 ** 40)],
  float16: [0.5, -2, 1024, 0.25, -0.125, 65504],
  float32: [1.5, -3.25, 1e-3, 3.4e38, -7, 0.1],
  float64: [0.1, -1e300, 5e-324, 2 ** 60, -7.5, Math.PI],
};

/** What JSON output should read for a type (FP32 values come back rounded to single precision). */
function expected(t: NumericType): (number | boolean)[] {
  if (t === "float32") return Array.from(new Float32Array(VALUES[t] as number[]));
  return VALUES[t];
}

function typedArrayOf(t: NumericType) {
  const arr = TYPES[t].alloc(6);
  VALUES[t].forEach((v, i) => {
    if (t === "int64" || t === "uint64") (arr as BigInt64Array)[i] = BigInt(v as number);
    else (arr as Float64Array)[i] = Number(v);
  });
  return arr;
}

Deno.test("all 12 numeric datatypes round-trip through a worker, as JSON and as binary tensors", async () => {
  const folder = await makeFunctionFolder("identity", tensorFunctionSource("identity.onnx"), {
    "identity.onnx": identityModel(),
  });
  const server = await startTestServer();
  try {
    await deploy(server, folder);
    const url = `${server.url}/v2/models/identity/infer`;
    const meta = await (await fetch(`${server.url}/v2/models/identity`)).json();
    assert.deepEqual(
      meta.inputs.map((i: { datatype: string }) => i.datatype),
      ALL_TYPES.map((t) => TYPES[t].oip),
    );

    // JSON tensors in, JSON tensors out.
    const json = await postJson(url, {
      inputs: ALL_TYPES.map((t) => ({ name: `x_${t}`, datatype: TYPES[t].oip, shape: [2, 3], data: VALUES[t] })),
    });
    assert.equal(json.status, 200, JSON.stringify(json.body));
    for (const t of ALL_TYPES) {
      const out = json.body.outputs.find((o: { name: string }) => o.name === `y_${t}`);
      assert.equal(out.datatype, TYPES[t].oip, t);
      assert.deepEqual(out.shape, [2, 3], t);
      assert.deepEqual(out.data, expected(t), t);
    }

    // Binary in, binary out: bit-exact, including FP32 values JSON would round.
    const req = binaryInferRequest(
      ALL_TYPES.map((t) => ({ name: `x_${t}`, datatype: TYPES[t].oip, shape: [2, 3], data: typedArrayOf(t) })),
      { id: "bin-1" },
    );
    const res = await fetch(url, { method: "POST", headers: req.headers, body: req.body });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/octet-stream");
    const bin = await readInferResponse(res);
    assert.equal(bin.id, "bin-1");
    for (const t of ALL_TYPES) {
      const out = bin.outputs.find((o) => o.name === `y_${t}`)!;
      assert.deepEqual(out.data, typedArrayOf(t), t);
    }

    // Binary in, JSON out; and a short binary body is a 400 that says which input.
    const mixed = binaryInferRequest(
      ALL_TYPES.map((t) => ({ name: `x_${t}`, datatype: TYPES[t].oip, shape: [2, 3], data: typedArrayOf(t) })),
      { jsonOutputs: true },
    );
    const mixedRes = await postRaw(url, mixed.body, mixed.headers);
    assert.equal(mixedRes.status, 200);
    assert.deepEqual(mixedRes.body.outputs.find((o: { name: string }) => o.name === "y_int16").data, VALUES.int16);
    const short = await postRaw(url, mixed.body.subarray(0, mixed.body.byteLength - 8), mixed.headers);
    assert.equal(short.status, 400);
    assert.match(short.body.error, /input "x_float64": binary data ends after 40 of its 48 bytes/);

    // Requests of different row counts, sent together, come back each with its own rows.
    const answers = await Promise.all([1, 2, 3, 1, 2].map(async (rows, k) => {
      const inputs = ALL_TYPES.map((t) => {
        const data = TYPES[t].alloc(rows * 3);
        for (let i = 0; i < data.length; i++) {
          (data as Float64Array)[i] = (t === "int64" || t === "uint64") ? BigInt(k) as never : (t === "bool" ? 1 : k);
        }
        return { name: `x_${t}`, datatype: TYPES[t].oip, shape: [rows, 3], data };
      });
      const r = binaryInferRequest(inputs);
      return {
        rows,
        k,
        out: await readInferResponse(await fetch(url, { method: "POST", headers: r.headers, body: r.body })),
      };
    }));
    for (const { rows, k, out } of answers) {
      const y = out.outputs.find((o) => o.name === "y_int32")!;
      assert.deepEqual(y.shape, [rows, 3]);
      assert.deepEqual(Array.from(y.data as Int32Array), new Array(rows * 3).fill(k));
    }
  } finally {
    await server.shutdown();
  }
});

async function postRaw(url: string, body: Uint8Array<ArrayBuffer>, headers: Record<string, string>) {
  const res = await fetch(url, { method: "POST", headers, body });
  return { status: res.status, body: await res.json() };
}
