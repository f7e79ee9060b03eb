/** A batch as one frame for its gpu-let (`src/admission/batch_frame.ts`). */
import assert from "node:assert/strict";
import { frameBatch } from "../../src/admission/batch_frame.ts";
import type { Payload, Pending } from "../../src/admission/request.ts";
import { concatBytes } from "../../src/runtime/bytes.ts";

const pending = (payload: Payload, rows: number): Pending => ({
  payload,
  rows,
  arrivedAt: 0,
  deadline: 10,
  resolve: () => {},
});

Deno.test("batch frame: each request's bytes start on an 8-byte boundary and the items point at them", () => {
  const json = new TextEncoder().encode('{"a":1}'); // 7 bytes
  const x = new Uint8Array(12).fill(7), y = new Uint8Array(4).fill(9);
  const tensors: Payload = {
    kind: "tensors",
    inputs: [
      { name: "x", type: "float32", shape: [3], offset: 0, bytes: 12 },
      { name: "y", type: "float32", shape: [1], offset: 12, bytes: 4 },
    ],
    bytes: [x, y],
  };
  const { items, body, rows } = frameBatch([pending({ kind: "json", body: json }, 1), pending(tensors, 3)]);
  assert.equal(rows, 4);
  const frame = concatBytes(body);
  assert.equal(frame.byteLength % 8, 0);
  assert.deepEqual(items[0], { id: 0, kind: "json", body: { offset: 0, bytes: 7 } });
  assert.ok(items[1].kind === "tensors");
  const [tx, ty] = items[1].inputs;
  assert.equal(tx.offset, 8); // after the JSON, padded to 8
  assert.deepEqual(frame.slice(tx.offset, tx.offset + tx.bytes), x);
  assert.deepEqual(frame.slice(ty.offset, ty.offset + ty.bytes), y);
  assert.deepEqual(new TextDecoder().decode(frame.slice(0, 7)), '{"a":1}');
});
