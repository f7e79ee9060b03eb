import assert from "node:assert/strict";
import { BundlePath, describeZodError, FunctionName, Manifest, ModelRef } from "../../src/functions/manifest.ts";

Deno.test("function names: lower-case URL- and path-safe, starting with a letter", () => {
  for (const ok of ["lenet", "vad", "resnet-50", "a_b", "x".repeat(63)]) {
    assert.ok(FunctionName.safeParse(ok).success, ok);
  }
  for (const bad of ["", "Lenet", "1net", "../etc", "a/b", "a b", "x".repeat(64), "lenet\n"]) {
    assert.ok(!FunctionName.safeParse(bad).success, JSON.stringify(bad));
  }
});

Deno.test("bundle paths stay inside the function folder; model refs are zoo names or .onnx files", () => {
  for (const ok of ["function.ts", "lib/wav.ts", "model.v2.onnx"]) assert.ok(BundlePath.safeParse(ok).success, ok);
  for (const bad of ["/etc/passwd", "../x.ts", "a/../../b", "./a", "a//b", ".hidden", ""]) {
    assert.ok(!BundlePath.safeParse(bad).success, bad);
  }
  assert.ok(ModelRef.safeParse("resnet18").success);
  assert.ok(ModelRef.safeParse("models/mine.onnx").success);
  assert.ok(!ModelRef.safeParse("../../secret.onnx").success);
  assert.ok(!ModelRef.safeParse("mine.bin").success);
});

Deno.test("manifest: defaults, bounds, unknown keys, and an error that names the field", () => {
  const m = Manifest.parse({ name: "lenet", model: "lenet", sloMs: 100, json: true });
  assert.equal(m.maxBatch, 32);
  const bad = Manifest.safeParse({ name: "lenet", model: "lenet", sloMs: -1, maxBatch: 0, json: true, extra: 1 });
  assert.ok(!bad.success);
  const text = describeZodError(bad.error);
  assert.match(text, /sloMs: /);
  assert.match(text, /maxBatch: /);
  assert.match(text, /extra/);
});
