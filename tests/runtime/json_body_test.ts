import assert from "node:assert/strict";
import { BadJsonBody, MAX_JSON_DEPTH, nestsDeeperThan, parseJsonBody } from "../../src/runtime/json_body.ts";

Deno.test("nestsDeeperThan counts arrays and objects, not brackets inside strings", () => {
  const nest = (n: number) => '{"a":'.repeat(n) + "0" + "}".repeat(n);
  assert.equal(nestsDeeperThan(nest(64), 64), false);
  assert.equal(nestsDeeperThan(nest(65), 64), true);
  assert.equal(nestsDeeperThan("[".repeat(65) + "]".repeat(65), 64), true);
  assert.equal(nestsDeeperThan(JSON.stringify({ s: "[[[[{{{{".repeat(50) }), 3), false);
  // An escaped quote does not end the string; the brackets after it are still inside it.
  assert.equal(nestsDeeperThan(JSON.stringify({ s: '\\"' + "[".repeat(10) }), 2), false);
  // Siblings do not add up: depth is nesting, not count.
  assert.equal(nestsDeeperThan(JSON.stringify(Array.from({ length: 100 }, () => [[1]])), 3), false);
});

Deno.test("parseJsonBody: precise refusals for empty, malformed, too deep and out-of-range bodies", () => {
  assert.throws(() => parseJsonBody(""), { name: "Error", message: /the request body is empty; JSON expected/ });
  assert.throws(() => parseJsonBody('{"a": [1,'), BadJsonBody);
  assert.throws(() => parseJsonBody('{"a": [1,'), /malformed JSON/);
  assert.throws(
    () => parseJsonBody("[".repeat(MAX_JSON_DEPTH + 1) + "]".repeat(MAX_JSON_DEPTH + 1)),
    /nests arrays\/objects deeper than 64 levels/,
  );
  assert.throws(() => parseJsonBody('{"x": [1, -1e999]}'), /the number -1e999 is beyond the range of a 64-bit float/);
  assert.throws(() => parseJsonBody(`[${"9".repeat(400)}]`), /the number 9{40}… is beyond the range/);
  assert.deepEqual(parseJsonBody('{"x": [1e308, "1e999", 2.5e-999]}'), { x: [1e308, "1e999", 0] });
  assert.deepEqual(parseJsonBody("[".repeat(64) + "]".repeat(64)), JSON.parse("[".repeat(64) + "]".repeat(64)));
});

Deno.test("parseJsonBody: numbers beyond a double anywhere in the value are refused, large finite ones kept", () => {
  for (const t of ['{"a": {"b": [0, [1e999]]}}', `{"x": ${"9".repeat(400)}}`, "[-1E+309]", "1e999"]) {
    assert.throws(() => parseJsonBody(t), /is beyond the range of a 64-bit float/, t);
  }
  const tensor = { data: Array.from({ length: 784 }, (_, i) => i / 255), big: 1.7e308, tiny: 5e-324, s: "1e999" };
  assert.deepEqual(parseJsonBody(JSON.stringify(tensor)), tensor);
});
