/**
 * Integration: the gRPC endpoint, called by an independent client in its own process (Python grpcio, gRPC's
 * C core, with protoc-generated messages). Every RPC; typed and raw contents of every datatype incl. FP16
 * and BYTES; errors as status codes with HTTP's messages; streams; the repository RPCs behind the admin
 * token; a gRPC request sharing a batch with HTTP ones; cancelled and expired calls leaving the queue.
 */
import assert from "node:assert/strict";
import { TYPES } from "../../src/functions/tensor.ts";
import { GraphBuilder } from "../../src/models/onnx_builder.ts";
import {
  ALL_TYPES,
  identityModel,
  makeFunctionFolder,
  tensorFunctionSource,
  wordsModel,
} from "../fixtures/function_folders.ts";
import {
  deploy,
  metric,
  modelFunctionFolder,
  postJson,
  queueDepth,
  ROOT,
  startTestServer,
  testImage,
  waitFor,
  waitForHeld,
} from "../helpers.ts";
import { fromBase64, grpcCalls, type GrpcResult, toBase64 } from "./python_client.ts";

const TOKEN = "grpc-test-token";
const AUTH = { authorization: `Bearer ${TOKEN}` };

const image = testImage(7).map((v) => v / 255);
const lenetInfer = (contents: unknown, extra: Record<string, unknown> = {}) => ({
  model_name: "lenet",
  inputs: [{ name: "input", datatype: "FP32", shape: [1, 1, 28, 28], ...(contents ? { contents } : {}) }],
  ...extra,
});
const f32 = (b64: string) => Array.from(new Float32Array(fromBase64(b64).slice().buffer));
const ok = (r: GrpcResult) => {
  assert.ok(r.ok, JSON.stringify(r));
  return r;
};
const failed = (r: GrpcResult, code: string, details: RegExp | string) => {
  assert.equal(r.ok, false, JSON.stringify(r));
  if (r.ok) return;
  assert.equal(r.code, code, r.details);
  if (typeof details === "string") assert.equal(r.details, details);
  else assert.match(r.details, details);
};

