/**
 * Image functions: PNG/JPEG decoding, torchvision's resize-crop-normalise, top-k labels, and the shipped
 * `mobilenet_v2` function end to end (JSON image → top-5 labels that agree with OIP tensors on the same image).
 */
import assert from "node:assert/strict";
import { encode as encodePng } from "fast-png";
import jpeg from "jpeg-js";
import { encodeBase64 } from "../../src/functions/bundle.ts";
import { decodeImage, IMAGENET_LABELS, imagenetTensor, type RgbImage, topK } from "../../src/functions/vision.ts";
import { deploy, postJson, ROOT, startTestServer } from "../helpers.ts";

/** A w×h RGB test card: red follows x, green follows y, blue is constant. */
function card(w: number, h: number): RgbImage {
  const rgb = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) rgb.set([x % 256, y % 256, 200], (y * w + x) * 3);
  }
  return { width: w, height: h, rgb };
}

const png = (img: RgbImage) => encodePng({ width: img.width, height: img.height, data: img.rgb, channels: 3 });
const jpg = (img: RgbImage) => {
  const rgba = new Uint8Array(img.width * img.height * 4);
  for (let i = 0; i < img.width * img.height; i++) rgba.set([...img.rgb.subarray(i * 3, i * 3 + 3), 255], i * 4);
  return new Uint8Array(jpeg.encode({ width: img.width, height: img.height, data: rgba }, 95).data);
};

Deno.test("decodeImage: RGB, grey, 16-bit and alpha PNGs and JPEGs give the same pixels", () => {
  const img = card(40, 30);
  assert.deepEqual(decodeImage(png(img)), img);

  const grey = encodePng({ width: 2, height: 1, data: new Uint8Array([10, 250]), channels: 1 });
  assert.deepEqual(Array.from(decodeImage(grey).rgb), [10, 10, 10, 250, 250, 250]);
  const deep = encodePng({
    width: 1,
    height: 1,
    data: new Uint16Array([0x1234, 0xff00, 0x0101]),
    channels: 3,
    depth: 16,
  });
  assert.deepEqual(Array.from(decodeImage(deep).rgb), [0x12, 0xff, 0x01]);
  const rgba = encodePng({ width: 1, height: 1, data: new Uint8Array([1, 2, 3, 0]), channels: 4 });
  assert.deepEqual(Array.from(decodeImage(rgba).rgb), [1, 2, 3]);

  const fromJpeg = decodeImage(jpg(img));
  assert.equal(fromJpeg.width, 40);
  assert.equal(fromJpeg.height, 30);
  const maxDiff = fromJpeg.rgb.reduce((m, v, i) => Math.max(m, Math.abs(v - img.rgb[i])), 0);
  assert.ok(maxDiff < 24, `JPEG at quality 95 stays close to the source (max difference ${maxDiff})`);
});

Deno.test("decodeImage: anything else is refused with a reason", () => {
  assert.throws(() => decodeImage(new TextEncoder().encode("GIF89a....")), /neither a PNG nor a JPEG/);
  const truncated = png(card(16, 16)).subarray(0, 60);
  assert.throws(() => decodeImage(truncated), /bad PNG/);
  assert.throws(() => decodeImage(new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0, 0])), /bad JPEG/);
});

