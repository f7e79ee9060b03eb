/**
 * Makes tests/fixtures/audio/speech_16k.wav once (committed): espeak-ng speaks a sentence at 22.05 kHz,
 * resampled here to 16 kHz mono 16-bit PCM, the input Silero VAD expects.
 * Usage: deno run -A scripts/make_speech_clip.ts  (needs Debian's espeak-ng)
 */
import { encodeWav16, parseWav16 } from "../functions/vad/wav.ts";

const tmp = await Deno.makeTempFile({ suffix: ".wav" });
const { success } = await new Deno.Command("espeak-ng", {
  args: ["-v", "en-us", "-s", "150", "-w", tmp, "The quick brown fox jumps over the lazy dog."],
}).output();
if (!success) throw new Error("espeak-ng failed (apt-get install espeak-ng)");
const { sampleRate, samples } = parseWav16(await Deno.readFile(tmp));
const ratio = sampleRate / 16000;
const out = new Float32Array(Math.floor(samples.length / ratio));
for (let i = 0; i < out.length; i++) {
  const x = i * ratio;
  const j = Math.floor(x);
  const f = x - j;
  out[i] = samples[j] * (1 - f) + (samples[j + 1] ?? 0) * f;
}
const path = new URL("../tests/fixtures/audio/speech_16k.wav", import.meta.url).pathname;
await Deno.writeFile(path, encodeWav16(out, 16000));
console.log(`${path}: ${(out.length / 16000).toFixed(2)} s at 16 kHz`);