Deno.test("gRPC: every RPC from an independent client, every datatype, errors as HTTP says them", async () => {
  const server = await startTestServer({ grpcPort: 0, adminToken: TOKEN });
  try {
    await deploy(server, await modelFunctionFolder("lenet", "lenet", 5000), TOKEN);
    await deploy(
      server,
      await makeFunctionFolder("identity", tensorFunctionSource("identity.onnx"), { "identity.onnx": identityModel() }),
      TOKEN,
    );
    await deploy(
      server,
      await makeFunctionFolder("int64", tensorFunctionSource("int64.onnx"), { "int64.onnx": int64Identity() }),
      TOKEN,
    );
    await deploy(
      server,
      await makeFunctionFolder("words", tensorFunctionSource("words.onnx"), { "words.onnx": wordsModel() }),
      TOKEN,
    );
    // What HTTP answers for the same image, to compare with.
    const http = await postJson(`${server.url}/v2/models/lenet/infer`, {
      inputs: [{ name: "input", datatype: "FP32", shape: [1, 1, 28, 28], data: image }],
    });
    assert.equal(http.status, 200);
    const httpBad = await postJson(`${server.url}/v2/models/lenet/infer`, {
      inputs: [{ name: "input", datatype: "FP32", shape: [1, 1, 28, 27], data: image.slice(0, 756) }],
    });
    assert.equal(httpBad.status, 400);

    // Every numeric type as raw bytes (FP16 has no typed field), through a worker and back bit for bit.
    const raw = ALL_TYPES.map((t) => {
      const arr = TYPES[t].alloc(6);
      for (let i = 0; i < 6; i++) {
        if (t === "int64" || t === "uint64") (arr as BigInt64Array)[i] = BigInt(i * 3 + 1);
        else (arr as Float32Array)[i] = t === "bool" ? i % 2 : i + 1;
      }
      return new Uint8Array(arr.buffer);
    });
    const big = ["4611686018427387905", "-9007199254740993", "1", "2", "3", "4"]; // beyond 2^53: exact

    const r = await grpcCalls(server.grpcPort!, [
      { method: "ServerLive" },
      { method: "ServerReady" },
      { method: "ServerMetadata" },
      { method: "ModelReady", request: { name: "lenet" } },
      { method: "ModelReady", request: { name: "nosuch" } },
      { method: "ModelMetadata", request: { name: "words" } },
      { method: "ModelInfer", request: lenetInfer({ fp32_contents: image }, { id: "typed-1" }) },
      { method: "ModelInfer", request: { ...lenetInfer(null), raw_input_contents: [toBase64(f32Bytes(image))] } },
      {
        method: "ModelInfer",
        request: {
          model_name: "identity",
          inputs: ALL_TYPES.map((t) => ({ name: `x_${t}`, datatype: TYPES[t].oip, shape: [2, 3] })),
          raw_input_contents: raw.map(toBase64),
        },
      },
      {
        method: "ModelInfer",
        request: {
          model_name: "int64",
          inputs: [{ name: "x", datatype: "INT64", shape: [6], contents: { int64_contents: big } }],
          parameters: { binary_data_output: { bool_param: false } },
        },
      },
      {
        method: "ModelInfer",
        request: {
          model_name: "words",
          parameters: { binary_data_output: { bool_param: false } },
          inputs: [{
            name: "text",
            datatype: "BYTES",
            shape: [3],
            contents: { bytes_contents: ["hello", "gpulet", "✓"].map((s) => toBase64(new TextEncoder().encode(s))) },
          }],
          outputs: [{ name: "word" }, { name: "id" }],
        },
      },
      {
        method: "ModelInfer",
        request: lenetInfer({ fp32_contents: image.slice(0, 756) }, {
          inputs: [{
            name: "input",
            datatype: "FP32",
            shape: [1, 1, 28, 27],
            contents: { fp32_contents: image.slice(0, 756) },
          }],
        }),
      },
      {
        method: "ModelInfer",
        request: { model_name: "identity", inputs: [{ name: "x_float16", datatype: "FP16", shape: [1, 3] }] },
      },
      { method: "ModelInfer", request: lenetInfer({ int_contents: [1] }) },
      { method: "ModelInfer", request: { model_name: "nosuch" } },
      { method: "ModelInfer", request: { model_name: "Bad/Name" } },
      {
        method: "ModelStreamInfer",
        request: [
          ...[0, 1, 2, 3].map((k) => lenetInfer({ fp32_contents: testImage(k).map((v) => v / 255) }, { id: `s${k}` })),
          { model_name: "nosuch", id: "s-bad" },
        ],
      },
      { method: "RepositoryIndex", request: {} },
      { method: "RepositoryModelUnload", request: { model_name: "words" } },
      { method: "RepositoryIndex", request: {}, metadata: AUTH },
      { method: "RepositoryModelUnload", request: { model_name: "words" }, metadata: AUTH },
      { method: "ModelReady", request: { name: "words" } },
      { method: "RepositoryIndex", request: {}, metadata: AUTH },
      { method: "RepositoryModelLoad", request: { model_name: "words" }, metadata: AUTH },
      { method: "RepositoryModelLoad", request: { model_name: "neverdeployed" }, metadata: AUTH },
      { method: "ModelReady", request: { name: "words" } },
    ]);
    let i = 0;
    assert.deepEqual(ok(r[i++]).response, { live: true });
    assert.deepEqual(ok(r[i++]).response, { ready: true });
    assert.deepEqual(ok(r[i++]).response.extensions, ["binary_tensor_data", "model_repository"]);
    assert.deepEqual(ok(r[i++]).response, { ready: true });
    failed(r[i++], "NOT_FOUND", 'unknown function "nosuch"');
    const meta = ok(r[i++]).response;
    assert.deepEqual(meta.inputs, [{ name: "text", datatype: "BYTES", shape: ["-1"] }]);
    assert.equal(meta.platform, "onnxruntime_onnx");

    // Typed FP32 in, raw out: the same logits as HTTP's JSON answer, with the request's id.
    const typed = ok(r[i++]).response;
    assert.equal(typed.id, "typed-1");
    assert.deepEqual(typed.outputs, [{ name: "logits", datatype: "FP32", shape: ["1", "10"] }]);
    assert.deepEqual(f32(typed.raw_output_contents[0]), http.body.outputs[0].data);
    assert.ok(typed.parameters.queue_ms.double_param >= 0 && typed.parameters.batch_rows.int64_param >= 1);
    assert.deepEqual(typed.parameters.weights, { string_param: "random" });
    assert.deepEqual(f32(ok(r[i++]).response.raw_output_contents[0]), http.body.outputs[0].data, "raw in");

    const allTypes = ok(r[i++]).response;
    ALL_TYPES.forEach((t, k) => assert.deepEqual(fromBase64(allTypes.raw_output_contents[k]), raw[k], t));
    assert.deepEqual(ok(r[i++]).response.outputs[0].contents.int64_contents, big, "int64 beyond 2^53, exact");

    // BYTES typed in and (binary_data_output false) typed out, only the outputs asked for.
    const words = ok(r[i++]).response;
    assert.deepEqual(words.outputs.map((o: { name: string }) => o.name), ["id", "word"], "in the model's order");
    assert.deepEqual(words.outputs[0].contents.int64_contents, ["1", "3", "0"]);
    assert.deepEqual(
      words.outputs[1].contents.bytes_contents.map((b: string) => new TextDecoder().decode(fromBase64(b))),
      ["HELLO", "GPULET", "<unk>"],
    );

    failed(r[i++], "INVALID_ARGUMENT", httpBad.body.error); // the same message as HTTP
    failed(r[i++], "INVALID_ARGUMENT", /FP16 has no typed contents; send it in raw_input_contents/);
    failed(r[i++], "INVALID_ARGUMENT", /input "input": FP32 takes fp32_contents, not int_contents/);
    failed(r[i++], "NOT_FOUND", 'unknown function "nosuch"');
    failed(r[i++], "INVALID_ARGUMENT", /invalid function name "Bad\/Name"/);

    // A stream: one response per request, each with its id; a failed one carries its error.
    const stream = ok(r[i++]).responses!;
    assert.equal(stream.length, 5);
    const byId = new Map(stream.map((s) => [s.infer_response.id, s]));
    for (const k of [0, 1, 2, 3]) assert.equal(byId.get(`s${k}`).infer_response.outputs[0].name, "logits");
    assert.equal(byId.get("s-bad").error_message, 'unknown function "nosuch"');

    // The repository: the admin token is required; unload keeps the bundle, load brings it back.
    failed(r[i++], "UNAUTHENTICATED", /authorization: Bearer <token>/);
    failed(r[i++], "UNAUTHENTICATED", /authorization: Bearer <token>/);
    const index = ok(r[i++]).response.models;
    assert.deepEqual(index.map((m: { name: string; state: string }) => `${m.name}:${m.state}`), [
      "identity:READY",
      "int64:READY",
      "lenet:READY",
      "words:READY",
    ]);
    ok(r[i++]);
    failed(r[i++], "NOT_FOUND", 'unknown function "words"');
    const unloaded = ok(r[i++]).response.models.find((m: { name: string }) => m.name === "words");
    assert.deepEqual(unloaded, { name: "words", version: "1", state: "UNAVAILABLE", reason: "unloaded" });
    ok(r[i++]);
    failed(r[i++], "NOT_FOUND", /"neverdeployed" is not registered/);
    assert.deepEqual(ok(r[i++]).response, { ready: true });
    assert.equal(i, r.length);
  } finally {
    await server.shutdown();
  }
});