Deno.test("imagenetTensor: shorter side to 256, centre crop 224, ImageNet mean/std, CHW", () => {
  // 256×256 needs no resize, so the crop starts at (16, 16) and pixel (x, y) of the crop is source (x+16, y+16).
  const t = imagenetTensor(card(256, 256));
  assert.equal(t.length, 3 * 224 * 224);
  const at = (c: number, y: number, x: number) => t[c * 224 * 224 + y * 224 + x];
  const norm = (v: number, c: number) => (v / 255 - [0.485, 0.456, 0.406][c]) / [0.229, 0.224, 0.225][c];
  for (const [y, x] of [[0, 0], [100, 7], [223, 223]]) {
    assert.ok(Math.abs(at(0, y, x) - norm(x + 16, 0)) < 1e-5, `red at ${x},${y}`);
    assert.ok(Math.abs(at(1, y, x) - norm(y + 16, 1)) < 1e-5, `green at ${x},${y}`);
    assert.ok(Math.abs(at(2, y, x) - norm(200, 2)) < 1e-5, `blue at ${x},${y}`);
  }
  // A tiny portrait image is upscaled (2×4 → 256×512) and cropped; a uniform colour stays uniform.
  const tall = imagenetTensor({ width: 2, height: 4, rgb: new Uint8Array(24).fill(90) });
  assert.ok(tall.every((v, i) => Math.abs(v - norm(90, Math.floor(i / (224 * 224)))) < 1e-5), "uniform stays uniform");
});

Deno.test("topK: most likely first, softmax probabilities, ImageNet names", () => {
  const logits = new Float32Array(1000);
  logits[3] = 5;
  logits[0] = 4;
  logits[999] = 3;
  const top = topK(logits, 3);
  assert.deepEqual(top.map((t) => t.index), [3, 0, 999]);
  assert.equal(top[1].label, "tench, Tinca tinca");
  assert.equal(IMAGENET_LABELS.length, 1000);
  const z = Math.exp(5) + Math.exp(4) + Math.exp(3) + 997;
  assert.ok(Math.abs(top[0].probability - Math.exp(5) / z) < 1e-9);
});

Deno.test("mobilenet_v2 function: PNG and JPEG give top-5 labels that match OIP tensors of the same image", async () => {
  const server = await startTestServer();
  try {
    await deploy(server, `${ROOT}/functions/mobilenet_v2`);
    const img = card(320, 240);
    const url = `${server.url}/functions/mobilenet_v2/invoke`;
    // One at a time: this is about the answers; together, on a busy machine, the third could miss the SLO
    // behind two image decodes and rightly get a 504.
    const fromPng = await postJson(url, { image: encodeBase64(png(img)) });
    const fromJpeg = await postJson(url, { image: encodeBase64(jpg(img)) });
    const top10 = await postJson(url, { image: encodeBase64(png(img)), top: 10 });
    for (const r of [fromPng, fromJpeg, top10]) assert.equal(r.status, 200, JSON.stringify(r.body));
    // Generated weights: every answer says its labels mean nothing, as does the model's metadata.
    for (const r of [fromPng, fromJpeg, top10]) {
      assert.equal(r.body.weights, "random");
      assert.equal(r.headers.get("x-gpulet-weights"), "random");
    }
    assert.equal((await (await fetch(`${server.url}/v2/models/mobilenet_v2`)).json()).weights, "random");
    assert.equal(fromPng.body.top.length, 5);
    assert.equal(top10.body.top.length, 10);
    const p = fromPng.body.top.map((t: { probability: number }) => t.probability);
    assert.deepEqual(p, [...p].sort((a, b) => b - a), "most likely first");
    assert.equal(typeof fromPng.body.top[0].label, "string");

    // The same preprocessing done by the client, sent as a tensor, ranks the same classes.
    const oip = await postJson(`${server.url}/v2/models/mobilenet_v2/infer`, {
      inputs: [{ name: "input", datatype: "FP32", shape: [1, 3, 224, 224], data: Array.from(imagenetTensor(img)) }],
    });
    assert.equal(oip.status, 200, JSON.stringify(oip.body));
    const expected = topK(oip.body.outputs[0].data as number[], 5);
    assert.deepEqual(fromPng.body.top.map((t: { index: number }) => t.index), expected.map((t) => t.index));

    const bad = await postJson(url, { image: encodeBase64(new TextEncoder().encode("not an image")) });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error, /neither a PNG nor a JPEG/);
    const notBase64 = await postJson(url, { image: "***" });
    assert.equal(notBase64.status, 400);
    assert.match(notBase64.body.error, /image/);
  } finally {
    await server.shutdown();
  }
});
