/**
 * Image helpers for functions (`import { … } from "gpulet/vision"`): decode a PNG or JPEG, turn it into the
 * normalised 3×224×224 tensor torchvision's ImageNet models expect, and read top-k ImageNet labels out of
 * logits. Preloaded by the worker, like the SDK, so sandboxed function code can use them.
 */
import { convertIndexedToRgb, decode as decodePng, encode as encodePng, hasPngSignature } from "fast-png";
import jpeg from "jpeg-js";
import { IMAGENET_CLASSES } from "@tensorflow-models/mobilenet/dist/imagenet_classes.js";
import { decodeBase64, encodeBase64 } from "./bundle.ts";
import { type DefinedFunction, defineFunction, tensor, z } from "./sdk.ts";

/** 8-bit RGB pixels, row-major, 3 bytes per pixel. */
export interface RgbImage {
  width: number;
  height: number;
  rgb: Uint8Array;
}

/** Largest decoded image accepted (pixels): a 4K frame is 8.3 M; beyond this a request is refused, not decoded. */
export const MAX_IMAGE_PIXELS = 16_000_000;

/** The 1000 ImageNet-1k class names, index = logit position (the torchvision order). */
export const IMAGENET_LABELS: readonly string[] = Array.from({ length: 1000 }, (_, i) => IMAGENET_CLASSES[i]);

export { decodeBase64 };

/** The `w`×`h` region of `img` at (`x`, `y`), clipped to the image (at least one pixel). */
export function cropImage(img: RgbImage, x: number, y: number, w: number, h: number): RgbImage {
  const x0 = Math.max(0, Math.min(img.width - 1, Math.floor(x)));
  const y0 = Math.max(0, Math.min(img.height - 1, Math.floor(y)));
  const cw = Math.max(1, Math.min(img.width - x0, Math.floor(w)));
  const ch = Math.max(1, Math.min(img.height - y0, Math.floor(h)));
  const rgb = new Uint8Array(cw * ch * 3);
  for (let r = 0; r < ch; r++) {
    const from = 3 * ((y0 + r) * img.width + x0);
    rgb.set(img.rgb.subarray(from, from + 3 * cw), 3 * r * cw);
  }
  return { width: cw, height: ch, rgb };
}

/** `img` as a base64 PNG: the body an image function takes (an app passing a crop on to a stage). */
export function pngBase64(img: RgbImage): string {
  return encodeBase64(encodePng({ width: img.width, height: img.height, data: img.rgb, channels: 3, depth: 8 }));
}

/** Thrown for bytes that are not a decodable PNG or JPEG; its message is fit for a 400 answer. */
export class ImageDecodeError extends Error {}

/** Decodes PNG (any bit depth, palette, grey, alpha) or baseline/progressive JPEG bytes to 8-bit RGB. */
export function decodeImage(bytes: Uint8Array): RgbImage {
  if (bytes.length === 0) throw new ImageDecodeError("image is empty (0 bytes)");
  if (hasPngSignature(bytes)) return pngToRgb(bytes);
  if (bytes.length > 3 && bytes[0] === 0xff && bytes[1] === 0xd8) return jpegToRgb(bytes);
  throw new ImageDecodeError("image is neither a PNG nor a JPEG (bad signature)");
}

function pngToRgb(bytes: Uint8Array): RgbImage {
  let png;
  try {
    png = decodePng(bytes);
  } catch (e) {
    throw new ImageDecodeError(`bad PNG: ${(e as Error).message}`);
  }
  const { width, height } = png;
  if (width * height > MAX_IMAGE_PIXELS) throw new ImageDecodeError(`image ${width}x${height} is too large`);
  let data: ArrayLike<number> = png.data;
  let channels = png.channels;
  let depth: number = png.depth;
  if (png.palette) {
    data = convertIndexedToRgb(png);
    channels = data.length / (width * height);
    depth = 8;
  }
  const shift = depth === 16 ? 8 : 0;
  const scale = depth < 8 ? 255 / ((1 << depth) - 1) : 1;
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    const at = i * channels;
    // Grey (+alpha) replicates one channel; alpha is dropped (composited on nothing, as torchvision's convert).
    const grey = channels < 3;
    for (let c = 0; c < 3; c++) {
      const v = data[at + (grey ? 0 : c)];
      rgb[i * 3 + c] = shift ? v >> shift : Math.round(v * scale);
    }
  }
  return { width, height, rgb };
}

function jpegToRgb(bytes: Uint8Array): RgbImage {
  let img;
  try {
    img = jpeg.decode(bytes, {
      useTArray: true,
      formatAsRGBA: false,
      maxResolutionInMP: MAX_IMAGE_PIXELS / 1e6,
      maxMemoryUsageInMB: 256,
    });
  } catch (e) {
    throw new ImageDecodeError(`bad JPEG: ${String((e as Error).message ?? e)}`);
  }
  return { width: img.width, height: img.height, rgb: img.data };
}

