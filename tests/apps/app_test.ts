/**
 * Applications end to end on the real server and real workers: deploy an app over a deployed function,
 * invoke it with a fan-out chosen per request (answers assembled in order, the same as direct calls), bad
 * input, an exhausted budget, a stage's gpu-let killed mid-request, a stage deleted, the sandbox, and the
 * shipped `game` app.
 */
import assert from "node:assert/strict";
import { encode as encodePng } from "fast-png";
import { encodeBase64 } from "../../src/functions/bundle.ts";
import { makeFunctionFolder } from "../fixtures/function_folders.ts";
import { deploy, type JsonBody, postJson, ROOT, startTestServer, testImage, waitFor } from "../helpers.ts";

/** An app over lenet: one stage call per image sent (k known only at run time). */
const DIGITS_APP = `import { defineApp, z } from "gpulet";
export default defineApp({
  sloMs: 3000,
  input: z.object({
    images: z.array(z.array(z.number())).max(64),
    waitMs: z.number().optional(),
    probe: z.string().optional(),
  }),
  stages: { digits: { function: "lenet", fanOut: 4 } },
  run: async ({ images, waitMs, probe }, ctx) => {
    if (probe) return { read: await Deno.readTextFile(probe) };
    if (waitMs) await new Promise((r) => setTimeout(r, waitMs));
    const answers = await Promise.all(images.map((image) => ctx.call("digits", { image })));
    return { labels: answers.map((a) => a.label) };
  },
});
`;

/** Two levels over lenet: the second stage waits for the first. */
const CHAIN_APP = `import { defineApp, z } from "gpulet";
export default defineApp({
  sloMs: 2000,
  input: z.object({ image: z.array(z.number()) }),
  stages: { first: { function: "lenet" }, second: { function: "lenet", after: ["first"] } },
  run: async ({ image }, ctx) => {
    const a = await ctx.call("first", { image });
    const b = await ctx.call("second", { image });
    return { first: a.label, second: b.label };
  },
});
`;

/** A tensor interface of two inputs (text, then bytes) and two outputs (text, JSON) over one lenet stage. */
const TENSOR_APP = `import { defineApp, z } from "gpulet";
export default defineApp({
  sloMs: 2000,
  input: z.object({ greeting: z.string(), image: z.base64() }),
  stages: { digit: { function: "lenet" } },
  tensors: { inputs: { greeting: "text", image: "base64" }, outputs: { greeting: "text", size: "json" } },
  run: ({ greeting, image }) => ({ greeting, size: atob(image).length }),
});
`;

