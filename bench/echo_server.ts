/**
 * The HTTP ceiling for the overhead benchmark: a hono server that only reads and parses the request body
 * (JSON, or JSON header + binary) and answers a small JSON. Whatever the platform does per request comes on
 * top of this. Usage: deno run -A bench/echo_server.ts → prints "listening on URL".
 */
import { Hono } from "hono";

const app = new Hono();
app.post("*", async (c) => {
  const bytes = new Uint8Array(await c.req.arrayBuffer());
  const headerLength = c.req.header("inference-header-content-length");
  const n = headerLength === undefined ? bytes.byteLength : Number(headerLength);
  const json = JSON.parse(new TextDecoder().decode(bytes.subarray(0, n)));
  return c.json({ keys: Object.keys(json).length, binaryBytes: bytes.byteLength - n });
});
Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: ({ port }) => console.log(`listening on http://127.0.0.1:${port}`),
}, app.fetch);
