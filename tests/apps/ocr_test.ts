/**
 * The OCR app end to end on the real server, workers and pretrained models: images rendered here
 * (ImageMagick, `tests/fixtures/text_images.ts`: three fonts, 24–64 px, one to three lines, noise or a
 * tilt) come back as their text; a line read by the recogniser alone; the image as an OIP BYTES tensor
 * (HTTP binary, and gRPC from an independent client); a wrong-format, an empty and a blank image each get
 * a clear answer.
 */
import assert from "node:assert/strict";
import { encode as encodePng } from "fast-png";
import { encodeBase64 } from "../../src/functions/bundle.ts";
import { charSimilarity, renderText, TEXT_CASES } from "../fixtures/text_images.ts";
import { binaryInferRequest, readInferResponse } from "../../src/api/oip_client.ts";
import { deploy, postJson, ROOT, startTestServer } from "../helpers.ts";
import { fromBase64, grpcCalls, toBase64 } from "../grpc/python_client.ts";

Deno.test("ocr: deployed as an app over three real models, it reads rendered text back (mean similarity ≥ 0.95)", async () => {
  const server = await startTestServer({ grpcPort: 0 });
  try {
    for (const f of ["ocr_det", "ocr_cls", "ocr_rec", "ocr"]) await deploy(server, `${ROOT}/functions/${f}`);
    const images = await Promise.all(TEXT_CASES.map(renderText));
    // Three at a time (each stage batches across them), few enough that no machine's speed makes admission
    // refuse one for its SLO.
    const answers = [];
    for (let i = 0; i < images.length; i += 3) {
      answers.push(
        ...await Promise.all(
          images.slice(i, i + 3).map((png) =>
            postJson(`${server.url}/functions/ocr/invoke`, { image: encodeBase64(png) })
          ),
        ),
      );
    }
    const scores = answers.map((r, i) => {
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.lines.length, r.body.text.split("\n").length, JSON.stringify(r.body));
      for (const l of r.body.lines) assert.ok(l.box.length === 4 && l.score >= 0.5 && l.score <= 1, JSON.stringify(l));
      return charSimilarity(TEXT_CASES[i].lines.join("\n"), r.body.text);
    });
    // Pretrained weights: nothing in the answer or the metadata says otherwise.
    assert.equal(answers[0].headers.get("x-gpulet-weights"), null);
    assert.equal((await (await fetch(`${server.url}/v2/models/ocr_rec`)).json()).weights, undefined);
    const mean = scores.reduce((a, b) => a + b, 0) / scores.length;
    console.log(`ocr: mean character similarity ${mean.toFixed(4)} over ${scores.length} images`);
    assert.ok(mean >= 0.95, `mean similarity ${mean}: ${JSON.stringify(answers.map((a) => a.body.text))}`);

    // One line, straight to the recogniser.
    const line = await renderText({ lines: ["gpulet reads"], font: "sans", size: 32 });
    const rec = await postJson(`${server.url}/functions/ocr_rec/invoke`, { image: encodeBase64(line) });
    assert.equal(rec.status, 200, JSON.stringify(rec.body));
    assert.equal(rec.body.text.trim(), "gpulet reads");

    // The OIP BYTES form: the image's bytes as the input `image`; the text back as the output `text`.
    const meta = await (await fetch(`${server.url}/v2/models/ocr`)).json();
    assert.deepEqual(meta.inputs, [{ name: "image", datatype: "BYTES", shape: [1] }]);
    const req = binaryInferRequest([{ name: "image", datatype: "BYTES", shape: [1], data: [images[0]] }]);
    const res = await fetch(`${server.url}/v2/models/ocr/infer`, {
      method: "POST",
      headers: req.headers,
      body: req.body,
    });
    assert.equal(res.status, 200);
    const tensors = await readInferResponse(res);
    assert.deepEqual(tensors.outputs.map((o) => o.name), ["text", "lines"]);
    assert.deepEqual(tensors.outputs[0].data, [answers[0].body.text]);
    assert.deepEqual(JSON.parse((tensors.outputs[1].data as string[])[0]), answers[0].body.lines);
    const [grpc, notOne] = await grpcCalls(server.grpcPort!, [
      {
        method: "ModelInfer",
        request: {
          model_name: "ocr",
          inputs: [{
            name: "image",
            datatype: "BYTES",
            shape: [1],
            contents: { bytes_contents: [toBase64(images[1])] },
          }],
        },
      },
      {
        method: "ModelInfer",
        request: { model_name: "ocr", inputs: [{ name: "image", datatype: "BYTES", shape: [2] }] },
      },
    ]);
    assert.ok(grpc.ok, JSON.stringify(grpc));
    assert.equal(
      new TextDecoder().decode(fromBase64(grpc.response.raw_output_contents[0]).subarray(4)),
      answers[1].body.text,
    );
    assert.ok(!notOne.ok && notOne.code === "INVALID_ARGUMENT", JSON.stringify(notOne));
    assert.match(notOne.details, /input "image": shape \[2\] does not match the model's \[1\]/);

    const invoke = (image: string) => postJson(`${server.url}/functions/ocr/invoke`, { image });
    const wrong = await invoke("aGVsbG8=");
    assert.equal(wrong.status, 400);
    assert.match(wrong.body.error, /neither a PNG nor a JPEG/);
    const empty = await invoke("");
    assert.equal(empty.status, 400);
    assert.match(empty.body.error, /image is empty/);
    const white = new Uint8Array(200 * 80 * 3).fill(255);
    const blank = await invoke(encodeBase64(encodePng({ width: 200, height: 80, data: white, channels: 3, depth: 8 })));
    assert.equal(blank.status, 200, JSON.stringify(blank.body));
    assert.deepEqual(blank.body, { text: "", lines: [] });
  } finally {
    await server.shutdown();
  }
});
