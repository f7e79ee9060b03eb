/**
 * Voice activity detection with the real pretrained Silero VAD v5 model (MIT; shipped in the npm package
 * @ricky0123/vad-web). Input: 16 kHz mono audio, as samples in [-1, 1] or a base64 16-bit PCM WAV.
 * Output: the speech probability of every 512-sample (32 ms) chunk.
 *
 * The model is recurrent (a state carried from chunk to chunk, plus 64 samples of context), so the function
 * runs a batch itself: all clips of the batch advance together, one model run per chunk, state [2, B, 128].
 */
import { defineFunction, type ModelRunner, tensor, type Tensors, z } from "gpulet";
import { parseWav16 } from "./wav.ts";

const CHUNK = 512;
const CONTEXT = 64;
const SAMPLE_RATE = 16000;
const MAX_SECONDS = 60;

const Input = z.union([
  z.object({ samples: z.array(z.number().min(-1).max(1)).min(CHUNK).max(SAMPLE_RATE * MAX_SECONDS) }),
  z.object({ wavBase64: z.base64().max(SAMPLE_RATE * MAX_SECONDS * 3) }),
]);
type Input = z.infer<typeof Input>;

function audioOf(input: Input): Float32Array {
  if ("samples" in input) return Float32Array.from(input.samples);
  const bin = atob(input.wavBase64);
  const { sampleRate, samples } = parseWav16(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
  if (sampleRate !== SAMPLE_RATE) throw new Error(`the WAV is ${sampleRate} Hz; 16000 Hz mono is required`);
  if (samples.length < CHUNK) throw new Error(`the WAV has ${samples.length} samples; at least ${CHUNK} are needed`);
  return samples;
}

/** Runs every clip of the batch through the recurrent model together. */
async function execute(items: Tensors[], model: ModelRunner): Promise<Tensors[]> {
  const b = items.length;
  const clips = items.map((it) => it.audio.data as Float32Array);
  const chunks = clips.map((c) => Math.ceil(c.length / CHUNK));
  const steps = Math.max(...chunks);
  let state = tensor("float32", new Float32Array(2 * b * 128), [2, b, 128]);
  const sr = tensor("int64", BigInt64Array.of(BigInt(SAMPLE_RATE)), []);
  const frame = new Float32Array(b * (CONTEXT + CHUNK));
  const probs = chunks.map((n) => new Float32Array(n));
  for (let t = 0; t < steps; t++) {
    for (let i = 0; i < b; i++) {
      const row = frame.subarray(i * (CONTEXT + CHUNK), (i + 1) * (CONTEXT + CHUNK));
      // Context = the last 64 samples of the previous chunk (zeros before the first), as silero-vad does.
      row.fill(0);
      if (t > 0) row.set(clips[i].subarray(t * CHUNK - CONTEXT, t * CHUNK), 0);
      row.set(clips[i].subarray(t * CHUNK, Math.min((t + 1) * CHUNK, clips[i].length)), CONTEXT);
    }
    const out = await model.run({ input: tensor("float32", frame, [b, CONTEXT + CHUNK]), state, sr });
    state = out.stateN;
    const p = out.output.data as Float32Array;
    for (let i = 0; i < b; i++) if (t < chunks[i]) probs[i][t] = p[i];
  }
  return probs.map((p) => ({ probabilities: tensor("float32", p, [p.length]) }));
}

export default defineFunction({
  model: "silero_vad_v5",
  sloMs: 1000,
  maxBatch: 8,
  description: "Silero VAD v5: 16 kHz mono audio -> speech probability per 32 ms chunk",
  input: Input,
  example: { samples: new Array(SAMPLE_RATE).fill(0) },
  preprocess: (input) => {
    const audio = audioOf(input);
    return { audio: tensor("float32", audio, [1, audio.length]) };
  },
  execute,
  postprocess: ({ probabilities }) => {
    const p = Array.from(probabilities.data as Float32Array, (v) => Math.round(v * 1e4) / 1e4);
    return { chunkMs: (1000 * CHUNK) / SAMPLE_RATE, probabilities: p, speech: p.some((v) => v >= 0.5) };
  },
});
