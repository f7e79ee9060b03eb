/**
 * A batch of queued requests as one frame for its gpu-let (pure): each request's JSON body or tensor bytes
 * laid end to end, each starting on an 8-byte boundary, and the run items that say where.
 */
import { padTo8 } from "../runtime/framing.ts";
import type { RunItem, WireTensor } from "../runtime/protocol.ts";
import type { Pending } from "./request.ts";

/** A framed batch: what the gpu-let is sent, and its rows. */
export interface FramedBatch {
  items: RunItem[];
  body: Uint8Array[];
  rows: number;
}

/** Frames `batch`; item `id` is the request's index in it. */
export function frameBatch(batch: readonly Pending[]): FramedBatch {
  const items: RunItem[] = [];
  const body: Uint8Array[] = [];
  let offset = 0, rows = 0;
  batch.forEach((p, id) => {
    rows += p.rows;
    if (p.payload.kind === "json") {
      body.push(p.payload.body);
      items.push({ id, kind: "json", body: { offset, bytes: p.payload.body.byteLength } });
      offset = padTo8(body, offset + p.payload.body.byteLength);
      return;
    }
    const base = offset;
    const inputs: WireTensor[] = p.payload.inputs.map((t) => ({ ...t, offset: t.offset + base }));
    for (const b of p.payload.bytes) {
      body.push(b);
      offset += b.byteLength;
    }
    offset = padTo8(body, offset);
    items.push({ id, kind: "tensors", inputs });
  });
  return { items, body, rows };
}
