/**
 * The app process: runs one application's code (`defineApp`), sandboxed like a function's (read of its own
 * folder and its socket; write and net only to that socket; no ffi, env, run or other net). It holds no
 * model: its requests run side by side, each calling its stages through the controller (`call` frames),
 * which submits them to the stage functions' own admission and batching.
 */
// Preloaded so app code can import them without read access to the project (as for functions).
import "zod";
import { ImageDecodeError } from "../functions/vision.ts";
import "../functions/ocr.ts";
import "../functions/sdk.ts";
import { type AppContext, AppInputError, type DefinedApp, isDefinedApp, StageError } from "../functions/app.ts";
import { describeZodError } from "../functions/manifest.ts";
import { FrameReader, FrameWriter } from "./framing.ts";
import { parseJsonBytes } from "./json_body.ts";
import { encodeAnswer } from "./item_codec.ts";
import type {
  AnswerMessage,
  AppConfig,
  AppFatalMessage,
  ControllerToApp,
  InvokeMessage,
  ReplyMessage,
} from "./app_protocol.ts";

/** Exit code of a process whose app failed to load (the controller reads the `fatal` message). */
const EXIT_FATAL = 3;

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Checks the imported definition against the manifest the controller deployed. */
function validate(def: unknown, config: AppConfig): DefinedApp {
  if (!isDefinedApp(def)) throw new Error("function.ts must default-export defineApp({...})");
  const m = config.manifest;
  const same = def.sloMs === m.sloMs && Object.keys(def.stages).length === m.stages.length &&
    m.stages.every((s) => def.stages[s.name]?.function === s.function);
  if (!same) throw new Error("function.ts does not match the deployed manifest (sloMs, stages)");
  return def;
}

async function main(): Promise<void> {
  const config = JSON.parse(Deno.args[0]) as AppConfig;
  const conn = await Deno.connect({ transport: "unix", path: config.socket });
  const writer = new FrameWriter(conn);
  const reader = new FrameReader(conn);
  let def: DefinedApp;
  let stage: AppFatalMessage["stage"] = "import";
  try {
    const mod = await import(`file://${config.appFile}`);
    stage = "validate";
    def = validate(mod.default, config);
  } catch (e) {
    const fatal: AppFatalMessage = { type: "fatal", stage, error: describe(e) };
    await writer.write(fatal).catch(() => {});
    conn.close();
    Deno.exit(EXIT_FATAL);
  }
  await writer.write({ type: "ready", pid: Deno.pid });

  const calls = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; stage: string }>();
  let nextCall = 1;
  const running = new Set<Promise<void>>();

  const answer = (msg: AnswerMessage, body?: Uint8Array) => writer.write(msg, body ? [body] : []).catch(() => {});

  const handle = async (msg: InvokeMessage, body: Uint8Array): Promise<void> => {
    const started = performance.now();
    let input: unknown;
    try {
      input = parseJsonBytes(body);
    } catch (e) {
      return answer({ type: "answer", req: msg.req, ok: false, status: 400, error: describe(e) });
    }
    const parsed = def.input.safeParse(input);
    if (!parsed.success) {
      const error = `invalid input: ${describeZodError(parsed.error)}`;
      return answer({ type: "answer", req: msg.req, ok: false, status: 400, error });
    }
    const ctx: AppContext = {
      call: <T>(stageName: string, callBody: unknown): Promise<T> => {
        if (!Object.hasOwn(def.stages, stageName)) {
          return Promise.reject(new StageError(stageName, 500, `the app has no stage "${stageName}"`));
        }
        let bytes: Uint8Array;
        try {
          bytes = encodeAnswer(callBody);
        } catch (e) {
          return Promise.reject(new StageError(stageName, 500, `stage ${stageName}: ${describe(e)}`));
        }
        const call = nextCall++;
        return new Promise<T>((resolve, reject) => {
          calls.set(call, { resolve: resolve as (v: unknown) => void, reject, stage: stageName });
          writer.write({ type: "call", req: msg.req, call, stage: stageName }, [bytes]).catch((e) => {
            calls.delete(call);
            reject(new StageError(stageName, 503, `the controller went away: ${describe(e)}`));
          });
        });
      },
      remainingMs: () => msg.budgetMs - (performance.now() - started),
    };
    try {
      const out = await def.run(parsed.data, ctx);
      await answer({ type: "answer", req: msg.req, ok: true }, encodeAnswer(out));
    } catch (e) {
      const badInput = e instanceof AppInputError || e instanceof ImageDecodeError;
      const status = e instanceof StageError ? e.status : badInput ? 400 : 500;
      const error = e instanceof StageError || badInput ? describe(e) : `the app's code failed: ${describe(e)}`;
      await answer({ type: "answer", req: msg.req, ok: false, status, error });
    }
  };

  const settle = (msg: ReplyMessage, body: Uint8Array) => {
    const c = calls.get(msg.call);
    if (!c) return;
    calls.delete(msg.call);
    if (!msg.ok) return c.reject(new StageError(c.stage, msg.status, msg.error));
    try {
      c.resolve(parseJsonBytes(body));
    } catch (e) {
      c.reject(new StageError(c.stage, 502, `stage ${c.stage} answered bad JSON: ${describe(e)}`));
    }
  };

  for (;;) {
    const frame = await reader.next<ControllerToApp>();
    if (!frame || frame.header.type === "stop") break;
    // Requests run side by side, beyond this frame's life: each keeps its own copy of its bytes.
    const body = frame.body.slice();
    frame.release();
    const msg = frame.header;
    if (msg.type === "reply") settle(msg, body);
    else if (msg.type === "invoke") {
      const p = handle(msg, body).catch((e) => console.error(`gpulet app: ${describe(e)}`));
      running.add(p);
      p.finally(() => running.delete(p));
    }
  }
  // Stopping (the controller stops an app once its requests are answered) or the controller went away: no
  // reply can come any more.
  for (const c of calls.values()) c.reject(new StageError(c.stage, 503, "the app is stopping"));
  await Promise.all(running);
  conn.close();
  Deno.exit(0);
}

if (import.meta.main) {
  main().catch((e) => {
    console.error(`gpulet app: ${describe(e)}`);
    Deno.exit(1);
  });
}
