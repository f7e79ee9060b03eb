/**
 * Reliability: a battery of malformed requests against every endpoint gets precise 4xx answers, while a
 * steady stream of good requests running alongside sees no error and no answer later than its SLO.
 */
import assert from "node:assert/strict";
import { bundleFolder } from "../../src/functions/bundle.ts";
import { deploy, ROOT, startTestServer, testImage } from "../helpers.ts";

/** One malformed request and the answer it must get. */
interface BadCase {
  what: string;
  method?: string;
  path: string;
  body?: BodyInit | (() => BodyInit);
  headers?: Record<string, string>;
  status: number;
  error: RegExp;
}

const BODY_LIMIT = 4 * 1024 * 1024;

const deep = (n: number) => "[".repeat(n) + "0" + "]".repeat(n);
const tensor = { name: "input", shape: [1, 1, 28, 28], datatype: "FP32", data: new Array(784).fill(0.5) };
const infer = (over: Record<string, unknown>, top: Record<string, unknown> = {}) =>
  JSON.stringify({ ...top, inputs: [{ ...tensor, ...over }] });
const NAME_RULE = /invalid function name .*: a function name is 1-63 characters/;

function battery(bundle: { manifest: Record<string, unknown>; files: unknown[] }): BadCase[] {
  const invoke = "/functions/lenet/invoke";
  const inferPath = "/v2/models/lenet/infer";
  const binaryHeader = infer({ data: undefined, parameters: { binary_data_size: 3136 } });
  return [
    // Broken JSON and wrong types on the function endpoint (its schema answers in the worker).
    { what: "empty body", path: invoke, body: "", status: 400, error: /body is empty; JSON expected/ },
    { what: "truncated JSON", path: invoke, body: '{"image": [1, 2,', status: 400, error: /malformed JSON/ },
    { what: "trailing garbage", path: invoke, body: '{"image": []} x', status: 400, error: /malformed JSON/ },
    { what: "NaN literal", path: invoke, body: '{"image": [NaN]}', status: 400, error: /malformed JSON/ },
    {
      what: "invalid UTF-8",
      path: invoke,
      body: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]),
      status: 400,
      error: /malformed JSON/,
    },
    {
      what: "null",
      path: invoke,
      body: "null",
      status: 400,
      error: /invalid input: \(body\): .*expected object, received null/,
    },
    { what: "an array", path: invoke, body: "[]", status: 400, error: /expected object, received array/ },
    {
      what: "string for the image",
      path: invoke,
      body: '{"image": "🙂"}',
      status: 400,
      error: /image: .*expected array, received string/,
    },
    {
      what: "lone surrogate",
      path: invoke,
      body: '{"image": "\\ud800"}',
      status: 400,
      error: /image: .*expected array/,
    },
    {
      what: "short image",
      path: invoke,
      body: '{"image": [1, 2, 3]}',
      status: 400,
      error: /image: Too small: expected array to have exactly 784/,
    },
    {
      what: "1e999 in the image",
      path: invoke,
      body: `{"image": [1e999${",0".repeat(783)}]}`,
      status: 400,
      error: /the number 1e999 is beyond the range of a 64-bit float/,
    },
    {
      what: "deep nesting (100k)",
      path: invoke,
      body: `{"image": ${deep(100_000)}}`,
      status: 400,
      error: /nests arrays\/objects deeper than 64 levels/,
    },
    {
      what: "deep nesting (2M, 4 MB)",
      path: invoke,
      body: `{"x": ${deep(1_999_990)}}`,
      status: 400,
      error: /deeper than 64 levels/,
    },
    {
      what: "brackets inside strings are not nesting",
      path: invoke,
      body: JSON.stringify({ image: testImage(1), note: "[[[[".repeat(100) }),
      status: 200,
      error: /^$/,
    },
    {
      what: "body over the limit",
      path: invoke,
      body: `{"image": [${"255,".repeat(BODY_LIMIT / 4)}0]}`,
      status: 413,
      error: /larger than the limit of 4194304 bytes/,
    },
    {
      what: "streamed body over the limit (no Content-Length)",
      path: invoke,
      body: () => ReadableStream.from([new TextEncoder().encode(`{"image": [${"0,".repeat(BODY_LIMIT / 2)}0]}`)]),
      status: 413,
      error: /larger than the limit/,
    },
    {
      what: "GET on invoke",
      method: "GET",
      path: invoke,
      status: 404,
      error: /no route for GET \/functions\/lenet\/invoke/,
    },
    {
      what: "tensor function body for a JSON model",
      path: "/functions/lenet/invoke",
      body: infer({}),
      status: 400,
      error: /invalid input/,
    },

    // Names and paths.
    { what: "unicode name", path: "/functions/%C3%A9t%C3%A9/invoke", body: "{}", status: 400, error: NAME_RULE },
    {
      what: "NUL in a name",
      path: "/functions/le%00net/invoke",
      body: "{}",
      status: 400,
      error: /invalid function name "le\\u0000net"/,
    },
    {
      what: "encoded traversal",
      path: "/functions/..%2F..%2Fetc%2Fpasswd/invoke",
      body: "{}",
      status: 400,
      error: /invalid function name "\.\.\/\.\.\/etc\/passwd"/,
    },
    {
      what: "5000-character name",
      path: `/functions/${"a".repeat(5000)}/invoke`,
      body: "{}",
      status: 400,
      error: NAME_RULE,
    },
    { what: "trailing space", path: "/functions/lenet%20/invoke", body: "{}", status: 400, error: NAME_RULE },
    { what: "broken percent-encoding", path: "/functions/%E0%A4%A/invoke", body: "{}", status: 400, error: NAME_RULE },
    {
      what: "unknown function",
      path: "/functions/nosuch/invoke",
      body: "{}",
      status: 404,
      error: /unknown function "nosuch"/,
    },
    { what: "traversal in metadata", method: "GET", path: "/v2/models/..%2Fx", status: 400, error: NAME_RULE },
    { what: "traversal in ready", method: "GET", path: "/v2/models/..%2Fx/ready", status: 400, error: NAME_RULE },
    {
      what: "traversal in a version",
      method: "GET",
      path: "/v2/models/lenet/versions/..%2F1",
      status: 404,
      error: /no live version "\.\.\/1" \(live: 1\)/,
    },
    {
      what: "unknown version",
      path: "/v2/models/lenet/versions/99/infer",
      body: infer({}),
      status: 404,
      error: /no live version "99"/,
    },
    {
      what: "3000-digit version",
      path: `/v2/models/lenet/versions/${"9".repeat(3000)}/infer`,
      body: infer({}),
      status: 404,
      error: /no live version "9{20}" /,
    },

    // The Open Inference Protocol's tensors.
    {
      what: "inputs not a list",
      path: inferPath,
      body: '{"inputs": "x"}',
      status: 400,
      error: /inputs: Invalid input: expected array, received string/,
    },
    { what: "no inputs", path: inferPath, body: '{"inputs": []}', status: 400, error: /inputs: Too small/ },
    {
      what: "number for a name",
      path: inferPath,
      body: infer({ name: 1 }),
      status: 400,
      error: /inputs\.0\.name: .*expected string/,
    },
    {
      what: "negative dimension",
      path: inferPath,
      body: infer({ shape: [-1, 1, 28, 28] }),
      status: 400,
      error: /inputs\.0\.shape\.0: Too small/,
    },
    {
      what: "fractional dimension",
      path: inferPath,
      body: infer({ shape: [1.5, 1, 28, 28] }),
      status: 400,
      error: /inputs\.0\.shape\.0: .*expected int/,
    },
    {
      what: "1e999 dimension",
      path: inferPath,
      body: infer({}).replace('"shape":[1,', '"shape":[1e999,'),
      status: 400,
      error: /1e999 is beyond the range/,
    },
    {
      what: "rank 17",
      path: inferPath,
      body: infer({ shape: new Array(17).fill(1) }),
      status: 400,
      error: /shape: Too big: expected array to have <=16/,
    },
    {
      what: "wrong rank",
      path: inferPath,
      body: infer({ shape: [1, 28, 28] }),
      status: 400,
      error: /rank 3, the model expects \[-1,1,28,28\]/,
    },
    {
      what: "wrong fixed dimension",
      path: inferPath,
      body: infer({ shape: [1, 1, 28, 27] }),
      status: 400,
      error: /does not match the model's \[-1,1,28,28\]/,
    },
    {
      what: "huge declared shape, tiny body",
      path: inferPath,
      body: infer({ shape: [1e12, 1, 28, 28], data: [0] }),
      status: 400,
      error: /784000000000000 elements is more than the limit of 1000000/,
    },
    {
      what: "data shorter than the shape",
      path: inferPath,
      body: infer({ data: [0, 1] }),
      status: 400,
      error: /needs 784 elements, data has 2/,
    },
    {
      what: "string for data",
      path: inferPath,
      body: infer({ data: "AAAA" }),
      status: 400,
      error: /inputs\.0\.data: .*expected array, received string/,
    },
    {
      what: "null element",
      path: inferPath,
      body: infer({ data: [null, ...tensor.data.slice(1)] }),
      status: 400,
      error: /element 0 \(null\) is not a finite number/,
    },
    {
      what: "string element",
      path: inferPath,
      body: infer({ data: ["1", ...tensor.data.slice(1)] }),
      status: 400,
      error: /element 0 \("1"\) is not a finite number/,
    },
    {
      what: "object element",
      path: inferPath,
      body: infer({ data: [{ a: 1 }, ...tensor.data.slice(1)] }),
      status: 400,
      error: /element 0 \(\{"a":1\}\) is not a finite number/,
    },
    {
      what: "1e999 element",
      path: inferPath,
      body: infer({}).replace('"data":[0.5,', '"data":[-1e999,'),
      status: 400,
      error: /-1e999 is beyond the range/,
    },
    {
      what: "nested deeper than the shape",
      path: inferPath,
      body: infer({ data: [[[[[[0]]]]]] }),
      status: 400,
      error: /nested deeper than its shape/,
    },
    {
      what: "unsupported datatype",
      path: inferPath,
      body: infer({ datatype: "BF16" }),
      status: 400,
      error: /unsupported datatype "BF16"/,
    },
    {
      what: "wrong datatype",
      path: inferPath,
      body: infer({ datatype: "INT32" }),
      status: 400,
      error: /datatype INT32, the model expects FP32/,
    },
    {
      what: "unknown input",
      path: inferPath,
      body: infer({ name: "nope" }),
      status: 400,
      error: /unknown input "nope"; the model takes input/,
    },
    {
      what: "input given twice",
      path: inferPath,
      body: JSON.stringify({ inputs: [tensor, tensor] }),
      status: 400,
      error: /"input" is given twice/,
    },
    {
      what: "unknown output",
      path: inferPath,
      body: infer({}, { outputs: [{ name: "nope" }] }),
      status: 400,
      error: /unknown output "nope"; the model gives logits/,
    },
    {
      what: "batch of 0",
      path: inferPath,
      body: infer({ shape: [0, 1, 28, 28], data: [] }),
      status: 400,
      error: /batch dimension \(dimension 0\) is 0/,
    },
    {
      what: "wrong parameter type",
      path: inferPath,
      body: infer({}, { parameters: { binary_data_output: "yes" } }),
      status: 400,
      error: /parameters\.binary_data_output: .*expected boolean/,
    },
    {
      what: "20,000-character id (the limit is 16,384)",
      path: inferPath,
      body: infer({}, { id: "x".repeat(20_000) }),
      status: 400,
      error: /id: Too big/,
    },
    {
      what: "header length not a number",
      path: inferPath,
      body: infer({}),
      headers: { "inference-header-content-length": "abc" },
      status: 400,
      error: /Inference-Header-Content-Length "abc" is not a byte count/,
    },
    {
      what: "header length negative",
      path: inferPath,
      body: infer({}),
      headers: { "inference-header-content-length": "-1" },
      status: 400,
      error: /"-1" is not a byte count/,
    },
    {
      what: "header length past the body",
      path: inferPath,
      body: infer({}),
      headers: { "inference-header-content-length": "99999999" },
      status: 400,
      error: /"99999999" is not a byte count within the body/,
    },
    {
      what: "header length mid-JSON",
      path: inferPath,
      body: infer({}),
      headers: { "inference-header-content-length": "10" },
      status: 400,
      error: /malformed JSON/,
    },
    {
      what: "binary data missing",
      path: inferPath,
      body: binaryHeader,
      headers: { "inference-header-content-length": String(binaryHeader.length) },
      status: 400,
      error: /binary data ends after 0 of its 3136 bytes/,
    },

    // Admin.
    { what: "deploy: broken JSON", path: "/admin/functions", body: "{", status: 400, error: /malformed JSON/ },
    {
      what: "deploy: wrong types",
      path: "/admin/functions",
      body: '{"manifest": 1, "files": "x"}',
      status: 400,
      error: /invalid bundle: manifest: .*received number; files: .*received string/,
    },
    {
      what: "deploy: bad base64",
      path: "/admin/functions",
      body: JSON.stringify({ ...bundle, files: [{ path: "function.ts", base64: "!!!" }] }),
      status: 400,
      error: /files\.0\.base64: Invalid base64/,
    },
    {
      what: "deploy: negative SLO",
      path: "/admin/functions",
      body: JSON.stringify({ ...bundle, manifest: { ...bundle.manifest, sloMs: -5 } }),
      status: 400,
      error: /manifest\.sloMs: Too small/,
    },
    {
      what: "deploy: duplicate paths",
      path: "/admin/functions",
      body: JSON.stringify({ ...bundle, files: [...bundle.files, ...bundle.files] }),
      status: 400,
      error: /bundle paths must be unique/,
    },
    {
      what: "deploy: traversal in a file path",
      path: "/admin/functions",
      body: JSON.stringify({ ...bundle, files: [{ path: "../../x.ts", base64: "AA==" }] }),
      status: 400,
      error: /files\.0\.path: a bundle path is relative/,
    },
    {
      what: "deploy: traversal in the name",
      path: "/admin/functions",
      body: JSON.stringify({ ...bundle, manifest: { ...bundle.manifest, name: "../lenet" } }),
      status: 400,
      error: /manifest\.name: a function name is/,
    },
    {
      what: "deploy: deep nesting",
      path: "/admin/functions",
      body: `{"manifest": ${deep(100_000)}}`,
      status: 400,
      error: /deeper than 64 levels/,
    },
    {
      what: "delete: unknown",
      method: "DELETE",
      path: "/admin/functions/nosuch",
      status: 404,
      error: /unknown function "nosuch"/,
    },
    { what: "delete: traversal", method: "DELETE", path: "/admin/functions/..%2Flenet", status: 400, error: NAME_RULE },
  ];
}

