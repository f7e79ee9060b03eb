/**
 * `traffic`, the Gpu-let seed's traffic app: a detector finds the objects of a frame, and each object's crop
 * goes to googlenet and vgg16 side by side. The zoo has no ssd: mobilenet_v2 (ssd's usual backbone) stands in
 * as the detector, scoring the frame's four quadrants as candidate regions; a region whose best class has
 * probability ≥ `threshold` (default 0.15, where the random weights find some) is an object. So the crops per frame (the fan-out of the second level) are known
 * only at run time, as with a real detector. All three models carry seeded random weights (`deno task
 * models`): labels and detections are not meaningful until they are replaced with trained ones.
 * JSON: `{ "image": "<base64 PNG or JPEG>", "threshold"?: 0.15 }` →
 * `{ "objects": [{ "box": [x, y, w, h], "score", "label", "classify": [top-5], "recognise": [top-5] }] }`.
 */
import { defineApp, z } from "gpulet";
import { cropImage, decodeBase64, decodeImage, pngBase64 } from "gpulet/vision";

interface Top {
  top: { index: number; label: string; probability: number }[];
}

const Input = z.object({
  image: z.base64().max(32 * 1024 * 1024, "image is larger than 24 MiB").describe("base64 PNG or JPEG"),
  threshold: z.number().min(0).max(1).default(0.15),
}).strict();

export default defineApp({
  // The seed's 202 ms is an H100's; on this machine's CPU kind vgg16 alone takes ~0.3-1 s a crop.
  sloMs: 6000,
  description: "Traffic frame -> objects (mobilenet_v2 on 4 regions), each crop to googlenet and vgg16",
  input: Input,
  stages: {
    detect: { function: "mobilenet_v2", fanOut: 4 },
    classify: { function: "googlenet", after: ["detect"], fanOut: 2 },
    recognise: { function: "vgg16", after: ["detect"], fanOut: 2 },
  },
  run: async ({ image, threshold }, ctx) => {
    const frame = decodeImage(decodeBase64(image));
    const w = Math.ceil(frame.width / 2), h = Math.ceil(frame.height / 2);
    const regions = [[0, 0], [w, 0], [0, h], [w, h]].map(([x, y]) => ({ box: [x, y, w, h], crop: "" }));
    for (const r of regions) r.crop = pngBase64(cropImage(frame, r.box[0], r.box[1], w, h));
    const scored = await Promise.all(regions.map((r) => ctx.call<Top>("detect", { image: r.crop, top: 1 })));
    const objects = regions
      .map((r, i) => ({ ...r, best: scored[i].top[0] }))
      .filter((r) => r.best.probability >= threshold);
    const answers = await Promise.all(objects.map((o) =>
      Promise.all([
        ctx.call<Top>("classify", { image: o.crop, top: 5 }),
        ctx.call<Top>("recognise", { image: o.crop, top: 5 }),
      ])
    ));
    return {
      objects: objects.map((o, i) => ({
        box: o.box,
        score: o.best.probability,
        label: o.best.label,
        classify: answers[i][0].top,
        recognise: answers[i][1].top,
      })),
    };
  },
});
