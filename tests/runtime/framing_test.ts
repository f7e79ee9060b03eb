import assert from "node:assert/strict";
import { FrameReader, FrameWriter, padTo8 } from "../../src/runtime/framing.ts";

/** A connected pair of Unix sockets in a temp dir. */
async function socketPair(): Promise<{ a: Deno.Conn; b: Deno.Conn; close(): Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "gpulet-frame-" });
  const listener = Deno.listen({ transport: "unix", path: `${dir}/s.sock` });
  const [a, b] = await Promise.all([listener.accept(), Deno.connect({ transport: "unix", path: `${dir}/s.sock` })]);
  listener.close();
  return {
    a,
    b,
    close: async () => {
      for (const c of [a, b]) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("frames: concurrent writes arrive whole and in order, bodies larger than the read buffer too", async () => {
  const { a, b, close } = await socketPair();
  try {
    const writer = new FrameWriter(a);
    const reader = new FrameReader(b, 64);
    const big = new Uint8Array(300_000).map((_, i) => i % 251);
    // Not awaited before reading: the big frame does not fit in the socket buffer.
    const written = Promise.all([
      writer.write({ n: 1 }),
      writer.write({ n: 2 }, [new Uint8Array([1, 2, 3]), new Uint8Array([4])]),
      writer.write({ n: 3, text: "ü".repeat(100) }, [big]),
    ]);
    const f1 = await reader.next<{ n: number }>();
    assert.equal(f1?.header.n, 1);
    assert.equal(f1?.body.byteLength, 0);
    const f2 = await reader.next<{ n: number }>();
    assert.deepEqual([...f2!.body], [1, 2, 3, 4]);
    const f3 = await reader.next<{ n: number; text: string }>();
    assert.equal(f3?.header.text, "ü".repeat(100));
    assert.deepEqual(f3?.body, big);
    await written;
    a.close();
    assert.equal(await reader.next(), null, "a clean close between frames is the end of the stream");
  } finally {
    await close();
  }
});

/** Encodes one frame as the writer does, so several can be sent in a single socket write. */
function encodeFrame(header: unknown, body: Uint8Array): Uint8Array {
  const h = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + h.byteLength + body.byteLength);
  const view = new DataView(out.buffer);
  view.setUint32(0, h.byteLength, true);
  view.setUint32(4, body.byteLength, true);
  out.set(h, 8);
  out.set(body, 8 + h.byteLength);
  return out;
}

Deno.test("frames: a held body is not overwritten by the frames read after it (two in one read)", async () => {
  const { a, b, close } = await socketPair();
  try {
    // Block of 256 bytes: frame 1 (~120 B) leaves too little room for frame 2 (~170 B), so reading frame 2
    // must not compact the block over frame 1's body, which the caller still holds.
    const reader = new FrameReader(b, 256);
    const first = new Uint8Array(100).fill(7);
    const second = new Uint8Array(150).fill(9);
    await a.write(new Uint8Array([...encodeFrame({ n: 1 }, first), ...encodeFrame({ n: 2 }, second)]));
    const f1 = await reader.next<{ n: number }>();
    const f2 = await reader.next<{ n: number }>();
    assert.equal(f2?.header.n, 2);
    assert.deepEqual(f2?.body, second);
    assert.deepEqual(f1?.body, first, "the first body changed while it was held");
    // Once released, the reader reuses the bytes again, and frames still arrive whole.
    f1!.release();
    f2!.release();
    for (let n = 3; n < 40; n++) {
      const body = new Uint8Array(40 + 7 * n).fill(n);
      await a.write(encodeFrame({ n }, body));
      const f = await reader.next<{ n: number }>();
      assert.equal(f?.header.n, n);
      assert.deepEqual(f?.body, body);
      f!.release();
    }
  } finally {
    await close();
  }
});

Deno.test("frames: a held body survives the reader rewinding its buffer for the next frame", async () => {
  const { a, b, close } = await socketPair();
  try {
    const reader = new FrameReader(b, 1024);
    await a.write(encodeFrame({ n: 1 }, new Uint8Array(64).fill(1)));
    const f1 = await reader.next();
    // Everything read was consumed, so the next read would start again at the front of the buffer.
    await a.write(encodeFrame({ n: 2 }, new Uint8Array(64).fill(2)));
    const f2 = await reader.next();
    assert.deepEqual([...new Set(f1!.body)], [1], "the first body changed while it was held");
    assert.deepEqual([...new Set(f2!.body)], [2]);
    // Many frames held at once (batches answered out of order), then released in any order.
    const held = [];
    for (let n = 3; n < 60; n++) {
      await a.write(encodeFrame({ n }, new Uint8Array(200).fill(n)));
      held.push(await reader.next<{ n: number }>());
    }
    for (const f of held) assert.deepEqual([...new Set(f!.body)], [f!.header.n]);
    for (const f of held.reverse()) f!.release();
  } finally {
    await close();
  }
});

Deno.test("frames: a frame larger than the block while a body is held; releases are idempotent", async () => {
  const { a, b, close } = await socketPair();
  try {
    const reader = new FrameReader(b, 128);
    const small = new Uint8Array(40).fill(3);
    const big = new Uint8Array(5_000).map((_, i) => i % 253);
    const after = new Uint8Array(60).fill(4);
    const written = a.write(
      new Uint8Array([
        ...encodeFrame({ n: 1 }, small),
        ...encodeFrame({ n: 2 }, big),
        ...encodeFrame({ n: 3 }, after),
      ]),
    );
    const f1 = await reader.next();
    const f2 = await reader.next(); // grows into a new block while f1's is lent
    const f3 = await reader.next();
    await written;
    assert.deepEqual(f1?.body, small);
    assert.deepEqual(f2?.body, big);
    assert.deepEqual(f3?.body, after);
    // Released twice, in any order: the blocks come back once, and later frames are still whole.
    for (const f of [f2, f1, f2, f3, f1]) f!.release();
    for (let n = 4; n < 30; n++) {
      const body = new Uint8Array(n * 150).fill(n);
      await a.write(encodeFrame({ n }, body));
      const f = await reader.next<{ n: number }>();
      assert.deepEqual(f?.body, body, `frame ${n}`);
      if (n % 3) f!.release(); // some held for good
    }
  } finally {
    await close();
  }
});

Deno.test("frames: a connection closed in the middle of a frame is an error, not a short frame", async () => {
  const { a, b, close } = await socketPair();
  try {
    const prefix = new Uint8Array(8);
    new DataView(prefix.buffer).setUint32(0, 10, true);
    await a.write(prefix);
    await a.write(new TextEncoder().encode('{"n"'));
    a.close();
    await assert.rejects(new FrameReader(b).next(), /closed in the middle of a frame/);
  } finally {
    await close();
  }
});

Deno.test("padTo8 pads a body so the next tensor starts 8-byte aligned", () => {
  const parts: Uint8Array[] = [];
  assert.equal(padTo8(parts, 16), 16);
  assert.equal(parts.length, 0);
  assert.equal(padTo8(parts, 13), 16);
  assert.equal(parts[0].byteLength, 3);
});
