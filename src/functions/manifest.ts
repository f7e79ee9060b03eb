/**
 * The deploy-time manifest of a function and the names and paths allowed in it. Validated with zod on the
 * client (`deno task deploy`), again by the controller, and once more against what the worker loads.
 */
import { z } from "zod";

/** The rule for function names, as error messages state it. */
export const FUNCTION_NAME_RULE = "a function name is 1-63 characters of a-z, 0-9, '_' or '-', starting with a letter";

/** Function names: lower-case, start with a letter, at most 63 characters; safe in URLs, paths and labels. */
export const FunctionName = z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/, FUNCTION_NAME_RULE);

/** A relative file path inside a function folder: plain segments, no `..`, no absolute paths. */
export const BundlePath = z.string().max(200).refine(
  (p) => p.split("/").every((s) => /^[A-Za-z0-9_][A-Za-z0-9._-]*$/.test(s) && s !== ".." && s !== "."),
  "a bundle path is relative, made of segments of letters, digits, '.', '_' or '-', without '..'",
);

/** A model reference: a zoo model name or a `.onnx` file inside the function folder. */
export const ModelRef = z.union([
  z.string().regex(/^[a-z][a-z0-9_]{0,62}$/, "a zoo model name"),
  BundlePath.refine((p) => p.endsWith(".onnx"), "a model path inside the function folder ends in .onnx"),
]);

/** What the controller needs to know about a function before running any of its code. */
export const Manifest = z.object({
  name: FunctionName,
  model: ModelRef,
  sloMs: z.number().positive().max(600_000),
  maxBatch: z.number().int().min(1).max(1024).default(32),
  description: z.string().max(500).optional(),
  /** True when the function has a JSON interface (`input` schema, with pre/post-processing). */
  json: z.boolean(),
}).strict();
export type Manifest = z.infer<typeof Manifest>;

/** One stage of an app, as deployed: its function, the stages it waits for, its expected fan-out. */
export const AppStageManifest = z.object({
  name: z.string().regex(/^[a-z][a-z0-9_]{0,62}$/, "a stage name"),
  function: FunctionName,
  after: z.array(z.string()).max(64).default([]),
  fanOut: z.number().positive().max(1000).default(1),
}).strict();
export type AppStageManifest = z.infer<typeof AppStageManifest>;

const TensorName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, "a tensor name");

/** An app's tensor interface (`AppTensors` in the SDK): BYTES inputs and outputs of one element each. */
export const AppTensorsManifest = z.object({
  inputs: z.record(TensorName, z.enum(["base64", "text"])),
  outputs: z.record(TensorName, z.enum(["text", "json"])),
}).strict();
export type AppTensorsManifest = z.infer<typeof AppTensorsManifest>;

/** What the controller needs to know about an app before running any of its code. */
export const AppManifest = z.object({
  kind: z.literal("app"),
  name: FunctionName,
  sloMs: z.number().positive().max(600_000),
  description: z.string().max(500).optional(),
  stages: z.array(AppStageManifest).min(1).max(64)
    .refine((ss) => new Set(ss.map((s) => s.name)).size === ss.length, "stage names must be unique")
    .refine(
      (ss) => ss.every((s) => s.after.every((a) => ss.some((o) => o.name === a))),
      "a stage waits only for stages of the app",
    ),
  tensors: AppTensorsManifest.optional(),
}).strict();
export type AppManifest = z.infer<typeof AppManifest>;

/** True if the model reference is a file inside the function folder rather than a zoo name. */
export function isBundledModel(model: string): boolean {
  return model.endsWith(".onnx");
}

/** Turns a zod error into one line that says what is wrong and where. */
export function describeZodError(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.join(".") : "(body)"}: ${i.message}`).join("; ");
}
