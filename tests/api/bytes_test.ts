/**
 * Integration: BYTES (string) tensors end to end. A string-input ONNX model deploys, its metadata says
 * BYTES, and strings go through a real worker and back as JSON and with the binary extension (4-byte
 * little-endian length before each element); concurrent requests share a batch; malformed BYTES get a 400
 * that says what is wrong.
 */
import assert from "node:assert/strict";
import { binaryInferRequest, readInferResponse } from "../../src/api/oip_client.ts";
import { encodeBytesElements } from "../../src/functions/tensor.ts";
import { makeFunctionFolder, tensorFunctionSource, WORDS, wordsModel } from "../fixtures/function_folders.ts";
import { deploy, postJson, startTestServer } from "../helpers.ts";

const TEXT = ["hello", "World", "gpulet", "héllo 👋", ""];
const IDS = TEXT.map((t) => WORDS[t] ?? 0);
const CAPITALS = IDS.map((id) => Object.entries(WORDS).find(([, v]) => v === id)?.[0].toUpperCase() ?? "<unk>");

Deno.test("BYTES tensors: a string model deploys and strings round-trip as JSON and binary, batched", async () => {
  const folder = await makeFunctionFolder("words", tensorFunctionSource("words.onnx"), { "words.onnx": wordsModel() });
  const server = await startTestServer();
  try {
    await deploy(server, folder);
    const url = `${server.url}/v2/models/words/infer`;
    const meta = await (await fetch(`${server.url}/v2/models/words`)).json();
    assert.deepEqual(meta.inputs, [{ name: "text", datatype: "BYTES", shape: [-1] }]);
    assert.deepEqual(meta.outputs.map((o: { datatype: string }) => o.datatype), ["INT64", "BYTES", "BYTES"]);
    assert.equal(meta.platform, "onnxruntime_onnx");

    // JSON: BYTES elements are strings.
    const json = await postJson(url, {
      inputs: [{ name: "text", datatype: "BYTES", shape: [TEXT.length], data: TEXT }],
    });
    assert.equal(json.status, 200, JSON.stringify(json.body));
    const out = (name: string) => json.body.outputs.find((o: { name: string }) => o.name === name);
    assert.deepEqual(out("id").data, IDS);
    assert.deepEqual(out("word"), { name: "word", datatype: "BYTES", shape: [TEXT.length], data: CAPITALS });
    assert.deepEqual(out("echo").data, TEXT);

    // Binary in and out: each element a 4-byte little-endian length, then its UTF-8 bytes.
    const req = binaryInferRequest([{ name: "text", datatype: "BYTES", shape: [TEXT.length], data: TEXT }], {
      id: "b1",
    });
    const res = await fetch(url, { method: "POST", headers: req.headers, body: req.body });
    assert.equal(res.status, 200);
    const bin = await readInferResponse(res);
    assert.deepEqual(bin.outputs.find((o) => o.name === "echo")!.data, TEXT);
    assert.deepEqual(bin.outputs.find((o) => o.name === "word")!.data, CAPITALS);

    // Concurrent requests of different lengths share batches and each gets its own rows back.
    const answers = await Promise.all(Array.from({ length: 32 }, async (_, k) => {
      const words = Array.from({ length: 1 + (k % 3) }, (_, i) => `${k}-${i}-${TEXT[(k + i) % TEXT.length]}`);
      const r = await postJson(url, {
        inputs: [{ name: "text", datatype: "BYTES", shape: [words.length], data: words }],
      });
      return { words, r };
    }));
    let batched = 0;
    for (const { words, r } of answers) {
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(r.body.outputs.find((o: { name: string }) => o.name === "echo").data, words);
      if (r.body.parameters.batch_rows > words.length) batched++;
    }
    assert.ok(batched > 0, "no request shared a batch");

    // Malformed BYTES: each a 400 that names the input and the problem.
    const bad = async (body: unknown, pattern: RegExp) => {
      const r = await postJson(url, body);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.match(r.body.error, pattern);
    };
    await bad(
      { inputs: [{ name: "text", datatype: "BYTES", shape: [2], data: ["a", 3] }] },
      /input "text": element 1 \(3\) is not a string/,
    );
    await bad(
      { inputs: [{ name: "text", datatype: "FP32", shape: [1], data: [1] }] },
      /input "text": datatype FP32, the model expects BYTES/,
    );
    const raw = async (bytes: Uint8Array, shape: number[], pattern: RegExp) => {
      const head = new TextEncoder().encode(JSON.stringify({
        inputs: [{ name: "text", datatype: "BYTES", shape, parameters: { binary_data_size: bytes.byteLength } }],
      }));
      const body = new Uint8Array(head.byteLength + bytes.byteLength);
      body.set(head);
      body.set(bytes, head.byteLength);
      const r = await fetch(url, {
        method: "POST",
        headers: { "inference-header-content-length": String(head.byteLength) },
        body,
      });
      const answer = await r.json();
      assert.equal(r.status, 400, JSON.stringify(answer));
      assert.match(answer.error, pattern);
    };
    const two = encodeBytesElements(["ab", "cd"]);
    await raw(two, [3], /input "text": BYTES data holds 2 elements, its shape needs 3/);
    await raw(two.subarray(0, 11), [2], /input "text": BYTES data element 1: length 2 runs past the end/);
    await raw(encodeBytesElements([new Uint8Array([0xff, 0xfe])]), [1], /element 0 is not valid UTF-8/);
  } finally {
    await server.shutdown();
  }
});
