/** Minimal 16-bit PCM mono WAV reading and writing (the formats espeak-ng and the VAD tests use). */

/** Samples in [-1, 1] and the sample rate of a 16-bit PCM mono WAV file. */
export function parseWav16(bytes: Uint8Array): { sampleRate: number; samples: Float32Array } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tag = (o: number) => String.fromCharCode(...bytes.subarray(o, o + 4));
  if (tag(0) !== "RIFF" || tag(8) !== "WAVE") throw new Error("not a RIFF/WAVE file");
  let sampleRate = 0;
  for (let o = 12; o + 8 <= bytes.length;) {
    const id = tag(o);
    const size = view.getUint32(o + 4, true);
    if (id === "fmt ") {
      const format = view.getUint16(o + 8, true);
      const channels = view.getUint16(o + 10, true);
      sampleRate = view.getUint32(o + 12, true);
      const bits = view.getUint16(o + 22, true);
      if (format !== 1 || channels !== 1 || bits !== 16) throw new Error("only 16-bit PCM mono WAV is supported");
    } else if (id === "data") {
      // espeak-ng writes a streaming header whose data size may be 0 or too large: read what is there.
      const n = Math.floor(Math.min(size || Infinity, bytes.length - o - 8) / 2);
      const samples = new Float32Array(n);
      for (let i = 0; i < n; i++) samples[i] = view.getInt16(o + 8 + 2 * i, true) / 32768;
      return { sampleRate, samples };
    }
    o += 8 + size + (size % 2);
  }
  throw new Error("WAV file has no data chunk");
}

/** A 16-bit PCM mono WAV file of `samples` in [-1, 1]. */
export function encodeWav16(samples: Float32Array, sampleRate: number): Uint8Array {
  const out = new Uint8Array(44 + samples.length * 2);
  const view = new DataView(out.buffer);
  const put = (o: number, s: string) => [...s].forEach((c, i) => (out[o + i] = c.charCodeAt(0)));
  put(0, "RIFF");
  view.setUint32(4, 36 + samples.length * 2, true);
  put(8, "WAVE");
  put(12, "fmt ");
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true);
  view.setUint16(22, 1, true);
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * 2, true);
  view.setUint16(32, 2, true);
  view.setUint16(34, 16, true);
  put(36, "data");
  view.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) {
    view.setInt16(44 + 2 * i, Math.max(-32768, Math.min(32767, Math.round(samples[i] * 32768))), true);
  }
  return out;
}
