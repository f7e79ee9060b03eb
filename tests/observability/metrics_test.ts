/**
 * Observability: `/metrics` parses as Prometheus text and serves Triton's inference metrics with Triton's
 * meanings (labelled by model and version) next to gpulet's own; every answer says where its time went.
 */
import assert from "node:assert/strict";
import parsePrometheus from "parse-prometheus-text-format";
import { deploy, modelFunctionFolder, postJson, ROOT, startTestServer, testImage } from "../helpers.ts";

/** Samples of a scrape: `name{labels}` → value, for lookups like `nv_inference_count{model="lenet",version="1"}`. */
async function scrape(url: string): Promise<{ families: Map<string, string>; value: (sample: string) => number }> {
  const res = await fetch(`${url}/metrics`);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  const parsed = parsePrometheus(await res.text()) as {
    name: string;
    type: string;
    metrics: { value?: string; labels?: Record<string, string> }[];
  }[];
  const families = new Map(parsed.map((f) => [f.name, f.type]));
  const samples = new Map<string, number>();
  for (const f of parsed) {
    for (const m of f.metrics) {
      if (m.value === undefined) continue;
      const labels = Object.entries(m.labels ?? {}).sort(([a], [b]) => a.localeCompare(b))
        .map(([k, v]) => `${k}="${v}"`).join(",");
      samples.set(labels ? `${f.name}{${labels}}` : f.name, Number(m.value));
    }
  }
  return { families, value: (sample) => samples.get(sample) ?? 0 };
}

Deno.test("/metrics: Triton's nv_inference_* with Triton's meanings, gpulet's own, timing on every answer", async () => {
  const server = await startTestServer({ maxQueueRows: 4 });
  try {
    await deploy(server, `${ROOT}/functions/lenet`);
    const invoke = `${server.url}/functions/lenet/invoke`;
    // 10 single requests, one OIP request of 3 rows, 2 bad requests (400: not counted as inferences).
    for (let i = 0; i < 10; i++) assert.equal((await postJson(invoke, { image: testImage(i) })).status, 200);
    const oip = await fetch(`${server.url}/v2/models/lenet/infer`, {
      method: "POST",
      body: JSON.stringify({
        inputs: [{ name: "input", datatype: "FP32", shape: [3, 1, 28, 28], data: new Array(3 * 784).fill(0.5) }],
      }),
    });
    assert.equal(oip.status, 200);
    const oipBody = await oip.json();
    assert.equal((await postJson(invoke, { image: [1] })).status, 400);

    // Per-request timing: the Server-Timing header and the OIP parameters.
    const p = oipBody.parameters;
    for (const k of ["queue_ms", "batch_wait_ms", "worker_ms", "compute_ms"]) assert.ok(p[k] >= 0, k);
    assert.equal(p.batch_rows, 3);
    assert.ok(p.compute_ms <= p.worker_ms, "the model runs inside the worker's time");
    const t0 = performance.now();
    const timed = await fetch(invoke, { method: "POST", body: JSON.stringify({ image: testImage(1) }) });
    const clientMs = performance.now() - t0;
    await timed.body?.cancel();
    const serverTiming = timed.headers.get("server-timing") ?? "";
    assert.match(
      serverTiming,
      /^queue;dur=[0-9.]+, batch-wait;dur=[0-9.]+, compute;dur=[0-9.]+, worker;dur=[0-9.]+, total;dur=[0-9.]+, batch;desc="1"$/,
    );
    const h = (k: string) => Number(serverTiming.match(new RegExp(`(?:^|, )${k};dur=([0-9.]+)`))![1]);
    assert.ok(h("queue") + h("batch-wait") + h("worker") <= clientMs, "the parts fit in what the client saw");
    assert.ok(h("queue") + h("batch-wait") + h("worker") <= h("total") + 0.01, "the parts fit in the total");
    assert.ok(h("compute") > 0 && h("compute") <= h("worker"));

    const { families, value } = await scrape(server.url);
    const lenet = 'model="lenet",version="1"';
    for (
      const name of [
        "nv_inference_request_success",
        "nv_inference_request_failure",
        "nv_inference_count",
        "nv_inference_exec_count",
        "nv_inference_request_duration_us",
        "nv_inference_queue_duration_us",
        "nv_inference_compute_infer_duration_us",
      ]
    ) assert.equal(families.get(name), "COUNTER", name);
    assert.equal(families.get("nv_inference_pending_request_count"), "GAUGE");
    // Request count 12 (11 + the timed one); inference count counts rows: 11 single images + 3.
    assert.equal(value(`nv_inference_request_success{${lenet}}`), 12);
    assert.equal(value(`nv_inference_count{${lenet}}`), 14);
    const execs = value(`nv_inference_exec_count{${lenet}}`);
    assert.ok(execs >= 1 && execs <= 12, `exec count ${execs}`);
    const requestUs = value(`nv_inference_request_duration_us{${lenet}}`);
    const queueUs = value(`nv_inference_queue_duration_us{${lenet}}`);
    const computeUs = value(`nv_inference_compute_infer_duration_us{${lenet}}`);
    assert.ok(computeUs > 0 && queueUs >= 0, `${computeUs} ${queueUs}`);
    assert.ok(queueUs + computeUs <= requestUs, "queue and compute are parts of the request's duration");
    assert.equal(value(`nv_inference_pending_request_count{${lenet}}`), 0);
    assert.equal(value('gpulet_requests_total{code="200",function="lenet"}'), 12);
    assert.equal(value('gpulet_requests_total{code="400",function="lenet"}'), 1);
    assert.equal(value('gpulet_requests_within_slo_total{function="lenet"}'), 12);

    // A burst beyond the queue: 429s are Triton's REJECTED failures; attainment counts them against.
    await deploy(server, `${ROOT}/tests/fixtures/functions/sleepy`);
    const burst = await Promise.all(
      Array.from(
        { length: 20 },
        (_, i) => postJson(`${server.url}/functions/sleepy/invoke`, { delayMs: 30, value: i }),
      ),
    );
    const shed = burst.filter((b) => b.status === 429).length;
    assert.ok(shed > 0);
    // The live window counts whole seconds: let this one end.
    await new Promise((r) => setTimeout(r, 1100));
    const after = await scrape(server.url);
    assert.equal(after.value('nv_inference_request_failure{model="sleepy",reason="REJECTED",version="1"}'), shed);
    const attainment = after.value('gpulet_slo_attainment{function="sleepy"}');
    assert.ok(attainment > 0 && attainment < 1, `attainment ${attainment}`);
    assert.ok(Math.abs(attainment - (20 - shed) / 20) < 0.1, `attainment ${attainment} vs ${(20 - shed) / 20}`);
    assert.equal(after.value('gpulet_slo_attainment{function="lenet"}'), 1);
    assert.ok(after.value('gpulet_function_rate{function="sleepy",kind="measured"}') > 0);
  } finally {
    await server.shutdown();
  }
});