Deno.test("apps: deploy, run-time fan-out in order, bad input, budget, killed and deleted stage, sandbox", async (t) => {
  const server = await startTestServer();
  try {
    await deploy(server, `${ROOT}/functions/lenet`);
    const app = await deploy(server, await makeFunctionFolder("digits", DIGITS_APP));
    assert.equal((app.app as JsonBody).stages[0].function, "lenet");
    const invoke = (body: unknown) => postJson(`${server.url}/functions/digits/invoke`, body);

    await t.step("fan-out of a run-time k: the answer is assembled in order, as direct calls answer", async () => {
      const images = Array.from({ length: 7 }, (_, i) => testImage(100 + i));
      const direct = await Promise.all(
        images.map(async (image) => (await postJson(`${server.url}/functions/lenet/invoke`, { image })).body.label),
      );
      for (const k of [1, 7]) {
        const r = await invoke({ images: images.slice(0, k) });
        assert.equal(r.status, 200, JSON.stringify(r.body));
        assert.deepEqual(r.body.labels, direct.slice(0, k));
      }
      // Many at once: every one answered whole.
      const many = await Promise.all(Array.from({ length: 20 }, () => invoke({ images: images.slice(0, 4) })));
      for (const r of many) assert.deepEqual(r.body.labels, direct.slice(0, 4));
      const plan = await (await fetch(`${server.url}/admin/plan`)).json();
      const stage = plan.apps[0].stages[0];
      assert.equal(stage.function, "lenet");
      assert.equal(stage.budgetMs, 3000);
      assert.ok(stage.measuredFanOut > 1 && stage.measuredFanOut <= 7, JSON.stringify(stage));
      // The dashboard shows the app, with its stages and their budgets.
      const ui = await (await fetch(`${server.url}/ui/state`)).json();
      const row = ui.functions.find((f: JsonBody) => f.name === "digits");
      assert.deepEqual(row.stages, ["digits→lenet 3000 ms"]);
      assert.equal(row.sloMs, 3000);
      const meta = await (await fetch(`${server.url}/v2/models/digits`)).json();
      assert.equal(meta.platform, "gpulet_app");
    });

    await t.step("loadgen loads the app and reports its stage function beside it, as the server counted", async () => {
      const dir = await Deno.makeTempDir();
      await Deno.writeTextFile(`${dir}/body.json`, JSON.stringify({ images: [testImage(1), testImage(2)] }));
      const run = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", `${ROOT}/src/cli/loadgen.ts`, "--url", server.url, "--mix", "digits=15", "--seconds", "2"]
          .concat(["--body", `digits=${dir}/body.json`, "--out", `${dir}/load`, "--json"]),
        stdout: "piped",
        stderr: "piped",
      }).output();
      const err = new TextDecoder().decode(run.stderr);
      assert.equal(run.code, 0, err);
      const report = JSON.parse(new TextDecoder().decode(run.stdout));
      const app = report.functions.digits;
      assert.ok(app.sent >= 10 && app.ok === app.sent, JSON.stringify(app));
      // Two images a request: two lenet calls each, every one within the stage's budget.
      assert.equal(report.stages.digits.lenet.calls, 2 * app.ok);
      assert.equal(report.stages.digits.lenet.within, 2 * app.ok);
      // Without a body an app cannot be loaded: said so.
      const bare = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", `${ROOT}/src/cli/loadgen.ts`, "--url", server.url, "--mix", "digits=1", "--seconds", "1"],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(bare.code, 2);
      assert.match(new TextDecoder().decode(bare.stderr), /is an app: give its JSON body with --body digits=FILE.json/);
      await Deno.remove(dir, { recursive: true });
    });

    await t.step("bad input gets a 400 that says what is wrong", async () => {
      const r = await invoke({ images: "no" });
      assert.equal(r.status, 400);
      assert.match(r.body.error, /images/);
      const tensors = await postJson(`${server.url}/v2/models/digits/infer`, { inputs: [] });
      assert.equal(tensors.status, 400);
      assert.match(tensors.body.error, /is an app/);
    });

    await t.step("a budget exhausted before a stage fails the request with 504 and the reason", async () => {
      const r = await invoke({ images: [testImage(1)], waitMs: 3100 });
      assert.equal(r.status, 504);
      assert.match(r.body.error, /stage digits \(function lenet\).*no budget left/);
    });

    await t.step("app code reads nothing outside its folder", async () => {
      const r = await invoke({ images: [], probe: "/etc/hostname" });
      assert.equal(r.status, 500);
      assert.match(r.body.error, /read access/i);
    });

    await t.step(
      "a stage's gpu-let killed mid-request: every request answered, none partial, then served again",
      async () => {
        const fns = await (await fetch(`${server.url}/admin/functions`)).json();
        const pid = fns.functions.find((f: JsonBody) => f.name === "lenet").gpulets[0].pid;
        const images = Array.from({ length: 8 }, (_, i) => testImage(200 + i));
        const inflight = Array.from({ length: 30 }, () => invoke({ images }));
        Deno.kill(pid, "SIGKILL");
        const answers = await Promise.all(inflight);
        for (const r of answers) {
          if (r.status === 200) assert.equal(r.body.labels.length, 8);
          else {
            assert.ok([503, 429].includes(r.status), `${r.status} ${JSON.stringify(r.body)}`);
            assert.match(r.body.error, /app digits|stage digits/);
          }
        }
        await waitFor(
          "the app served again",
          async () => (await invoke({ images: images.slice(0, 2) })).status === 200,
          60_000,
        );
      },
    );

    await t.step("an app of two levels gets the planner's split of its SLO, and runs its levels in order", async () => {
      await deploy(server, await makeFunctionFolder("chain", CHAIN_APP));
      const r = await postJson(`${server.url}/functions/chain/invoke`, { image: testImage(9) });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.first, r.body.second);
      let app: JsonBody;
      await waitFor("the planner's split", async () => {
        app = (await (await fetch(`${server.url}/admin/plan`)).json()).apps.find((a: JsonBody) => a.name === "chain");
        return app.budgetSource === "planner";
      });
      const [first, second] = app.stages;
      assert.equal(first.budgetMs + second.budgetMs, 2000);
      assert.equal(first.deadlineMs, first.budgetMs);
      assert.equal(second.deadlineMs, 2000);
    });

    await t.step("an app's tensor interface: each BYTES input a field, each field a BYTES output", async () => {
      await deploy(server, await makeFunctionFolder("tensors", TENSOR_APP));
      // "hi" takes 6 bytes as BYTES, so the second input starts after padding.
      const r = await postJson(`${server.url}/v2/models/tensors/infer`, {
        inputs: [
          { name: "greeting", datatype: "BYTES", shape: [1], data: ["hi"] },
          { name: "image", datatype: "BYTES", shape: [1], data: ["abcde"] },
        ],
      });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(r.body.outputs, [
        { name: "greeting", datatype: "BYTES", shape: [1], data: ["hi"] },
        { name: "size", datatype: "BYTES", shape: [1], data: ["5"] },
      ]);
    });

    await t.step("a deleted stage: the app answers 503 naming the missing function", async () => {
      const del = await fetch(`${server.url}/admin/functions/lenet`, { method: "DELETE" });
      assert.equal(del.status, 200);
      const r = await invoke({ images: [testImage(3)] });
      assert.equal(r.status, 503);
      assert.match(r.body.error, /stage digits needs function "lenet"/);
      const ready = await fetch(`${server.url}/v2/models/digits/ready`);
      assert.equal(ready.status, 503);
      await ready.body?.cancel();
    });
  } finally {
    await server.shutdown();
  }
});

