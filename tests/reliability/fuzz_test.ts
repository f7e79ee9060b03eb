/**
 * Reliability: property-based fuzzing of the inference request schema (fast-check, bounded runs, fixed
 * seeds so a failure replays). Anything a client can send gets 200 or a 4xx with a JSON error, never a 500;
 * well-formed random tensors of every datatype come back unchanged.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { BadJsonBody, parseJsonBody } from "../../src/runtime/json_body.ts";
import { binaryInferRequest, readInferResponse } from "../../src/api/oip_client.ts";
import { BadTensorRequest, decodeInferRequest, InferRequest } from "../../src/api/oip_codec.ts";
import type { ModelInfo } from "../../src/runtime/protocol.ts";
import { type NumericType, TYPES, zeroByteLength } from "../../src/functions/tensor.ts";
import { ALL_TYPES, identityModel, makeFunctionFolder, tensorFunctionSource } from "../fixtures/function_folders.ts";
import { deploy, startTestServer } from "../helpers.ts";

/** The identity model's signature: `x_<type>` → `y_<type>`, each [N, 3]. */
const IDENTITY: ModelInfo = {
  inputs: ALL_TYPES.map((t) => ({ name: `x_${t}`, type: t, shape: [-1, 3] })),
  outputs: ALL_TYPES.map((t) => ({ name: `y_${t}`, type: t, shape: [-1, 3] })),
  batchable: true,
};

// Values each datatype can carry exactly through JSON and back.
const valuesOf: Record<NumericType, fc.Arbitrary<number | boolean>> = {
  bool: fc.boolean(),
  uint8: fc.integer({ min: 0, max: 255 }),
  int8: fc.integer({ min: -128, max: 127 }),
  uint16: fc.integer({ min: 0, max: 65535 }),
  int16: fc.integer({ min: -32768, max: 32767 }),
  uint32: fc.integer({ min: 0, max: 4294967295 }),
  int32: fc.integer({ min: -2147483648, max: 2147483647 }),
  uint64: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  int64: fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
  // Integers up to 2048 are exact in half precision.
  float16: fc.integer({ min: -2048, max: 2048 }),
  float32: fc.float({ noNaN: true, noDefaultInfinity: true }),
  float64: fc.double({ noNaN: true, noDefaultInfinity: true }),
};

/** Random valid tensors for every input of the identity model: `rows` rows of 3 values per type. */
const validTensors = fc.integer({ min: 1, max: 4 }).chain((rows) =>
  fc.record(
    Object.fromEntries(
      ALL_TYPES.map((type) => [type, fc.array(valuesOf[type], { minLength: rows * 3, maxLength: rows * 3 })]),
    ) as Record<NumericType, fc.Arbitrary<(number | boolean)[]>>,
  ).map((data) => ({ rows, data }))
);

/** A JSON infer request, loosely typed so mutations can break it. */
interface LooseRequest {
  inputs: Record<string, unknown>[];
  outputs?: unknown;
  parameters?: unknown;
}

function jsonRequest({ rows, data }: { rows: number; data: Record<NumericType, (number | boolean)[]> }): LooseRequest {
  return {
    inputs: ALL_TYPES.map((type) => ({
      name: `x_${type}`,
      datatype: TYPES[type].oip,
      shape: [rows, 3],
      data: data[type],
    })),
  };
}

