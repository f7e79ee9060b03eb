/**
 * LeNet-5 digit classifier (generated, seeded random weights): a 28×28 grayscale image in, the 10 logits
 * and the arg-max label out. Also served as raw tensors at /v2/models/lenet/infer.
 */
import { defineFunction, tensor, z } from "gpulet";

const Input = z.object({
  /** 784 grayscale pixels, row-major, 0 (black) to 255 (white). */
  image: z.array(z.number()).length(784).refine(
    // One loop instead of a schema per element: a third of the validation time on the serving path.
    (px) => px.every((v) => v >= 0 && v <= 255),
    "every pixel must be in 0..255",
  ),
});

function normalise(image: number[]): Float32Array {
  const out = new Float32Array(image.length);
  for (let i = 0; i < image.length; i++) out[i] = image[i] / 255;
  return out;
}

export default defineFunction({
  model: "lenet",
  sloMs: 100,
  maxBatch: 32,
  description: "LeNet-5: 28x28 grayscale (0-255, row-major) -> label and 10 logits",
  input: Input,
  example: { image: new Array(784).fill(0) },
  preprocess: ({ image }) => ({ input: tensor("float32", normalise(image), [1, 1, 28, 28]) }),
  postprocess: ({ logits }) => {
    const values = Array.from(logits.data as Float32Array);
    const label = values.indexOf(Math.max(...values));
    return { label, logits: values };
  },
});
