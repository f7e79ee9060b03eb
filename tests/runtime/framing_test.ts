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
