/**
 * The OCR helpers (`src/functions/ocr.ts`) on inputs made by hand: CTC decoding, the dictionary file, text
 * boxes out of a probability map (grown by the unclip distance, scored, ordered), crops and turns.
 */
import assert from "node:assert/strict";
import {
  cropBox,
  ctcDecode,
  DET_SIZE,
  detectBoxes,
  detectionInput,
  parseDictionary,
  rotate180,
} from "../../src/functions/ocr.ts";
import type { RgbImage } from "../../src/functions/vision.ts";

Deno.test("ocr: CTC decoding drops blanks and repeats; the class after the dictionary is a space", () => {
  // Classes: 0 blank, 1 "a", 2 "b", 3 space. Steps: a a _ a b ␣ ␣.
  const seq = [1, 1, 0, 1, 2, 3, 3];
  const probs = new Float32Array(seq.length * 4);
  seq.forEach((k, t) => {
    probs.fill(0.1 / 3, t * 4, t * 4 + 4);
    probs[t * 4 + k] = 0.9;
  });
  const { text, score } = ctcDecode(probs, seq.length, 4, ["a", "b"]);
  assert.equal(text, "aab ");
  assert.ok(Math.abs(score - 0.9) < 1e-6);
  assert.deepEqual(ctcDecode(new Float32Array(8).fill(0).map((_, i) => (i % 4 === 0 ? 1 : 0)), 2, 4, ["a", "b"]), {
    text: "",
    score: 0,
  });
  assert.deepEqual(parseDictionary("a\r\nb\n"), ["a", "b"]);
  assert.deepEqual(parseDictionary("a\n\nb"), ["a", "", "b"]);
});

Deno.test("ocr: text boxes are the probable regions, grown by the unclip distance, top to bottom", () => {
  const prob = new Float32Array(DET_SIZE * DET_SIZE);
  const fill = (x0: number, y0: number, w: number, h: number, p: number) => {
    for (let y = y0; y < y0 + h; y++) prob.fill(p, y * DET_SIZE + x0, y * DET_SIZE + x0 + w);
  };
  fill(60, 200, 100, 30, 0.8); // the second line
  fill(50, 100, 200, 20, 0.9); // the first line
  fill(400, 400, 50, 50, 0.4); // probable pixels, but a region too unsure to keep
  // The image was scaled by 2 into the detector's frame: boxes come back in its own pixels.
  const boxes = detectBoxes(prob, 2, 320, 320);
  assert.equal(boxes.length, 2, JSON.stringify(boxes));
  const [first, second] = boxes;
  assert.ok(Math.abs(first.score - 0.9) < 1e-6 && Math.abs(second.score - 0.8) < 1e-6);
  // 200×20 grown by 200·20·2 / (2·220) ≈ 18.2 px a side, then halved.
  const d = (200 * 20 * 2) / (2 * 220);
  const expect = [[50 - d, 100 - d], [250 + d, 100 - d], [250 + d, 120 + d], [50 - d, 120 + d]].map(([x, y]) => [
    Math.round(x / 2),
    Math.round(y / 2),
  ]);
  assert.deepEqual(first.box, expect);
  assert.ok(second.box[0][1] > first.box[3][1] - 20, "the second line is below the first");
  assert.deepEqual(detectBoxes(new Float32Array(DET_SIZE * DET_SIZE), 1, 640, 640), []);
});

Deno.test("ocr: an image fits the detector's frame; crops come out straight, tall ones turned; 180° twice is none", () => {
  const img: RgbImage = { width: 1280, height: 320, rgb: new Uint8Array(1280 * 320 * 3).fill(255) };
  assert.equal(detectionInput(img).scale, 0.5);
  assert.equal(detectionInput({ width: 100, height: 50, rgb: new Uint8Array(15000) }).scale, 2);
  // A gradient image: a crop of an axis-aligned box is that region.
  const w = 40, h = 30;
  const grad: RgbImage = { width: w, height: h, rgb: new Uint8Array(w * h * 3) };
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) grad.rgb.set([x * 6, y * 8, 0], 3 * (y * w + x));
  const crop = cropBox(grad, [[10, 5], [30, 5], [30, 15], [10, 15]]);
  assert.deepEqual([crop.width, crop.height], [20, 10]);
  assert.deepEqual(Array.from(crop.rgb.subarray(0, 3)), [60, 40, 0]);
  // Taller than 1.5× its width: turned a quarter, so the line lies flat.
  const tall = cropBox(grad, [[10, 0], [20, 0], [20, 30], [10, 30]]);
  assert.deepEqual([tall.width, tall.height], [30, 10]);
  assert.deepEqual(rotate180(rotate180(grad)), grad);
  assert.deepEqual(Array.from(rotate180(grad).rgb.subarray(0, 3)), Array.from(grad.rgb.subarray(grad.rgb.length - 3)));
});
