/**
 * The application SDK: what `functions/<app>/function.ts` default-exports to compose deployed functions into
 * one application with one end-to-end SLO (`defineApp`, imported from `"gpulet"`).
 *
 * An app declares its graph (stages, each a deployed function; `after` edges; the expected fan-out) so the
 * planner can split the SLO over the stages before any request arrives, and gives `run`: plain code that
 * calls its stages through `ctx.call(stage, body)`, as often as the request needs (the fan-out known only at
 * run time). Calls go through the stage function's own admission and batching, mixed with direct callers.
 * App code runs sandboxed in an app process of its own, never in the controller.
 */
import type { z } from "zod";

/** One stage of an app: a deployed function, the stages it waits for, and its expected fan-out. */
export interface AppStageDefinition {
  /** The function this stage calls (deployed on its own; `deno task deploy` deploys `../<function>` too). */
  function: string;
  /** Stages whose answers this one needs (default: none, it starts with the request). */
  after?: string[];
  /** Calls of this stage per app request expected before any is measured (default 1; then an EWMA). */
  fanOut?: number;
}

/** What app code gets to call its stages with. */
export interface AppContext {
  /**
   * Calls a stage with a JSON body for its function; resolves with the function's JSON answer. Rejects with
   * a {@link StageError} when the stage fails or runs out of budget: the app request then fails as a whole
   * (the platform answers it with that error, whatever the app code does next).
   */
  call<T = unknown>(stage: string, body: unknown): Promise<T>;
  /** Milliseconds left of this request's end-to-end SLO. */
  remainingMs(): number;
}

/**
 * An app's Open Inference Protocol face, for clients that speak tensors (`/v2/models/{app}/infer`, gRPC
 * ModelInfer): each input is a BYTES tensor of one element that becomes a field of the JSON body (`base64`:
 * its bytes in base64, e.g. an image; `text`: its UTF-8 text), and each output a BYTES tensor of one element
 * made from the answer's field of that name (`text`: a string as it is; `json`: any value as JSON text).
 */
export interface AppTensors {
  inputs: Record<string, "base64" | "text">;
  outputs: Record<string, "text" | "json">;
}

/** What `defineApp` takes. `I` is the parsed request body, `O` the JSON answer. */
export interface AppDefinition<I = unknown, O = unknown> {
  /** End-to-end latency objective in ms, split over the stages by the planner. */
  sloMs: number;
  description?: string;
  /** Schema of the JSON body of `POST /functions/{app}/invoke`. */
  input: z.ZodType<I>;
  /** The stages by name. */
  stages: Record<string, AppStageDefinition>;
  /** Answers one request, calling stages through `ctx`. */
  run: (input: I, ctx: AppContext) => O | Promise<O>;
  /** Its tensor interface, when it has one (see {@link AppTensors}). */
  tensors?: AppTensors;
}

/** A stage call that failed: its HTTP status and why. */
export class StageError extends Error {
  constructor(readonly stage: string, readonly status: number, message: string) {
    super(message);
    this.name = "StageError";
  }
}

/** Thrown by app code for a request it cannot serve as sent: answered 400 with its message. */
export class AppInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AppInputError";
  }
}

/** Brand that marks a definition made by {@link defineApp}. */
export const APP_BRAND: unique symbol = Symbol.for("gpulet.app");

/** A definition checked by {@link defineApp}. */
export type DefinedApp<I = unknown, O = unknown> = AppDefinition<I, O> & { [APP_BRAND]: true };

const STAGE_NAME = /^[a-z][a-z0-9_]{0,62}$/;
const FUNCTION_NAME = /^[a-z][a-z0-9_-]{0,62}$/;

/** Stage names in levels: each stage one level after the last of the stages it waits for. Throws on a cycle. */
export function stageLevels(stages: Record<string, { after?: string[] }>): string[][] {
  const level = new Map<string, number>();
  const visiting = new Set<string>();
  const visit = (name: string): number => {
    const known = level.get(name);
    if (known !== undefined) return known;
    if (visiting.has(name)) throw new TypeError(`defineApp: stages wait for each other in a cycle (at ${name})`);
    visiting.add(name);
    const after = stages[name].after ?? [];
    const l = after.length ? 1 + Math.max(...after.map(visit)) : 0;
    visiting.delete(name);
    level.set(name, l);
    return l;
  };
  const names = Object.keys(stages);
  for (const n of names) visit(n);
  const out: string[][] = [];
  for (const n of names) (out[level.get(n)!] ??= []).push(n);
  return out;
}

/** Declares an application. Checks its graph: names, edges, fan-outs, no cycles. */
export function defineApp<I, O>(def: AppDefinition<I, O>): DefinedApp<I, O> {
  if (!(typeof def.sloMs === "number" && def.sloMs > 0)) throw new TypeError("defineApp: sloMs must be > 0");
  if (!def.input) throw new TypeError("defineApp: input (a zod schema of the request body) is required");
  if (typeof def.run !== "function") throw new TypeError("defineApp: run(input, ctx) is required");
  const names = Object.keys(def.stages ?? {});
  if (names.length === 0) throw new TypeError("defineApp: at least one stage is required");
  for (const [name, s] of Object.entries(def.stages)) {
    if (!STAGE_NAME.test(name)) throw new TypeError(`defineApp: stage name "${name}" must match ${STAGE_NAME}`);
    if (!FUNCTION_NAME.test(s.function ?? "")) {
      throw new TypeError(`defineApp: stage ${name} needs the name of a function (got ${JSON.stringify(s.function)})`);
    }
    for (const a of s.after ?? []) {
      if (!(a in def.stages)) throw new TypeError(`defineApp: stage ${name} waits for unknown stage "${a}"`);
    }
    if (s.fanOut !== undefined && !(s.fanOut > 0 && s.fanOut <= 1000)) {
      throw new TypeError(`defineApp: stage ${name}: fanOut must be in (0, 1000]`);
    }
  }
  stageLevels(def.stages);
  if (def.tensors) checkTensors(def.tensors);
  return { ...def, [APP_BRAND]: true };
}

const TENSOR_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

function checkTensors(t: AppTensors): void {
  const check = (side: "inputs" | "outputs", kinds: string[]) => {
    const entries = Object.entries(t[side] ?? {});
    if (entries.length === 0) throw new TypeError(`defineApp: tensors.${side} needs at least one tensor`);
    for (const [name, kind] of entries) {
      if (!TENSOR_NAME.test(name)) throw new TypeError(`defineApp: tensor name "${name}" must match ${TENSOR_NAME}`);
      if (!kinds.includes(kind)) {
        throw new TypeError(`defineApp: tensors.${side}.${name} must be one of ${kinds.join(", ")}`);
      }
    }
  };
  check("inputs", ["base64", "text"]);
  check("outputs", ["text", "json"]);
}

/** True if `x` is a definition made by {@link defineApp}. */
export function isDefinedApp(x: unknown): x is DefinedApp {
  return typeof x === "object" && x !== null && (x as Record<symbol, unknown>)[APP_BRAND] === true;
}