/** Sends one malformed request; returns what was wrong with its answer, or null. */
async function tryCase(baseUrl: string, c: BadCase): Promise<string | null> {
  const res = await fetch(`${baseUrl}${c.path}`, {
    method: c.method ?? "POST",
    headers: { "content-type": "application/json", ...c.headers },
    body: typeof c.body === "function" ? c.body() : c.body,
  });
  const text = await res.text();
  const error = res.status === 200 ? "" : JSON.parse(text).error;
  if (res.status === c.status && c.error.test(error)) return null;
  return `${c.what}: ${res.status} ${text.slice(0, 200)} (expected ${c.status} ${c.error})`;
}

Deno.test("malformed requests on every endpoint get precise 4xx answers; a good stream alongside is answered correctly", async () => {
  const server = await startTestServer({ maxBodyBytes: BODY_LIMIT, maxTensorElements: 1_000_000 });
  try {
    await deploy(server, `${ROOT}/functions/lenet`);
    const bundle = await bundleFolder(`${ROOT}/functions/lenet`);
    const invokeUrl = `${server.url}/functions/lenet/invoke`;
    const good = JSON.stringify({ image: testImage(3) });
    const expectedLabel = (await (await fetch(invokeUrl, { method: "POST", body: good })).json()).label;

    // The good stream: one request every 25 ms for as long as the battery runs.
    const stream: { status: number; label?: number }[] = [];
    let running = true;
    const streaming = (async () => {
      const inflight: Promise<void>[] = [];
      while (running) {
        inflight.push(
          fetch(invokeUrl, { method: "POST", body: good }).then(async (res) => {
            const body = await res.json();
            stream.push({ status: res.status, label: body.label });
          }),
        );
        await new Promise((r) => setTimeout(r, 25));
      }
      await Promise.all(inflight);
    })();

    // Rounds of the battery until the good stream has seen enough requests to judge it.
    const wrong = new Set<string>();
    let rounds = 0;
    const cases = battery(bundle);
    for (; rounds < 2 || stream.length < 60; rounds++) {
      for (const c of cases) {
        const mismatch = await tryCase(server.url, c);
        if (mismatch) wrong.add(mismatch);
      }
    }
    running = false;
    await streaming;
    assert.deepEqual([...wrong], [], [...wrong].join("\n"));

    const failed = stream.filter((s) => s.status !== 200 || s.label !== expectedLabel);
    assert.deepEqual(failed, [], "every good request is answered, correctly");
    // How fast they were is for `bench reliability` to measure: a busy machine must not fail this test.
    assert.equal((await fetch(`${server.url}/v2/health/ready`)).status, 200);
  } finally {
    await server.shutdown();
  }
});