Deno.test("gRPC and HTTP requests share batches", async () => {
  const server = await startTestServer({ grpcPort: 0 });
  try {
    await deploy(server, await modelFunctionFolder("lenet", "lenet", 5000));
    let running = true;
    const httpLoad = Promise.all(Array.from({ length: 24 }, async () => {
      while (running) {
        await postJson(`${server.url}/v2/models/lenet/infer`, {
          inputs: [{ name: "input", datatype: "FP32", shape: [1, 1, 28, 28], data: image }],
        });
      }
    }));
    // One gRPC call at a time: a batch of more than one row held HTTP requests too.
    const r = await grpcCalls(
      server.grpcPort!,
      Array.from({ length: 20 }, () => ({ method: "ModelInfer", request: lenetInfer({ fp32_contents: image }) })),
    );
    running = false;
    await httpLoad;
    const rows = r.map((x) => Number(ok(x).response.parameters.batch_rows.int64_param));
    assert.ok(rows.some((n) => n > 1), `every gRPC request ran alone: ${rows}`);
  } finally {
    await server.shutdown();
  }
});

Deno.test("gRPC: a cancelled call and one past its deadline leave the queue without running", async () => {
  // One fixed gpu-let for slow, so that the long requests make the others queue.
  const server = await startTestServer({ grpcPort: 0, gpuletsPerFunction: 1 });
  try {
    await deploy(server, `${ROOT}/tests/fixtures/functions/slow`);
    const fn = `${server.url}/functions/slow/invoke`;
    assert.equal((await postJson(fn, { delayMs: 0, value: 0 })).status, 200);
    const ran = () => metric(server.url, 'gpulet_batch_requests_total{function="slow"}');
    const ranBefore = await ran();
    // Three long requests keep the one gpu-let busy for ~6 s: one or two are sent to it, the rest wait.
    const long = [-1, -2, -3].map((value) => postJson(fn, { delayMs: 2000, value }));
    assert.ok(await waitForHeld(server.url, "slow", 3) >= 1, "a long request is queued");
    const infer = { model_name: "slow", inputs: [{ name: "input", datatype: "FP32", shape: [1, 1, 28, 28] }] };
    const request = { ...infer, raw_input_contents: [toBase64(new Uint8Array(784 * 4))] };
    const r = await grpcCalls(server.grpcPort!, [
      { method: "ModelInfer", request, cancel_after_s: 0.3 },
      { method: "ModelInfer", request, timeout_s: 0.3 },
    ]);
    failed(r[0], "CANCELLED", /cancelled by the client/);
    failed(r[1], "DEADLINE_EXCEEDED", /./);
    for (const l of long) assert.equal((await l).status, 200);
    await waitFor("the queue to empty", async () => (await queueDepth(server.url, "slow")) === 0, 2000);
    assert.equal(await ran(), ranBefore + 3, "only the long requests went through the model");
    const canceled = await metric(server.url, 'gpulet_requests_total{function="slow",code="499"}');
    const expired = await metric(server.url, 'gpulet_requests_total{function="slow",code="504"}');
    assert.equal(canceled + expired, 2, `499: ${canceled}, 504: ${expired}`);
    assert.ok(canceled >= 1, "the cancelled call is counted as canceled");
  } finally {
    await server.shutdown();
  }
});

/** FP32 values as little-endian bytes. */
function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

/** An INT64 [N] → INT64 [N] identity model. */
function int64Identity(): Uint8Array {
  const g = new GraphBuilder(1);
  g.input("x", ["N"], "int64");
  g.op("Identity", ["x"], {}, "y");
  g.output("y", ["N"], "int64");
  return g.encode("int64_identity");
}
