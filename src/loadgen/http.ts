/**
 * A lean HTTP/1.1 client for load generation: keep-alive connections over `Deno.connect`, one request in
 * flight per connection, request bytes encoded once. It costs the shared cores far less per request than
 * `fetch`, so a load run measures the server rather than its client.
 */

/** One request, pre-encoded: the same bytes are sent every time. */
export interface PreparedRequest {
  bytes: Uint8Array;
}

/** Encodes a POST once for reuse on every connection. */
export function prepareRequest(
  url: URL,
  body: Uint8Array | string,
  headers: Record<string, string>,
): PreparedRequest {
  const data = typeof body === "string" ? new TextEncoder().encode(body) : body;
  const head = [
    `POST ${url.pathname}${url.search} HTTP/1.1`,
    `host: ${url.host}`,
    `content-length: ${data.byteLength}`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    "",
    "",
  ].join("\r\n");
  const headBytes = new TextEncoder().encode(head);
  const bytes = new Uint8Array(headBytes.byteLength + data.byteLength);
  bytes.set(headBytes, 0);
  bytes.set(data, headBytes.byteLength);
  return { bytes };
}

const CRLFCRLF = [13, 10, 13, 10];

/** A keep-alive connection that sends a request and reads one response (status and body length). */
export class Connection {
  private buf = new Uint8Array(64 * 1024);
  private len = 0;

  private constructor(private readonly conn: Deno.TcpConn) {}

  static async open(url: URL): Promise<Connection> {
    const conn = await Deno.connect({ hostname: url.hostname, port: Number(url.port) });
    conn.setNoDelay(true);
    return new Connection(conn);
  }

  private async fill(): Promise<void> {
    if (this.len === this.buf.length) {
      const bigger = new Uint8Array(this.buf.length * 2);
      bigger.set(this.buf);
      this.buf = bigger;
    }
    const n = await this.conn.read(this.buf.subarray(this.len));
    if (n === null) throw new Error("connection closed by the server");
    this.len += n;
  }

  private headerEnd(): number {
    const b = this.buf;
    outer: for (let i = 0; i + 3 < this.len; i++) {
      for (let k = 0; k < 4; k++) if (b[i + k] !== CRLFCRLF[k]) continue outer;
      return i + 4;
    }
    return -1;
  }

  /** Sends `req`, returns the response status. */
  async request(req: PreparedRequest): Promise<number> {
    return (await this.exchange(req)).status;
  }

  /** Sends `req`; returns the status and the named response `headers` (lower-case) that were present. */
  async exchange(req: PreparedRequest, headers: readonly string[] = []): Promise<
    { status: number; headers: Record<string, string> }
  > {
    let off = 0;
    while (off < req.bytes.byteLength) off += await this.conn.write(req.bytes.subarray(off));
    let end: number;
    while ((end = this.headerEnd()) < 0) await this.fill();
    const head = new TextDecoder().decode(this.buf.subarray(0, end));
    const status = Number(head.slice(9, 12));
    const m = head.match(/\r\ncontent-length: *(\d+)/i);
    if (!m) throw new Error(`response without content-length: ${head.split("\r\n")[0]}`);
    const total = end + Number(m[1]);
    while (this.len < total) await this.fill();
    this.buf.copyWithin(0, total, this.len);
    this.len -= total;
    const found: Record<string, string> = {};
    for (const h of headers) {
      const hm = head.match(new RegExp(`\r\n${h}: *([^\r]*)`, "i"));
      if (hm) found[h] = hm[1];
    }
    return { status, headers: found };
  }

  close(): void {
    this.conn.close();
  }
}
