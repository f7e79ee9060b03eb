/**
 * Integration: the real server on a free loopback port, real sandboxed workers, real onnxruntime.
 * deploy → invoke (both endpoints) equals a direct onnxruntime run; concurrent invokes are batched.
 */
import assert from "node:assert/strict";
import ort from "onnxruntime-node";
import { DEFAULT_MODELS_DIR } from "../../src/models/zoo.ts";
import { deploy, postJson, ROOT, startTestServer, testImage } from "../helpers.ts";

/** What onnxruntime-node says for lenet on these images, in this process. */
async function directLenet(images: number[][]): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(`${DEFAULT_MODELS_DIR}/lenet.onnx`);
  const data = new Float32Array(images.length * 784);
  images.forEach((img, i) => data.set(img.map((v) => v / 255), i * 784));
  const out = await session.run({ input: new ort.Tensor("float32", data, [images.length, 1, 28, 28]) });
  await session.release();
  return out.logits.data as Float32Array;
}

function assertClose(actual: number[], expected: ArrayLike<number>, tol = 1e-5) {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < actual.length; i++) {
    assert.ok(
      Math.abs(actual[i] - expected[i]) <= tol * (1 + Math.abs(expected[i])),
      `element ${i}: ${actual[i]} vs ${expected[i]}`,
    );
  }
}

Deno.test("deploy lenet, invoke and OIP infer give the same logits as a direct onnxruntime run", async () => {
  const server = await startTestServer();
  try {
    const dep = await deploy(server, `${ROOT}/functions/lenet`);
    assert.equal(dep.name, "lenet");
    assert.equal(dep.version, 1);

    const images = [testImage(1), testImage(2)];
    const expected = await directLenet(images);

    const inv = await postJson(`${server.url}/functions/lenet/invoke`, { image: images[0] });
    assert.equal(inv.status, 200, JSON.stringify(inv.body));
    assertClose(inv.body.logits, expected.subarray(0, 10));
    const argmax = Array.from(expected.subarray(0, 10)).indexOf(Math.max(...expected.subarray(0, 10)));
    assert.equal(inv.body.label, argmax);
    assert.match(inv.headers.get("server-timing") ?? "", /compute;dur=[0-9.]+/);

    // One OIP request carrying a batch of two, as nested arrays.
    const nested = images.map((
      img,
    ) => [Array.from({ length: 28 }, (_, r) => img.slice(r * 28, r * 28 + 28).map((v) => v / 255))]);
    const oip = await postJson(`${server.url}/v2/models/lenet/infer`, {
      id: "req-1",
      inputs: [{ name: "input", shape: [2, 1, 28, 28], datatype: "FP32", data: nested }],
    });
    assert.equal(oip.status, 200, JSON.stringify(oip.body));
    assert.equal(oip.body.id, "req-1");
    assert.equal(oip.body.model_name, "lenet");
    assert.equal(oip.body.outputs[0].name, "logits");
    assert.equal(oip.body.outputs[0].datatype, "FP32");
    assert.deepEqual(oip.body.outputs[0].shape, [2, 10]);
    assertClose(oip.body.outputs[0].data, expected);

    const meta = await (await fetch(`${server.url}/v2/models/lenet`)).json();
    assert.deepEqual(meta.inputs, [{ name: "input", datatype: "FP32", shape: [-1, 1, 28, 28] }]);
    assert.equal((await fetch(`${server.url}/v2/models/lenet/ready`)).status, 200);
    assert.equal((await fetch(`${server.url}/v2/models/lenet/versions/1/ready`)).status, 200);
    assert.equal((await (await fetch(`${server.url}/v2/health/ready`)).json()).ready, true);
    assert.equal((await (await fetch(`${server.url}/v2/health/live`)).json()).live, true);
    assert.equal((await (await fetch(`${server.url}/v2`)).json()).name, "gpulet");
  } finally {
    await server.shutdown();
  }
});

/** Sum of a histogram's observations above 1 for a function, from the Prometheus text. */
function batchesAbove1(metrics: string, fn: string): number {
  const le1 = metrics.match(new RegExp(`gpulet_batch_size_bucket\\{le="1",function="${fn}"\\} (\\d+)`));
  const count = metrics.match(new RegExp(`gpulet_batch_size_count\\{function="${fn}"\\} (\\d+)`));
  assert.ok(le1 && count, "batch size histogram present");
  return Number(count[1]) - Number(le1[1]);
}

Deno.test("64 concurrent invokes are all answered correctly, in batches larger than 1", async () => {
  const server = await startTestServer();
  try {
    await deploy(server, `${ROOT}/functions/lenet`);
    const images = Array.from({ length: 64 }, (_, i) => testImage(100 + i));
    const expected = await directLenet(images);
    const answers = await Promise.all(
      images.map((image) => postJson(`${server.url}/functions/lenet/invoke`, { image })),
    );
    answers.forEach((a, i) => {
      assert.equal(a.status, 200, JSON.stringify(a.body));
      assertClose(a.body.logits, expected.subarray(i * 10, i * 10 + 10));
    });
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /gpulet_requests_total\{function="lenet",code="200"\} 64/);
    assert.ok(batchesAbove1(metrics, "lenet") > 0, "some executed batches had more than one row");
    assert.match(metrics, /gpulet_queue_depth\{function="lenet"\} 0/);
    assert.match(metrics, /gpulet_request_duration_seconds_count\{function="lenet"\} 64/);
  } finally {
    await server.shutdown();
  }
});
