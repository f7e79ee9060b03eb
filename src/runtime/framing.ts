/**
 * Length-prefixed frames over a stream socket: `[u32 header bytes][u32 body bytes][header JSON][body]`.
 * The header is a small JSON object; the body carries tensor bytes.
 *
 * Reads go into a reusable block (fresh large buffers are slow on this machine kind: first-touch page
 * faults), and each frame's body is a view into it, lent to the caller until `release()`. The reader never
 * writes over a lent body: appending after it is safe, and where it would compact or rewind the block it
 * moves to another block instead, leaving the old one to its borrowers (it is reused once they have all
 * released it). A body that is never released is never overwritten: forgetting `release()` costs memory,
 * not correctness.
 */

/** One received frame. `body` stays valid and unchanged until `release()` (for good without it). */
export interface Frame<H = Record<string, unknown>> {
  header: H;
  body: Uint8Array;
  /** Gives the body's bytes back to the reader for reuse; the body must not be read after this. */
  release(): void;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A read buffer, and how many frame bodies in it are lent out. */
interface Block {
  bytes: Uint8Array;
  lent: number;
}

/** Reads frames from a connection into growable, reused blocks. */
export class FrameReader {
  private block: Block;
  /** A block whose bodies were all released after the reader had moved on: the next one to reuse. */
  private spare?: Block;
  private start = 0;
  private end = 0;

  constructor(private readonly conn: Deno.Conn, private readonly initialBytes = 1 << 20) {
    this.block = { bytes: new Uint8Array(initialBytes), lent: 0 };
  }

  /** A block of at least `n` bytes with nothing lent: the spare when it is large enough, else a new one. */
  private freeBlock(n: number): Block {
    const spare = this.spare;
    this.spare = undefined;
    if (spare && spare.bytes.length >= n) return spare;
    return { bytes: new Uint8Array(Math.max(n, this.block.bytes.length)), lent: 0 };
  }

  /** Ensures `n` unread bytes are buffered; false on a clean end of stream before any of them. */
  private async fill(n: number): Promise<boolean> {
    if (this.end - this.start >= n) return true;
    const cur = this.block;
    if (this.start === this.end && cur.lent === 0) this.start = this.end = 0; // rewind: nothing to keep
    if (cur.bytes.length - this.start < n) {
      // No room after `start`: move the pending bytes to the front of a block that holds `n` bytes. The
      // current block is reused in place only when none of its bodies is lent (and it is large enough).
      const target = cur.lent === 0 && cur.bytes.length >= n ? cur : this.freeBlock(n);
      target.bytes.set(cur.bytes.subarray(this.start, this.end), 0); // `set` copes with the overlap
      this.block = target;
      this.end -= this.start;
      this.start = 0;
    }
    const buf = this.block.bytes;
    while (this.end - this.start < n) {
      const k = await this.conn.read(buf.subarray(this.end));
      if (k === null) {
        if (this.end === this.start) return false;
        throw new Error("connection closed in the middle of a frame");
      }
      this.end += k;
    }
    return true;
  }

  /** The next frame, or null when the peer closed the connection between frames. */
  async next<H = Record<string, unknown>>(): Promise<Frame<H> | null> {
    if (!(await this.fill(8))) return null;
    let buf = this.block.bytes;
    const view = new DataView(buf.buffer, buf.byteOffset + this.start, 8);
    const headerLen = view.getUint32(0, true);
    const bodyLen = view.getUint32(4, true);
    this.start += 8;
    if (!(await this.fill(headerLen + bodyLen))) throw new Error("connection closed in the middle of a frame");
    buf = this.block.bytes;
    const header = JSON.parse(decoder.decode(buf.subarray(this.start, this.start + headerLen))) as H;
    const bodyStart = this.start + headerLen;
    const body = buf.subarray(bodyStart, bodyStart + bodyLen);
    this.start = bodyStart + bodyLen;
    return { header, body, release: bodyLen === 0 ? () => {} : this.lend(this.block) };
  }

  /** Marks one body of `block` as lent; returns its (idempotent) release. */
  private lend(block: Block): () => void {
    block.lent++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      block.lent--;
      // A block the reader has moved on from becomes the spare once nothing in it is lent (the larger wins).
      if (block.lent === 0 && block !== this.block && block.bytes.length >= (this.spare?.bytes.length ?? 0)) {
        this.spare = block;
      }
    };
  }
}

/** Writes frames; concurrent callers are serialised so frames never interleave. */
export class FrameWriter {
  private tail: Promise<void> = Promise.resolve();
  /** Where small pieces of a frame are gathered into one write. */
  private readonly gather = new Uint8Array(64 * 1024);

  constructor(private readonly conn: Deno.Conn) {}

  /**
   * Sends a frame whose body is the concatenation of `parts`; they must stay unchanged until the returned
   * promise settles (large parts are written in place).
   */
  write(header: unknown, parts: readonly Uint8Array[] = []): Promise<void> {
    const next = this.tail.then(() => this.writeNow(header, parts));
    this.tail = next.catch(() => {});
    return next;
  }

  private async writeNow(header: unknown, parts: readonly Uint8Array[]): Promise<void> {
    const headerBytes = encoder.encode(JSON.stringify(header));
    const bodyLen = parts.reduce((n, p) => n + p.byteLength, 0);
    // Small pieces are gathered into one write through a reused buffer (each write is a trip through the
    // runtime, and a batch of 32 JSON requests has 64 pieces); large ones are written in place, not copied.
    // Frames are written one at a time, so the buffer is free again by the next frame.
    const gather = this.gather;
    let filled = 8;
    new DataView(gather.buffer).setUint32(0, headerBytes.byteLength, true);
    new DataView(gather.buffer).setUint32(4, bodyLen, true);
    for (const p of [headerBytes, ...parts]) {
      if (filled + p.byteLength > gather.byteLength) {
        if (filled > 0) await writeAll(this.conn, gather.subarray(0, filled));
        filled = 0;
        if (p.byteLength > gather.byteLength / 2) {
          await writeAll(this.conn, p);
          continue;
        }
      }
      gather.set(p, filled);
      filled += p.byteLength;
    }
    if (filled > 0) await writeAll(this.conn, gather.subarray(0, filled));
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.byteLength) off += await conn.write(bytes.subarray(off));
}

/**
 * Pads a frame body being built from `parts` so the next tensor starts 8-byte aligned (the reader can then
 * view it as any typed array without copying). Returns the new body length.
 */
export function padTo8(parts: Uint8Array[], length: number): number {
  const pad = (8 - (length % 8)) % 8;
  if (pad) parts.push(new Uint8Array(pad));
  return length + pad;
}
