/**
 * `game`, the Gpu-let seed's game app: one game frame in, the scene classified by resnet50 while lenet reads
 * the six digits of the score strip (the frame's top band, cut in six square cells), side by side, answered
 * together. JSON: `{ "image": "<base64 PNG or JPEG>" }` →
 * `{ "scene": [{ index, label, probability }×5], "digits": [d0, …, d5], "score": "d0…d5" }`.
 * Both models carry seeded random weights (`deno task models`): the labels and digits are not meaningful
 * until they are replaced with trained ones.
 */
import { defineApp, z } from "gpulet";
import { decodeBase64, decodeImage, type RgbImage } from "gpulet/vision";

/** Digits on the score strip. */
const DIGITS = 6;
const SIDE = 28;

/** A cell of the frame as LeNet's input: 28×28 grayscale (0-255), averaged over the cell's pixels. */
function digitCell(img: RgbImage, x0: number, y0: number, size: number): number[] {
  const out = new Array<number>(SIDE * SIDE);
  for (let y = 0; y < SIDE; y++) {
    for (let x = 0; x < SIDE; x++) {
      // The source box of this output pixel (at least one source pixel).
      const sx0 = x0 + Math.floor((x * size) / SIDE), sx1 = Math.max(sx0 + 1, x0 + Math.floor(((x + 1) * size) / SIDE));
      const sy0 = y0 + Math.floor((y * size) / SIDE), sy1 = Math.max(sy0 + 1, y0 + Math.floor(((y + 1) * size) / SIDE));
      let sum = 0, n = 0;
      for (let sy = sy0; sy < Math.min(sy1, img.height); sy++) {
        for (let sx = sx0; sx < Math.min(sx1, img.width); sx++) {
          const i = 3 * (sy * img.width + sx);
          sum += 0.299 * img.rgb[i] + 0.587 * img.rgb[i + 1] + 0.114 * img.rgb[i + 2];
          n++;
        }
      }
      out[y * SIDE + x] = n ? Math.round(sum / n) : 0;
    }
  }
  return out;
}

/** The score strip's six cells: squares of a sixth of the frame's width along its top edge. */
export function scoreCells(img: RgbImage): number[][] {
  const size = Math.max(1, Math.min(img.height, Math.floor(img.width / DIGITS)));
  return Array.from({ length: DIGITS }, (_, d) => digitCell(img, d * Math.floor(img.width / DIGITS), 0, size));
}

const Input = z.object({
  image: z.base64().max(32 * 1024 * 1024, "image is larger than 24 MiB").describe("base64 PNG or JPEG"),
}).strict();

export default defineApp({
  // The seed's 108 ms is an H100's; on this machine's CPU kind resnet50 alone takes ~0.2-1 s.
  sloMs: 2500,
  description: "Game frame -> scene (resnet50) and the six score digits (lenet x6), in parallel",
  input: Input,
  stages: {
    scene: { function: "resnet50" },
    digits: { function: "lenet", fanOut: DIGITS },
  },
  run: async ({ image }, ctx) => {
    const frame = decodeImage(decodeBase64(image));
    const [scene, digits] = await Promise.all([
      ctx.call<{ top: unknown[] }>("scene", { image, top: 5 }),
      Promise.all(scoreCells(frame).map((cell) => ctx.call<{ label: number }>("digits", { image: cell }))),
    ]);
    const labels = digits.map((d) => d.label);
    return { scene: scene.top, digits: labels, score: labels.join("") };
  },
});
