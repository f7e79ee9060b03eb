/**
 * The shipped `vad` function with the real pretrained Silero VAD v5: a spoken sentence (espeak-ng, committed
 * asset) scores clearly higher than silence and than white noise, through the real server and worker.
 */
import assert from "node:assert/strict";
import { encodeBase64 } from "../../src/functions/bundle.ts";
import { parseWav16 } from "../../functions/vad/wav.ts";
import { deploy, postJson, ROOT, startTestServer } from "../helpers.ts";

const SPEECH_WAV = await Deno.readFile(`${ROOT}/tests/fixtures/audio/speech_16k.wav`);

function noise(seconds: number, amplitude: number): number[] {
  let s = 12345;
  return Array.from({ length: 16000 * seconds }, () => {
    s = (s * 1103515245 + 12345) >>> 0;
    return ((s / 4294967296) * 2 - 1) * amplitude;
  });
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

Deno.test("vad: speech scores clearly higher than silence and white noise", async () => {
  const server = await startTestServer();
  try {
    await deploy(server, `${ROOT}/functions/vad`);
    const url = `${server.url}/functions/vad/invoke`;
    const speech = Array.from(parseWav16(SPEECH_WAV).samples);
    // Sent together so they share batches (the function advances all clips of a batch in lock-step).
    const [asSamples, asWav, silence, white] = await Promise.all([
      postJson(url, { samples: speech }),
      postJson(url, { wavBase64: encodeBase64(SPEECH_WAV) }),
      postJson(url, { samples: new Array(16000 * 2).fill(0) }),
      postJson(url, { samples: noise(2, 0.5) }),
    ]);
    for (const r of [asSamples, asWav, silence, white]) assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(asWav.body.probabilities, asSamples.body.probabilities, "WAV and samples give the same answer");
    assert.equal(asSamples.body.chunkMs, 32);
    assert.equal(asSamples.body.probabilities.length, Math.ceil(speech.length / 512));

    const sp = asSamples.body.probabilities as number[];
    const top = (xs: number[]) => [...xs].sort((a, b) => b - a).slice(0, Math.ceil(xs.length / 4));
    const speechTop = mean(top(sp));
    const silenceTop = mean(top(silence.body.probabilities));
    const noiseTop = mean(top(white.body.probabilities));
    assert.equal(asSamples.body.speech, true);
    assert.equal(silence.body.speech, false);
    assert.ok(speechTop > 0.7, `speech top-quartile probability ${speechTop}`);
    assert.ok(speechTop > silenceTop + 0.5, `speech ${speechTop} vs silence ${silenceTop}`);
    assert.ok(speechTop > noiseTop + 0.4, `speech ${speechTop} vs white noise ${noiseTop}`);

    const bad = await postJson(url, { samples: [0.1, 0.2] });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error, /samples/);
    const badWav = await postJson(url, { wavBase64: encodeBase64(new Uint8Array(100)) });
    assert.equal(badWav.status, 400);
    assert.match(badWav.body.error, /RIFF/);
  } finally {
    await server.shutdown();
  }
});
