/**
 * Length-prefixed frames over a stream socket: `[u32 header bytes][u32 body bytes][header JSON][body]`.
 * The header is a small JSON object; the body carries tensor bytes. Reads go into one reusable buffer
 * (fresh large buffers are slow on this machine kind), so a frame's body is only valid until the next read.
 */

/** One received frame. `body` is a view into the reader's buffer, valid until the next `next()`. */
export interface Frame<H = Record<string, unknown>> {
  header: H;
  body: Uint8Array;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Reads frames from a connection into a growable, reused buffer. */
export class FrameReader {
  private buf: Uint8Array;
  private start = 0;
  private end = 0;

  constructor(private readonly conn: Deno.Conn, initialBytes = 1 << 20) {
    this.buf = new Uint8Array(initialBytes);
  }

  /** Ensures `n` unread bytes are buffered; false on a clean end of stream before any of them. */
  private async fill(n: number): Promise<boolean> {
    if (this.end - this.start >= n) return true;
    if (this.buf.length - this.start < n) {
      // Compact, and grow if the frame is larger than the buffer (the larger buffer is kept).
      const pending = this.buf.subarray(this.start, this.end);
      const target = this.buf.length >= n ? this.buf : new Uint8Array(Math.max(n, this.buf.length * 2));
      target.set(pending, 0);
      this.buf = target;
      this.end -= this.start;
      this.start = 0;
    }
    while (this.end - this.start < n) {
      const k = await this.conn.read(this.buf.subarray(this.end));
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
    const view = new DataView(this.buf.buffer, this.buf.byteOffset + this.start, 8);
    const headerLen = view.getUint32(0, true);
    const bodyLen = view.getUint32(4, true);
    this.start += 8;
    if (!(await this.fill(headerLen + bodyLen))) throw new Error("connection closed in the middle of a frame");
    const header = JSON.parse(decoder.decode(this.buf.subarray(this.start, this.start + headerLen))) as H;
    const bodyStart = this.start + headerLen;
    const body = this.buf.subarray(bodyStart, bodyStart + bodyLen);
    this.start = bodyStart + bodyLen;
    if (this.start === this.end) this.start = this.end = 0;
    return { header, body };
  }
}

/** Writes frames; concurrent callers are serialised so frames never interleave. */
export class FrameWriter {
  private tail: Promise<void> = Promise.resolve();

  constructor(private readonly conn: Deno.Conn) {}

  /** Sends a frame whose body is the concatenation of `parts` (written in place, not copied). */
  write(header: unknown, parts: readonly Uint8Array[] = []): Promise<void> {
    const next = this.tail.then(() => this.writeNow(header, parts));
    this.tail = next.catch(() => {});
    return next;
  }

  private async writeNow(header: unknown, parts: readonly Uint8Array[]): Promise<void> {
    const headerBytes = encoder.encode(JSON.stringify(header));
    const bodyLen = parts.reduce((n, p) => n + p.byteLength, 0);
    const prefix = new Uint8Array(8 + headerBytes.byteLength);
    const view = new DataView(prefix.buffer);
    view.setUint32(0, headerBytes.byteLength, true);
    view.setUint32(4, bodyLen, true);
    prefix.set(headerBytes, 8);
    await writeAll(this.conn, prefix);
    for (const p of parts) await writeAll(this.conn, p);
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
