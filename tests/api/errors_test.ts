/**
 * Integration: bad input and failures get a precise 4xx/5xx JSON answer, and everyone else keeps being
 * served. One server for the whole file (deploys are what take time).
 */
import assert from "node:assert/strict";
import { bundleFolder } from "../../src/functions/bundle.ts";
import { makeFunctionFolder, tensorFunctionSource } from "../fixtures/function_folders.ts";
import { deploy, type JsonBody, postJson, ROOT, startTestServer, testImage } from "../helpers.ts";

Deno.test("bad requests get precise 4xx answers and the server keeps serving", async (t) => {
  const server = await startTestServer({ maxBodyBytes: 64 * 1024 });
  const invoke = `${server.url}/functions/lenet/invoke`;
  const infer = `${server.url}/v2/models/lenet/infer`;
  const stillServes = async () => {
    const ok = await postJson(invoke, { image: testImage(7) });
    assert.equal(ok.status, 200, "a good request after a bad one is served");
  };
  try {
    await deploy(server, `${ROOT}/functions/lenet`);

    await t.step("malformed JSON → 400", async () => {
      for (const url of [invoke, infer]) {
        const r = await postJson(url, '{"image": [1, 2,');
        assert.equal(r.status, 400);
        assert.match(r.body.error, /malformed JSON/);
      }
      await stillServes();
    });

    await t.step("invoke body that fails the function's schema → 400 naming the field", async () => {
      const r = await postJson(invoke, { image: [1, 2, 3] });
      assert.equal(r.status, 400);
      assert.match(r.body.error, /image/);
      const r2 = await postJson(invoke, { image: testImage(1).map((v, i) => (i === 5 ? "x" : v)) });
      assert.equal(r2.status, 400);
      assert.match(r2.body.error, /image\.5/);
      const r3 = await postJson(invoke, { image: testImage(1).map((v, i) => (i === 9 ? 300 : v)) });
      assert.equal(r3.status, 400);
      assert.match(r3.body.error, /image: every pixel must be in 0\.\.255/);
      await stillServes();
    });

    await t.step("wrong datatype, shape, element count, input name → 400 saying which", async () => {
      const base = { name: "input", shape: [1, 1, 28, 28], datatype: "FP32", data: new Array(784).fill(0.5) };
      const cases: [unknown, RegExp][] = [
        [{ ...base, datatype: "INT32" }, /datatype INT32, the model expects FP32/],
        [{ ...base, datatype: "STRINGY" }, /unsupported datatype/],
        [{ ...base, shape: [1, 28, 28] }, /rank 3/],
        [{ ...base, shape: [1, 1, 28, 27], data: new Array(756).fill(0) }, /does not match the model's \[-1,1,28,28\]/],
        [{ ...base, data: new Array(783).fill(0) }, /needs 784 elements, data has 783/],
        [{ ...base, shape: [100000, 1, 28, 28] }, /needs 78400000 elements|more than the limit/],
        [{ ...base, data: [...new Array(783).fill(0), "x"] }, /element 783 \("x"\) is not a finite number/],
        [{ ...base, name: "nope" }, /unknown input "nope"/],
      ];
      for (const [input, re] of cases) {
        const r = await postJson(infer, { inputs: [input] });
        assert.equal(r.status, 400, JSON.stringify(input).slice(0, 80));
        assert.match(r.body.error, re);
      }
      const binary = await fetch(infer, {
        method: "POST",
        headers: { "inference-header-content-length": "9999" },
        body: JSON.stringify({ inputs: [base] }),
      });
      assert.equal(binary.status, 400);
      assert.match((await binary.json()).error, /Inference-Header-Content-Length "9999" is not a byte count within/);
      const noInputs = await postJson(infer, { inputs: [] });
      assert.equal(noInputs.status, 400);
      assert.match(noInputs.body.error, /inputs/);
      await stillServes();
    });

    await t.step("a body over the size limit → 413", async () => {
      const r = await postJson(invoke, { image: new Array(40000).fill(255) });
      assert.equal(r.status, 413);
      assert.match(r.body.error, /larger than the limit/);
      await stillServes();
    });

    await t.step("a body over the limit is refused however its length is declared (chunked, repeated)", async () => {
      const { hostname, port } = new URL(server.url);
      // A good request, padded beyond the limit: read in whole, it would be served.
      const body = JSON.stringify({ image: testImage(3), padding: "x".repeat(100_000) });
      const heads = [
        `content-length: ${body.length}\r\ncontent-length: ${body.length}`, // arrives joined: "N, N"
        "transfer-encoding: chunked",
      ];
      for (const head of heads) {
        const conn = await Deno.connect({ hostname, port: Number(port) });
        const payload = head.startsWith("transfer") ? `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n` : body;
        const request = `POST /functions/lenet/invoke HTTP/1.1\r\nhost: x\r\nconnection: close\r\n${head}\r\n\r\n`;
        const write = (async () => {
          await conn.write(new TextEncoder().encode(request));
          await conn.write(new TextEncoder().encode(payload)).catch(() => {}); // may be cut off after the 413
        })();
        let answer = "";
        const buf = new Uint8Array(4096);
        for (let n; (n = await conn.read(buf).catch(() => null)) !== null;) {
          answer += new TextDecoder().decode(buf.subarray(0, n));
        }
        await write;
        conn.close();
        // Deno may refuse a repeated length itself (400); it must never be read and served.
        assert.match(answer, /^HTTP\/1\.1 (413|400)/, `${head}: ${answer.slice(0, 200)}`);
        if (answer.startsWith("HTTP/1.1 413")) assert.match(answer, /larger than the limit/);
      }
      await stillServes();
    });

    await t.step("unknown function or model → 404; invalid name → 400", async () => {
      const r = await postJson(`${server.url}/functions/nosuch/invoke`, {});
      assert.equal(r.status, 404);
      assert.match(r.body.error, /unknown function "nosuch"/);
      const m = await fetch(`${server.url}/v2/models/nosuch`);
      assert.equal(m.status, 404);
      assert.match((await m.json()).error, /unknown function/);
      const bad = await postJson(`${server.url}/functions/..%2F..%2Fetc/invoke`, {});
      assert.equal(bad.status, 400);
      assert.match(bad.body.error, /invalid function name/);
      const v = await fetch(`${server.url}/v2/models/lenet/versions/9/ready`);
      assert.equal(v.status, 404);
    });

    await t.step("deploy with an invalid function name or path → 400", async () => {
      const bundle = await bundleFolder(`${ROOT}/functions/lenet`);
      for (
        const [mutate, re] of [
          [(b: JsonBody) => (b.manifest.name = "../evil"), /manifest\.name/],
          [(b: JsonBody) => (b.manifest.name = "Upper"), /manifest\.name/],
          [(b: JsonBody) => b.files.push({ path: "../../escape.ts", base64: "AA==" }), /files\.\d+\.path/],
          [(b: JsonBody) => b.files.push({ path: "/etc/passwd", base64: "AA==" }), /files\.\d+\.path/],
          [(b: JsonBody) => (b.manifest.model = "../../etc/x.onnx"), /manifest\.model/],
        ] as [(b: JsonBody) => void, RegExp][]
      ) {
        const b = structuredClone(bundle);
        mutate(b);
        const r = await postJson(`${server.url}/admin/functions`, b);
        assert.equal(r.status, 400, JSON.stringify(r.body));
        assert.match(r.body.error, re);
      }
    });

    await t.step("deploy of an unknown zoo model or a model file that does not load → 400", async () => {
      const unknown = await makeFunctionFolder("unknownmodel", tensorFunctionSource("no_such_model"));
      const r1 = await postJson(`${server.url}/admin/functions`, await bundleFolder(unknown));
      assert.equal(r1.status, 400);
      assert.match(r1.body.error, /unknown model "no_such_model"/);

      const broken = await makeFunctionFolder("broken", tensorFunctionSource("broken.onnx"), {
        "broken.onnx": new TextEncoder().encode("this is not an onnx model"),
      });
      const r2 = await postJson(`${server.url}/admin/functions`, await bundleFolder(broken));
      assert.equal(r2.status, 400);
      assert.match(r2.body.error, /cannot be served \(load\)/);
      assert.equal((await fetch(`${server.url}/v2/models/broken`)).status, 404, "a failed deploy is not served");

      const throws = await makeFunctionFolder(
        "throws",
        `import { defineFunction } from "gpulet";\nthrow new Error("boom at import");\nexport default defineFunction({ model: "lenet", sloMs: 100 });\n`,
      );
      await assert.rejects(bundleFolder(throws), /boom at import/, "the deploy CLI runs function.ts locally first");
      await stillServes();
    });
  } finally {
    await server.shutdown();
  }
});

Deno.test("a full queue answers 429 with Retry-After; everything admitted is served", async () => {
  const server = await startTestServer({ maxQueueRows: 3 });
  try {
    await deploy(server, `${ROOT}/tests/fixtures/functions/slow`);
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => postJson(`${server.url}/functions/slow/invoke`, { delayMs: 40, value: i })),
    );
    const rejected = answers.filter((a) => a.status === 429);
    const served = answers.filter((a) => a.status === 200);
    assert.equal(rejected.length + served.length, 20, JSON.stringify(answers.map((a) => a.status)));
    assert.ok(rejected.length >= 10, `expected most to be shed, got ${rejected.length} 429s`);
    assert.ok(served.length >= 3);
    for (const r of rejected) {
      assert.equal(r.headers.get("retry-after"), "1");
      assert.match(r.body.error, /queue of slow is full/);
    }
    served.forEach((a) => assert.equal(typeof a.body.value, "number"));
  } finally {
    await server.shutdown();
  }
});

Deno.test("the admin API requires the bearer token when one is configured", async () => {
  const server = await startTestServer({ adminToken: "s3cret-token" });
  try {
    const bundle = await bundleFolder(`${ROOT}/functions/lenet`);
    const noAuth = await postJson(`${server.url}/admin/functions`, bundle);
    assert.equal(noAuth.status, 401);
    assert.match(noAuth.body.error, /Bearer/);
    const wrong = await fetch(`${server.url}/admin/functions`, { headers: { authorization: "Bearer nope" } });
    assert.equal(wrong.status, 401);
    await wrong.body?.cancel();
    const ok = await deploy(server, `${ROOT}/functions/lenet`, "s3cret-token");
    assert.equal(ok.name, "lenet");
    // The data plane stays open.
    assert.equal((await postJson(`${server.url}/functions/lenet/invoke`, { image: testImage(3) })).status, 200);
  } finally {
    await server.shutdown();
  }
});
