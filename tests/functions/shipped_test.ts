/** Every function shipped under `functions/` bundles, names a model the zoo can make, and preprocesses its example. */
import assert from "node:assert/strict";
import { bundleFolder, isAppBundle } from "../../src/functions/bundle.ts";
import { isDefinedFunction } from "../../src/functions/sdk.ts";
import { ZOO } from "../../src/models/zoo.ts";
import { ROOT } from "../helpers.ts";

const shipped = [...Deno.readDirSync(`${ROOT}/functions`)].filter((e) => e.isDirectory).map((e) => e.name).sort();

Deno.test("shipped functions: one per zoo model of the paper, each bundles and warms up its own example", async () => {
  for (const m of ["lenet", "googlenet", "resnet50", "vgg16", "mobilenet_v2", "mnasnet1_0", "densenet161", "bert"]) {
    assert.ok(shipped.includes(m), `functions/${m} exists`);
  }
  for (const name of shipped) {
    const bundle = await bundleFolder(`${ROOT}/functions/${name}`);
    if (isAppBundle(bundle)) {
      // An app's stages are shipped functions.
      for (const s of bundle.manifest.stages) assert.ok(shipped.includes(s.function), `${name}: ${s.function} shipped`);
      continue;
    }
    assert.ok(ZOO[bundle.manifest.model], `${name}: model ${bundle.manifest.model} is in the zoo`);
    const def = (await import(`${ROOT}/functions/${name}/function.ts`)).default;
    assert.ok(isDefinedFunction(def));
    if (def.preprocess && def.example !== undefined) {
      const tensors = await def.preprocess(def.input!.parse(def.example));
      for (const [input, t] of Object.entries(tensors)) {
        assert.equal(t.dims[0], 1, `${name}: example adds one row to ${input}`);
      }
    }
  }
});

Deno.test("bert function: token ids are padded with [PAD] to the model's 128 and out-of-vocabulary ids are refused", async () => {
  const def = (await import(`${ROOT}/functions/bert/function.ts`)).default;
  const { input_ids } = await def.preprocess(def.input.parse({ tokens: [101, 7592, 102] }));
  assert.deepEqual(input_ids.dims, [1, 128]);
  assert.deepEqual(Array.from(input_ids.data as BigInt64Array).slice(0, 4), [101n, 7592n, 102n, 0n]);
  assert.equal(def.input.safeParse({ tokens: [30522] }).success, false);
  assert.equal(def.input.safeParse({ tokens: new Array(129).fill(1) }).success, false);
});
