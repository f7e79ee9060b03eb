/**
 * Runs gRPC calls from a separate process with an independent client: Debian's Python grpcio (gRPC's C
 * core) and protoc-generated messages from the .proto gpulet ships (`grpc_calls.py`). The project's setup
 * installs them from apt (python3-grpcio, python3-protobuf, protobuf-compiler).
 */
import { ROOT } from "../helpers.ts";

/** Debian's Python (its dist-packages hold grpcio), unless GPULET_PYTHON says otherwise. */
export const PYTHON = Deno.env.get("GPULET_PYTHON") ?? "/usr/bin/python3";

/** One call: a method of GRPCInferenceService and its request in protobuf's JSON mapping. */
export interface GrpcCall {
  method: string;
  // deno-lint-ignore no-explicit-any
  request?: any;
  timeout_s?: number;
  metadata?: Record<string, string>;
  /** Unary only: the client cancels the call after this long if it is not answered. */
  cancel_after_s?: number;
}

/** A call's outcome: its response (responses for a stream) or its status code name and details. */
// deno-lint-ignore no-explicit-any
export type GrpcResult = { ok: true; response?: any; responses?: any[] } | { ok: false; code: string; details: string };

/** Makes `calls` in order against 127.0.0.1:`port` from one Python process; resolves with their outcomes. */
export async function grpcCalls(port: number, calls: GrpcCall[]): Promise<GrpcResult[]> {
  const child = new Deno.Command(PYTHON, {
    args: [`${ROOT}/tests/grpc/grpc_calls.py`, `${ROOT}/src/api/grpc/inference.proto`, `127.0.0.1:${port}`],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify(calls)));
  await writer.close();
  const out = await child.output();
  if (!out.success) {
    throw new Error(`the Python gRPC client failed: ${new TextDecoder().decode(out.stderr).slice(-2000)}`);
  }
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/** Base64 (protobuf's JSON mapping of bytes) to bytes. */
export function fromBase64(s: string): Uint8Array {
  return Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
}

/** Bytes to base64, for raw contents in a request. */
export function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}