// Mutations of a valid request reach every check of the decoder; random text tests the outer layers.
const name = fc.constantFrom(...ALL_TYPES.map((t) => `x_${t}`), "y_float32", "", "x", "x_float32\u0000");
const datatype = fc.constantFrom(...ALL_TYPES.map((t) => TYPES[t].oip), "BYTES", "fp32", "", "FP8");
const dimension = fc.oneof(fc.integer({ min: 0, max: 4 }), fc.constantFrom(3, -1, 1.5, 1e9, 2 ** 53, 1e300));
const element = fc.oneof(
  fc.integer({ min: -70000, max: 70000 }),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.string({ maxLength: 3 }),
  fc.jsonValue({ maxDepth: 2 }),
);
const at = fc.nat(11);
const mutation = fc.oneof(
  fc.record({ kind: fc.constant("name" as const), at, value: name }),
  fc.record({ kind: fc.constant("datatype" as const), at, value: datatype }),
  fc.record({ kind: fc.constant("shape" as const), at, value: fc.array(dimension, { maxLength: 4 }) }),
  fc.record({ kind: fc.constant("dimension" as const), at, dim: fc.nat(2), value: dimension }),
  fc.record({ kind: fc.constant("element" as const), at, index: fc.nat(12), value: element }),
  fc.record({ kind: fc.constant("truncate" as const), at, length: fc.nat(12) }),
  fc.record({ kind: fc.constant("nest" as const), at }),
  fc.record({ kind: fc.constant("drop" as const), at }),
  fc.record({ kind: fc.constant("duplicate" as const), at }),
  fc.record({ kind: fc.constant("binary" as const), at, size: fc.integer({ min: -1, max: 100 }) }),
  fc.record({ kind: fc.constant("outputs" as const), value: fc.array(fc.record({ name }), { maxLength: 2 }) }),
  fc.record({ kind: fc.constant("parameters" as const), value: fc.jsonValue({ maxDepth: 2 }) }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;

function mutate(req: LooseRequest, m: Mutation): void {
  if (m.kind === "outputs") return void (req.outputs = m.value);
  if (m.kind === "parameters") return void (req.parameters = m.value);
  if (req.inputs.length === 0) return;
  const i = m.at % req.inputs.length;
  const t = req.inputs[i];
  switch (m.kind) {
    case "name":
    case "datatype":
    case "shape":
      t[m.kind] = m.value;
      break;
    case "dimension":
      (t.shape as unknown[])[m.dim] = m.value;
      break;
    case "element":
      (t.data as unknown[])[m.index] = m.value;
      break;
    case "truncate":
      t.data = (t.data as unknown[]).slice(0, m.length);
      break;
    case "nest":
      t.data = [t.data];
      break;
    case "drop":
      req.inputs.splice(i, 1);
      break;
    case "duplicate":
      req.inputs.push(structuredClone(t));
      break;
    case "binary":
      delete t.data;
      t.parameters = { binary_data_size: m.size };
  }
}

/** A valid request with up to two mutations, and how many it got. */
const mutatedRequest = fc.tuple(validTensors, fc.array(mutation, { maxLength: 2 })).map(([tensors, mutations]) => {
  const request = jsonRequest(tensors);
  for (const m of mutations) mutate(request, m);
  return { request, mutations: mutations.length };
});

Deno.test("decodeInferRequest: a mutated request is decoded or refused with BadTensorRequest, never another error", () => {
  let decoded = 0;
  fc.assert(
    fc.property(mutatedRequest, fc.uint8Array({ maxLength: 64 }), ({ request, mutations }, binary) => {
      const parsed = InferRequest.safeParse(request);
      if (!parsed.success) return assert.ok(mutations > 0, "an unmutated request passes the schema");
      try {
        const out = decodeInferRequest(parsed.data, IDENTITY, 1_000_000, mutations === 0 ? undefined : binary);
        decoded++;
        // Every tensor has the bytes its shape and type say, and the rows are its dimension 0.
        for (const t of out.inputs) {
          assert.equal(t.bytes, zeroByteLength(t.type, t.shape.reduce((a, b) => a * b, 1)));
          assert.equal(t.shape[0], out.rows);
        }
      } catch (e) {
        if (!(e instanceof BadTensorRequest)) throw e;
        assert.ok(mutations > 0, `an unmutated request is refused: ${e.message}`);
      }
    }),
    { numRuns: 2000, seed: 42 },
  );
  assert.ok(decoded > 100, `only ${decoded} of 2000 decoded`);
});

Deno.test("parseJsonBody: any text is parsed or refused with BadJsonBody; JSON it parses equals JSON.parse", () => {
  const text = fc.oneof(
    fc.string({ unit: "binary", maxLength: 64 }),
    fc.jsonValue().map((v) => JSON.stringify(v)),
    fc.jsonValue().map((v) => JSON.stringify(v).slice(0, -1)),
  );
  fc.assert(
    fc.property(text, (t) => {
      try {
        assert.deepEqual(parseJsonBody(t), JSON.parse(t));
      } catch (e) {
        if (!(e instanceof BadJsonBody)) throw e;
      }
    }),
    { numRuns: 3000, seed: 42 },
  );
});

Deno.test("live: random bodies get 200 or a 4xx with a JSON error; random tensors round-trip exactly", async (t) => {
  const folder = await makeFunctionFolder("identity", tensorFunctionSource("identity.onnx"), {
    "identity.onnx": identityModel(),
  });
  const server = await startTestServer({ maxBodyBytes: 64 * 1024 });
  const url = `${server.url}/v2/models/identity/infer`;
  try {
    await deploy(server, folder);

    await t.step("random bodies: never a 500, always a JSON answer", async () => {
      const body = fc.oneof(
        mutatedRequest.map(({ request }) => ({
          text: JSON.stringify(request),
          headerLength: undefined as string | undefined,
        })),
        fc.jsonValue().map((v) => ({ text: JSON.stringify(v), headerLength: undefined })),
        fc.record({
          text: fc.string({ unit: "binary", maxLength: 200 }),
          headerLength: fc.option(fc.oneof(fc.nat({ max: 300 }).map(String), fc.string({ maxLength: 4 })), {
            nil: undefined,
          }),
        }),
      );
      const statuses = new Map<number, number>();
      await fc.assert(
        fc.asyncProperty(body, async ({ text, headerLength }) => {
          const res = await fetch(url, {
            method: "POST",
            body: text,
            headers: headerLength === undefined ? {} : { "inference-header-content-length": headerLength },
          });
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          const answer = await res.text();
          if (res.status === 200) return;
          assert.ok([400, 404, 413].includes(res.status), `${res.status} for ${text.slice(0, 200)}: ${answer}`);
          const error = JSON.parse(answer).error;
          assert.ok(typeof error === "string" && error.length > 0, answer);
        }),
        { numRuns: 400, seed: 7 },
      );
      assert.ok((statuses.get(400) ?? 0) > 300, `mostly refused: ${JSON.stringify([...statuses])}`);
    });

    await t.step("random well-formed tensors of all 12 datatypes come back unchanged", async () => {
      await fc.assert(
        fc.asyncProperty(validTensors, fc.boolean(), async ({ rows, data }, binary) => {
          // JSON cannot tell -0 from 0; binary can, and keeps it.
          const clean = (type: NumericType) => data[type].map((v) => (v === 0 && !binary ? 0 : v));
          let res: Response;
          if (binary) {
            const req = binaryInferRequest(ALL_TYPES.map((type) => {
              const arr = TYPES[type].alloc(rows * 3);
              clean(type).forEach((v, i) => {
                if (type === "int64" || type === "uint64") (arr as BigInt64Array)[i] = BigInt(v as number);
                else (arr as Float64Array)[i] = Number(v);
              });
              return { name: `x_${type}`, datatype: TYPES[type].oip, shape: [rows, 3], data: arr };
            }));
            res = await fetch(url, { method: "POST", headers: req.headers, body: req.body });
          } else {
            const request = jsonRequest({
              rows,
              data: Object.fromEntries(ALL_TYPES.map((t) => [t, clean(t)])) as typeof data,
            });
            res = await fetch(url, { method: "POST", body: JSON.stringify(request) });
          }
          const answer = await readInferResponse(res);
          for (const type of ALL_TYPES) {
            const out = answer.outputs.find((o) => o.name === `y_${type}`)!;
            assert.deepEqual(out.shape, [rows, 3]);
            const got = Array.from(
              out.data as ArrayLike<number | bigint | boolean>,
              (v) => typeof v === "bigint" ? Number(v) : type === "bool" && typeof v === "number" ? v !== 0 : v,
            );
            assert.deepEqual(got, clean(type), type);
          }
        }),
        { numRuns: 60, seed: 11 },
      );
    });
    assert.equal((await fetch(`${server.url}/v2/models/identity/ready`)).status, 200);
  } finally {
    await server.shutdown();
  }
});
