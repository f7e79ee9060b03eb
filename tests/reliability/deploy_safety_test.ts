/**
 * Reliability: a new version that fails validation, loading or warm-up is refused and the version before it
 * keeps serving, without a single failed request; versions are addressable through the OIP versions path.
 */
import assert from "node:assert/strict";
import { deploy, postJson, rawBundle, ROOT, startTestServer, testImage } from "../helpers.ts";

const LENET = { sloMs: 100, maxBatch: 32 };

/** A lenet function.ts whose preprocess runs `body` first (it sees the input as `image`). */
function lenetSource(body: string, sloMs = LENET.sloMs): string {
  return `import { defineFunction, tensor, z } from "gpulet";\n` +
    `export default defineFunction({ model: "lenet", sloMs: ${sloMs}, maxBatch: 32,\n` +
    `  input: z.object({ image: z.array(z.number()).length(784) }), example: { image: new Array(784).fill(0) },\n` +
    `  preprocess: ({ image }) => { ${body}; return { input: tensor("float32", Float32Array.from(image), [1, 1, 28, 28]) }; },\n` +
    `  postprocess: ({ logits }) => ({ logits: Array.from(logits.data) }) });\n`;
}

Deno.test("a failing new version is refused and the previous version keeps serving throughout", async () => {
  const server = await startTestServer({ startTimeoutMs: 3_000 });
  try {
    const v1 = await deploy(server, `${ROOT}/functions/lenet`);
    assert.equal(v1.version, 1);
    const invokeUrl = `${server.url}/functions/lenet/invoke`;
    const image = testImage(9);
    const label = (await postJson(invokeUrl, { image })).body.label;

    // A steady stream of good requests for the whole test.
    const stream: { status: number; label?: number }[] = [];
    let running = true;
    const streaming = (async () => {
      const inflight: Promise<void>[] = [];
      while (running) {
        inflight.push(
          postJson(invokeUrl, { image }).then((a) => void stream.push({ status: a.status, label: a.body.label })),
        );
        await new Promise((r) => setTimeout(r, 30));
      }
      await Promise.all(inflight);
    })();

    const failing: [string, ReturnType<typeof rawBundle>, RegExp][] = [
      [
        "invalid manifest",
        rawBundle("lenet", lenetSource(""), { ...LENET, sloMs: 0 }),
        /invalid bundle: manifest\.sloMs/,
      ],
      [
        "function.ts disagrees with its manifest",
        rawBundle("lenet", lenetSource("", 50), LENET),
        /cannot be served \(validate\): function\.ts does not match the deployed manifest/,
      ],
      [
        "import throws",
        rawBundle("lenet", `throw new Error("boom at import");\n`, LENET),
        /cannot be served \(import\): .*boom at import/,
      ],
      [
        "model file that does not load",
        rawBundle(
          "lenet",
          lenetSource("").replace('model: "lenet"', 'model: "model.onnx"'),
          { ...LENET, model: "model.onnx" },
          { "model.onnx": new TextEncoder().encode("not an onnx model") },
        ),
        /cannot be served \(load\)/,
      ],
      [
        "warm-up throws",
        rawBundle("lenet", lenetSource(`throw new Error("boom in warm-up")`), LENET),
        /cannot be served \(warmup\): .*boom in warm-up/,
      ],
      [
        "warm-up crashes the runtime",
        rawBundle("lenet", lenetSource("Deno.exit(139)"), LENET),
        /cannot be served \(load\): worker exited with code 139/,
      ],
      [
        "warm-up never ends",
        rawBundle("lenet", lenetSource("for (;;) {}"), LENET),
        /cannot be served \(warmup\): worker not ready in 3000 ms/,
      ],
    ];
    for (const [what, bundle, re] of failing) {
      const r = await postJson(`${server.url}/admin/functions`, bundle);
      assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.body)}`);
      assert.match(r.body.error, re, what);
      const meta = await (await fetch(`${server.url}/v2/models/lenet`)).json();
      assert.deepEqual(meta.versions, ["1"], `${what}: v1 is still the live version`);
    }

    // The live version answers on its versioned path too.
    const versioned = await postJson(`${server.url}/v2/models/lenet/versions/1/infer`, {
      inputs: [{ name: "input", datatype: "FP32", shape: [1, 1, 28, 28], data: image.map((v) => v / 255) }],
    });
    assert.equal(versioned.status, 200, JSON.stringify(versioned.body));

    // A good deploy replaces it; the old version's path is gone, the new one's serves.
    const v2 = await deploy(server, `${ROOT}/functions/lenet`);
    assert.ok(v2.version as number > 1);
    running = false;
    await streaming;
    assert.ok(stream.length > 20, `stream ran ${stream.length} requests`);
    assert.deepEqual(stream.filter((s) => s.status !== 200 || s.label !== label), [], "no good request failed");

    const gone = await fetch(`${server.url}/v2/models/lenet/versions/1/ready`);
    assert.equal(gone.status, 404);
    assert.match((await gone.json()).error, new RegExp(`no live version "1" \\(live: ${v2.version}\\)`));
    assert.equal((await fetch(`${server.url}/v2/models/lenet/versions/${v2.version}/ready`)).status, 200);
    assert.deepEqual(
      (await (await fetch(`${server.url}/admin/functions`)).json()).functions.map((f: { version: number }) =>
        f.version
      ),
      [v2.version],
    );
  } finally {
    await server.shutdown();
  }
});
