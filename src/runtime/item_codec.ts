/**
 * What a worker reads and writes for one request of a batch (pure): a JSON item's body parsed with the
 * controller's bounds, an answer encoded, tensors viewed out of and laid into a frame body.
 */
import { padTo8 } from "./framing.ts";
import { BadJsonBody, parseJsonBytes } from "./json_body.ts";
import type { ByteRange, WireTensor } from "./protocol.ts";
import type { Tensors } from "../functions/sdk.ts";
import { bytesElementsToStrings, elementCount, encodeBytesElements, TYPES } from "../functions/tensor.ts";

/** A failure that belongs to one request (bad input), not to the worker. */
export class ItemError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

const utf8Encoder = new TextEncoder();

/**
 * A JSON item's body, parsed here rather than on the controller's serving loop, with the same bounds and
 * messages as the controller's own JSON bodies (depth, number range).
 */
export function parseItemJson(body: Uint8Array, at: ByteRange): unknown {
  try {
    return parseJsonBytes(body.subarray(at.offset, at.offset + at.bytes));
  } catch (e) {
    if (e instanceof BadJsonBody) throw new ItemError(400, e.message);
    throw e;
  }
}

/** A function's answer as UTF-8 JSON; an answer JSON cannot carry is the function's error. */
export function encodeAnswer(value: unknown): Uint8Array {
  const text = JSON.stringify(value);
  if (text === undefined) throw new Error("postprocess returned a value JSON cannot carry (e.g. undefined)");
  return utf8Encoder.encode(text);
}

/** Tensors of a `tensors` item, as views into the frame body (valid while this batch runs). */
export function wireToTensors(inputs: WireTensor[], body: Uint8Array): Tensors {
  const out: Tensors = {};
  for (const w of inputs) {
    if (w.type === "string") {
      // The controller checked these bytes (element count, UTF-8) before queueing them.
      const elements = bytesElementsToStrings(body.subarray(w.offset, w.offset + w.bytes), elementCount(w.shape));
      out[w.name] = { type: "string", dims: w.shape, data: elements };
      continue;
    }
    const info = TYPES[w.type];
    const n = w.bytes / info.bytes;
    const abs = body.byteOffset + w.offset;
    // Typed-array views need aligned offsets; copy the rare misaligned tensor.
    out[w.name] = {
      type: w.type,
      dims: w.shape,
      data: abs % info.bytes === 0
        ? info.make(body.buffer as ArrayBuffer, abs, n)
        : info.make(body.slice(w.offset, w.offset + w.bytes).buffer, 0, n),
    };
  }
  return out;
}

/** Serialises output tensors into body parts (views, no copies) and their wire descriptors. */
export function tensorsToWire(
  ts: Tensors,
  parts: Uint8Array[],
  offset: { n: number },
  only?: Set<string>,
): WireTensor[] {
  const wires: WireTensor[] = [];
  for (const [name, t] of Object.entries(ts)) {
    if (only && !only.has(name)) continue;
    const bytes = t.type === "string"
      ? encodeBytesElements(t.data)
      : new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    // Keep every tensor 8-byte aligned in the body so the reader can view it without copying.
    offset.n = padTo8(parts, offset.n);
    wires.push({ name, type: t.type, shape: t.dims, offset: offset.n, bytes: bytes.byteLength });
    parts.push(bytes);
    offset.n += bytes.byteLength;
  }
  return wires;
}