Deno.test("game: deploying the app needs its stages; one request answers the scene and six digits", async () => {
  const server = await startTestServer();
  try {
    const refused = await fetch(`${server.url}/admin/functions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(
        await (await import("../../src/functions/bundle.ts")).bundleFolder(`${ROOT}/functions/game`),
      ),
    });
    assert.equal(refused.status, 400);
    assert.match(
      (await refused.json()).error,
      /stages' functions deployed first: scene → "resnet50", digits → "lenet"/,
    );
    await deploy(server, `${ROOT}/functions/resnet50`);
    await deploy(server, `${ROOT}/functions/lenet`);
    await deploy(server, `${ROOT}/functions/game`);
    const w = 192, h = 96;
    const data = new Uint8Array(w * h * 3).map((_, i) => (i * 7) % 256);
    const image = encodeBase64(encodePng({ width: w, height: h, data, channels: 3, depth: 8 }));
    const r = await postJson(`${server.url}/functions/game/invoke`, { image });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.scene.length, 5);
    assert.equal(r.body.digits.length, 6);
    assert.equal(r.body.score, r.body.digits.join(""));
    // Its stages run on generated weights: the app's answer says so.
    assert.equal(r.body.weights, "random");
    const bad = await postJson(`${server.url}/functions/game/invoke`, { image: "aGVsbG8=" });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error, /neither a PNG nor a JPEG/);
  } finally {
    await server.shutdown();
  }
});
