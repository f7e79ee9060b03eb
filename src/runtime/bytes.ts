/** Byte buffers (pure). */

/** `parts` as one buffer (the part itself when there is one). */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  return parts.length === 1 ? parts[0] : joinBytes(parts);
}

/** `parts` copied into one buffer of its own, always (it can be transferred; the parts may be views). */
export function joinBytes(parts: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
