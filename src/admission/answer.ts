/** One request's answer from its gpu-let's batch result. Pure. */
import type { ItemResult } from "../runtime/protocol.ts";
import type { Answer, OutputTensor, Timing } from "./request.ts";

/**
 * The answer to one request of a batch: its error, or its JSON or tensors copied out of `body` (the gpu-let
 * connection's buffer, lent only until the batch is answered), every range checked against the body.
 */
export function answerOf(r: ItemResult, body: Uint8Array, timing: Timing): Answer {
  if (!r.ok) return { status: r.status, error: r.error, timing };
  const ranges = "json" in r ? [r.json] : r.outputs;
  if (ranges.some((x) => x.offset < 0 || x.offset + x.bytes > body.byteLength)) {
    return { status: 500, error: "the gpu-let answered with bytes outside its result", timing };
  }
  if ("json" in r) return { status: 200, json: body.slice(r.json.offset, r.json.offset + r.json.bytes), timing };
  const outputs: OutputTensor[] = r.outputs.map((t) => ({
    name: t.name,
    type: t.type,
    shape: t.shape,
    data: body.slice(t.offset, t.offset + t.bytes),
  }));
  return { status: 200, outputs, timing };
}
