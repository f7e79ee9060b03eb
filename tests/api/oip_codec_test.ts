/** Unit tests of the OIP tensor codec: JSON and binary inputs, value checks, binary responses. */
import assert from "node:assert/strict";
import { binaryInferRequest, readInferResponse } from "../../src/api/oip_client.ts";
import {
  BadTensorRequest,
  decodeInferRequest,
  encodeInferResponse,
  InferRequest,
  splitInferBody,
} from "../../src/api/oip_codec.ts";
import type { ModelInfo } from "../../src/runtime/protocol.ts";

const model: ModelInfo = {
  inputs: [{ name: "x", type: "float32", shape: [-1, 3] }, { name: "m", type: "bool", shape: [-1, 3] }],
  outputs: [{ name: "y", type: "float32", shape: [-1, 3] }],
  batchable: true,
};

const jsonRequest = (x: unknown, m: unknown = [true, false, true, false, true, false], shape = [2, 3]) =>
  InferRequest.parse({
    inputs: [
      { name: "x", datatype: "FP32", shape, data: x },
      { name: "m", datatype: "BOOL", shape, data: m },
    ],
  });

const rejects = (f: () => unknown, pattern: RegExp) =>
  assert.throws(f, (e) => e instanceof BadTensorRequest && pattern.test(e.message));

Deno.test("JSON tensors: flat and nested data give the same bytes; rows come from dimension 0", () => {
  const flat = decodeInferRequest(jsonRequest([1, 2, 3, 4, 5, 6]), model, 1e6);
  const nested = decodeInferRequest(jsonRequest([[1, 2, 3], [4, 5, 6]]), model, 1e6);
  assert.equal(flat.rows, 2);
  assert.deepEqual(new Float32Array(flat.bytes[0].slice().buffer), new Float32Array([1, 2, 3, 4, 5, 6]));
  assert.deepEqual(nested.bytes, flat.bytes);
  assert.deepEqual(nested.inputs, flat.inputs);
  // Each tensor starts 8-byte aligned in the frame body.
  assert.equal(flat.inputs[1].offset % 8, 0);
});

Deno.test("JSON tensors: wrong count, wrong value type, out-of-range and too deep data say what is wrong", () => {
  rejects(() => decodeInferRequest(jsonRequest([1, 2, 3]), model, 1e6), /needs 6 elements, data has 3/);
  rejects(
    () => decodeInferRequest(jsonRequest([1, 2, "3", 4, 5, 6]), model, 1e6),
    /element 2 \("3"\) is not a finite number/,
  );
  rejects(() => decodeInferRequest(jsonRequest([1, 2, 3, 4, 5, 6], [1, 0, 1, 0, 1, 0]), model, 1e6), /not a boolean/);
  rejects(() => decodeInferRequest(jsonRequest([[[1, 2, 3]], [[4, 5, 6]]]), model, 1e6), /nested deeper/);
  rejects(() => decodeInferRequest(jsonRequest([1, 2, 3, 4, 5, 6]), model, 5), /more than the limit of 5/);
  const u8: ModelInfo = { inputs: [{ name: "b", type: "uint8", shape: [-1] }], outputs: [], batchable: true };
  const req = InferRequest.parse({ inputs: [{ name: "b", datatype: "UINT8", shape: [2], data: [255, 256] }] });
  rejects(() => decodeInferRequest(req, u8, 1e6), /element 1 \(256\) is not an integer in \[0, 255\]/);
});

Deno.test("JSON tensors: unknown or missing inputs, datatype and shape mismatches", () => {
  const one = (t: Record<string, unknown>) => InferRequest.parse({ inputs: [t] });
  rejects(
    () => decodeInferRequest(one({ name: "z", datatype: "FP32", shape: [1, 3], data: [1, 2, 3] }), model, 1e6),
    /unknown input "z"/,
  );
  rejects(
    () => decodeInferRequest(one({ name: "x", datatype: "FP32", shape: [1, 3], data: [1, 2, 3] }), model, 1e6),
    /missing input\(s\): m/,
  );
  rejects(
    () => decodeInferRequest(one({ name: "x", datatype: "INT32", shape: [1, 3], data: [1, 2, 3] }), model, 1e6),
    /datatype INT32, the model expects FP32/,
  );
  rejects(
    () => decodeInferRequest(one({ name: "x", datatype: "FP32", shape: [1, 4], data: [1, 2, 3, 4] }), model, 1e6),
    /does not match the model's \[-1,3\]/,
  );
  rejects(
    () => decodeInferRequest(one({ name: "x", datatype: "STRING", shape: [1, 3], data: [1, 2, 3] }), model, 1e6),
    /unsupported datatype "STRING"/,
  );
});

