/**
 * Optional OpenTelemetry: `OTEL_DENO=true` makes Deno export a span per HTTP request, and gpulet adds the
 * request's queue, batch-wait and worker phases as its children. A small OTLP/HTTP receiver (JSON) stands in
 * for a collector.
 */
import assert from "node:assert/strict";
import { deploy, postJson, ROOT, startCli, testImage, waitFor } from "../helpers.ts";

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes?: { key: string; value: Record<string, unknown> }[];
}

Deno.test("OTEL_DENO=true: each request's span has gpulet queue, batch wait and worker children", async () => {
  const spans: OtlpSpan[] = [];
  const receiver = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const body = await req.json();
    if (new URL(req.url).pathname === "/v1/traces") {
      for (const rs of body.resourceSpans ?? []) for (const ss of rs.scopeSpans ?? []) spans.push(...ss.spans);
    }
    return Response.json({});
  });
  const state = await Deno.makeTempDir({ prefix: "gpulet-otel-" });
  const cli = await startCli(["--state", state], 0, {
    OTEL_DENO: "true",
    OTEL_SERVICE_NAME: "gpulet",
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.addr.port}`,
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
  });
  try {
    await deploy({ url: cli.url } as never, `${ROOT}/functions/lenet`);
    for (let i = 0; i < 3; i++) {
      assert.equal((await postJson(`${cli.url}/functions/lenet/invoke`, { image: testImage(i) })).status, 200);
    }
  } finally {
    // Spans still buffered are exported when the process ends.
    cli.child.kill("SIGTERM");
    await cli.child.status;
    await cli.done;
  }
  await waitFor("exported spans", () => spans.some((s) => s.name === "gpulet worker"), 10_000);
  await receiver.shutdown();

  const workers = spans.filter((s) => s.name === "gpulet worker");
  assert.equal(workers.length, 3, spans.map((s) => s.name).join(", "));
  for (const w of workers) {
    const parent = spans.find((s) => s.spanId === w.parentSpanId && s.traceId === w.traceId);
    assert.ok(parent, "the worker phase hangs off the HTTP request's span");
    const attr = (s: OtlpSpan, k: string) => s.attributes?.find((a) => a.key === k)?.value;
    assert.deepEqual(attr(parent!, "gpulet.function"), { stringValue: "lenet" });
    const siblings = spans.filter((s) => s.parentSpanId === parent!.spanId).map((s) => s.name).sort();
    assert.deepEqual(siblings, ["gpulet batch wait", "gpulet queue", "gpulet worker"]);
    assert.ok(Number((attr(w, "gpulet.compute_ms") as { doubleValue: number }).doubleValue) > 0);
    // The phases lie inside the request's span.
    const ns = (x: string) => BigInt(x);
    assert.ok(ns(w.startTimeUnixNano) >= ns(parent!.startTimeUnixNano) - 2_000_000n);
    assert.ok(ns(w.endTimeUnixNano) <= ns(parent!.endTimeUnixNano) + 2_000_000n);
  }
});