Deno.test("/metrics on sim:h100x4: GPUs in use, the plan's gpu-lets and parts, planned and measured rates", async () => {
  const server = await startTestServer({ devices: "sim:h100x4", simScale: 50 });
  try {
    await deploy(server, await modelFunctionFolder("bert", "bert", 20));
    await deploy(server, await modelFunctionFolder("lenet", "lenet", 1));
    const plan = await (await fetch(`${server.url}/admin/plan`)).json();
    const { families, value } = await scrape(server.url);
    assert.equal(families.get("gpulet_gpus_in_use"), "GAUGE");
    assert.equal(value("gpulet_gpus_in_use"), plan.gpusInUse);
    let planned = 0;
    for (const g of plan.gpus) {
      g.gpulets.forEach((l: { part: number; functions: { name: string; rate: number }[] }, i: number) => {
        const fns = l.functions.map((f) => f.name).join(",");
        assert.equal(value(`gpulet_gpulet_part_percent{functions="${fns}",gpu="${g.id}",gpulet="${i}"}`), l.part);
        // Planned in profile time; the gauge says real requests/s (÷ the time scale, 50).
        planned += l.functions.filter((f) => f.name === "bert").reduce((n, f) => n + f.rate / 50, 0);
      });
    }
    assert.ok(planned > 0);
    assert.ok(Math.abs(value('gpulet_function_rate{function="bert",kind="planned"}') - planned) < 1e-6);
    assert.equal(value('gpulet_function_rate{function="bert",kind="measured"}'), 0);
    assert.equal(families.get("gpulet_replans_total"), "COUNTER");
  } finally {
    await server.shutdown();
  }
});