Deno.test("binary tensors: round trip through splitInferBody and decodeInferRequest", () => {
  const x = new Float32Array([1, 2, 3, 4, 5, 6]);
  const m = new Uint8Array([1, 0, 1, 0, 1, 1]);
  const req = binaryInferRequest([
    { name: "x", datatype: "FP32", shape: [2, 3], data: x },
    { name: "m", datatype: "BOOL", shape: [2, 3], data: m },
  ]);
  const { json, binary } = splitInferBody(req.body, req.headers["inference-header-content-length"]);
  assert.equal(binary.byteLength, 24 + 6);
  const decoded = decodeInferRequest(InferRequest.parse(JSON.parse(json)), model, 1e6, binary);
  assert.equal(decoded.rows, 2);
  assert.deepEqual(new Float32Array(decoded.bytes[0].slice().buffer), x);
  assert.deepEqual(decoded.bytes[1], m);
});

Deno.test("binary tensors: bad header length, size mismatch, short data, trailing bytes and bad BOOL bytes", () => {
  const body = new Uint8Array(10);
  rejects(() => splitInferBody(body, "11"), /not a byte count within the body \(10 bytes\)/);
  rejects(() => splitInferBody(body, "-1"), /not a byte count/);
  rejects(() => splitInferBody(body, "ten"), /not a byte count/);
  const header = (xSize: number, mSize = 6) =>
    InferRequest.parse({
      inputs: [
        { name: "x", datatype: "FP32", shape: [2, 3], parameters: { binary_data_size: xSize } },
        { name: "m", datatype: "BOOL", shape: [2, 3], parameters: { binary_data_size: mSize } },
      ],
    });
  rejects(
    () => decodeInferRequest(header(20), model, 1e6, new Uint8Array(26)),
    /binary_data_size 20 does not match 6 elements of FP32 \(24 bytes\)/,
  );
  rejects(
    () => decodeInferRequest(header(24), model, 1e6, new Uint8Array(28)),
    /input "m": binary data ends after 4 of its 6 bytes/,
  );
  rejects(
    () => decodeInferRequest(header(24), model, 1e6, new Uint8Array(31)),
    /1 bytes of binary data after the JSON header belong to no input/,
  );
  const bad = new Uint8Array(30);
  bad[24 + 2] = 7;
  rejects(() => decodeInferRequest(header(24), model, 1e6, bad), /element 2 is byte 7, BOOL takes 0 or 1/);
  const both = InferRequest.parse({
    inputs: [{ name: "x", datatype: "FP32", shape: [1, 3], data: [1, 2, 3], parameters: { binary_data_size: 12 } }],
  });
  rejects(() => decodeInferRequest(both, model, 1e6, new Uint8Array(12)), /either data or binary_data_size/);
  const neither = InferRequest.parse({ inputs: [{ name: "x", datatype: "FP32", shape: [1, 3] }] });
  rejects(() => decodeInferRequest(neither, model, 1e6), /no data and no parameters.binary_data_size/);
});

Deno.test("responses: JSON by default, binary per output or for all, readable by the client helper", async () => {
  const y = new Float32Array([0.5, -1, 2]);
  const outputs = [
    { name: "y", type: "float32" as const, shape: [1, 3], data: new Uint8Array(y.buffer) },
    { name: "k", type: "int64" as const, shape: [1], data: new Uint8Array(new BigInt64Array([42n]).buffer) },
  ];
  const head = { model_name: "m", model_version: "1" };
  const base = { inputs: [{ name: "x", datatype: "FP32", shape: [1, 3], data: [1, 2, 3] }] };

  const asJson = encodeInferResponse(InferRequest.parse(base), head, outputs);
  assert.equal(asJson.headerLength, undefined);
  const parsed = JSON.parse(asJson.body as string);
  assert.deepEqual(parsed.outputs.map((o: { data: unknown }) => o.data), [[0.5, -1, 2], [42]]);

  const oneBinary = encodeInferResponse(
    InferRequest.parse({ ...base, outputs: [{ name: "y", parameters: { binary_data: true } }] }),
    head,
    outputs,
  );
  const res = new Response(oneBinary.body as Uint8Array<ArrayBuffer>, {
    headers: { "inference-header-content-length": String(oneBinary.headerLength) },
  });
  const read = await readInferResponse(res);
  assert.equal(read.outputs.length, 1, "only the asked-for output");
  assert.deepEqual(read.outputs[0].data, y);

  const all = encodeInferResponse(
    InferRequest.parse({ ...base, parameters: { binary_data_output: true } }),
    head,
    outputs,
  );
  const readAll = await readInferResponse(
    new Response(all.body as Uint8Array<ArrayBuffer>, {
      headers: { "inference-header-content-length": String(all.headerLength) },
    }),
  );
  assert.deepEqual(readAll.outputs[1].data, new BigInt64Array([42n]));
});