/** The ImageNet mean and std of each RGB channel, on [0, 1] (what the torchvision and PaddleOCR models expect). */
export const IMAGENET_MEAN = [0.485, 0.456, 0.406];
export const IMAGENET_STD = [0.229, 0.224, 0.225];

/** Bilinear sample of channel `c` of `img` at (x, y) in pixel coordinates, clamped to the image. */
export function sampleBilinear(img: RgbImage, x: number, y: number, c: number): number {
  const { width: w, height: h, rgb } = img;
  const cx = Math.min(Math.max(x, 0), w - 1), cy = Math.min(Math.max(y, 0), h - 1);
  const x0 = Math.floor(cx), y0 = Math.floor(cy);
  const x1 = Math.min(x0 + 1, w - 1), y1 = Math.min(y0 + 1, h - 1);
  const fx = cx - x0, fy = cy - y0;
  const at = (xx: number, yy: number) => rgb[3 * (yy * w + xx) + c];
  return (at(x0, y0) * (1 - fx) + at(x1, y0) * fx) * (1 - fy) + (at(x0, y1) * (1 - fx) + at(x1, y1) * fx) * fy;
}

/**
 * torchvision's ImageNet evaluation transform: resize the shorter side to `resize` (bilinear), centre-crop
 * `crop`×`crop`, scale to [0, 1], normalise by the ImageNet mean and std. Returns CHW float32.
 */
export function imagenetTensor(img: RgbImage, crop = 224, resize = 256): Float32Array {
  const { width: w, height: h } = img;
  const scale = Math.min(w, h) / resize; // source pixels per resized pixel
  const rw = Math.round(w / scale), rh = Math.round(h / scale);
  const x0 = Math.floor((rw - crop) / 2), y0 = Math.floor((rh - crop) / 2);
  const out = new Float32Array(3 * crop * crop);
  const plane = crop * crop;
  for (let y = 0; y < crop; y++) {
    // Pixel centres map to pixel centres (align_corners=false).
    const sy = (y + y0 + 0.5) * scale - 0.5;
    for (let x = 0; x < crop; x++) {
      const sx = (x + x0 + 0.5) * scale - 0.5;
      for (let c = 0; c < 3; c++) {
        const v = sampleBilinear(img, sx, sy, c) / 255;
        out[c * plane + y * crop + x] = (v - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
      }
    }
  }
  return out;
}

/** One entry of a top-k answer. */
export interface LabelScore {
  index: number;
  label: string;
  probability: number;
}

/** The `k` most likely classes of one row of logits, by softmax probability, most likely first. */
export function topK(logits: ArrayLike<number>, k = 5, labels: readonly string[] = IMAGENET_LABELS): LabelScore[] {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const order = Array.from({ length: logits.length }, (_, i) => i).sort((a, b) => logits[b] - logits[a]);
  return order.slice(0, k).map((index) => ({
    index,
    label: labels[index] ?? `class ${index}`,
    probability: Math.exp(logits[index] - max) / sum,
  }));
}

/** JSON body of an image classifier: one base64 PNG or JPEG, and how many labels to return. */
export const ImageRequest = z.object({
  image: z.base64().max(32 * 1024 * 1024, "image is larger than 24 MiB").describe("base64 PNG or JPEG"),
  top: z.number().int().min(1).max(1000).default(5),
}).strict();
export type ImageRequest = z.input<typeof ImageRequest>;

/** What an image classifier answers. */
export interface ImageAnswer {
  top: LabelScore[];
}

/** The warm-up body: an 8×8 mid-grey PNG (any valid image runs the whole preprocess and the model once). */
const EXAMPLE_PNG = encodeBase64(
  encodePng({ width: 8, height: 8, data: new Uint8Array(8 * 8 * 3).fill(128), channels: 3, depth: 8 }),
);

/**
 * An ImageNet classifier function over a zoo model with input `input` [N,3,224,224] and output `logits`
 * [N,1000]: JSON `{ image: base64 PNG/JPEG, top? }` → `{ top: [{ index, label, probability }] }`, and OIP
 * tensors at `/v2/models/<name>/infer`.
 */
export function imageClassifier(opts: {
  model: string;
  sloMs: number;
  description: string;
  maxBatch?: number;
}): DefinedFunction<z.output<typeof ImageRequest>, ImageAnswer> {
  return defineFunction({
    model: opts.model,
    sloMs: opts.sloMs,
    maxBatch: opts.maxBatch ?? 32,
    description: opts.description,
    input: ImageRequest as unknown as z.ZodType<z.output<typeof ImageRequest>>,
    example: { image: EXAMPLE_PNG, top: 5 },
    preprocess: ({ image }) => {
      const img = decodeImage(decodeBase64(image));
      return { input: tensor("float32", imagenetTensor(img), [1, 3, 224, 224]) };
    },
    postprocess: ({ logits }, { top }) => ({ top: topK(logits.data as Float32Array, top) }),
  });
}
