/**
 * Async invocations over HTTP: `POST /async-functions/{name}/invoke` answers 202 with the call's id at once
 * (`X-Call-Id`, `Location`); `GET /async-functions/{name}/results/{id}` answers 202 while it waits or runs
 * and 200 with its outcome when it is done; an `X-Callback-Url` gets the output posted to it. An
 * `Idempotency-Key` makes a retried submit the same call.
 */
import type { Context, Hono } from "hono";
import type { Controller } from "../controller/controller.ts";
import {
  type AsyncCall,
  type AsyncCalls,
  AsyncRefused,
  CallbackUrl,
  CallId,
  IdempotencyKey,
} from "../async/call_runner.ts";
import { checkedName, HttpError, liveFunction } from "./data_plane.ts";
import { describeZodError } from "../functions/manifest.ts";
import type { z } from "zod";

/** A header checked against `schema` (400 naming what is wrong); undefined when absent. */
function header<T>(c: Context, name: string, schema: z.ZodType<T>): T | undefined {
  const value = c.req.header(name);
  if (value === undefined) return undefined;
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new HttpError(400, describeZodError(parsed.error));
  return parsed.data;
}

/** What `GET …/results/{id}` and the 202 of a submit answer: the record, and the output once there is one. */
async function view(calls: AsyncCalls, call: AsyncCall) {
  const out = call.status === "succeeded" ? await calls.output(call.id) : undefined;
  return {
    ...call,
    result: `/async-functions/${call.function}/results/${call.id}`,
    ...(out ? { output: JSON.parse(new TextDecoder().decode(out)) } : {}),
  };
}

/** Adds the async routes; `readBody` reads and checks an invoke body as `POST /functions/{name}/invoke` does. */
export function registerAsync(
  app: Hono,
  controller: Controller,
  callsNow: () => AsyncCalls | undefined,
  readBody: (c: Context) => Promise<Uint8Array>,
): void {
  const store = (): AsyncCalls => {
    const calls = callsNow();
    if (!calls) throw new HttpError(503, "async calls are not available yet (the server is starting)");
    return calls;
  };
  /** The function (or app) a path names, as a sync invoke would find it (404 when unknown). */
  const target = (c: Context): string => {
    const name = checkedName(c.req.param("name")!);
    if (controller.getApp(name)) return name;
    const dep = liveFunction(controller, name);
    if (!dep.record.manifest.json) {
      throw new HttpError(400, `function "${dep.name}" takes tensors only: async calls take JSON`);
    }
    return name;
  };

  app.post("/async-functions/:name/invoke", async (c) => {
    const fn = target(c);
    const callbackUrl = header(c, "x-callback-url", CallbackUrl);
    const idempotencyKey = header(c, "idempotency-key", IdempotencyKey);
    const body = await readBody(c);
    let call: AsyncCall;
    try {
      call = await store().submit(fn, body, { callbackUrl, idempotencyKey });
    } catch (e) {
      if (!(e instanceof AsyncRefused)) throw e;
      throw new HttpError(e.status, e.message, e.retryAfterS ? { "retry-after": String(e.retryAfterS) } : {});
    }
    const v = await view(store(), call);
    return c.json(v, 202, { "x-call-id": call.id, location: v.result });
  });

  app.get("/async-functions/:name/results/:id", async (c) => {
    const name = checkedName(c.req.param("name")!);
    const id = CallId.safeParse(c.req.param("id"));
    if (!id.success) throw new HttpError(400, `"${c.req.param("id")}" is not a call id (a UUID)`);
    const calls = store();
    const call = await calls.get(name, id.data);
    if (!call) throw new HttpError(404, `no async call ${id.data} of "${name}"`);
    const done = call.status === "succeeded" || call.status === "failed";
    return c.json(await view(calls, call), done ? 200 : 202, { "x-call-id": call.id });
  });
}
