/**
 * Optional OpenTelemetry traces through Deno's built-in OpenTelemetry support: run the controller with
 * `OTEL_DENO=true` (and `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_PROTOCOL`, …) and Deno exports a
 * span per HTTP request; this module adds, as its children, where the request's time went in gpulet.
 * Without `OTEL_DENO` the OpenTelemetry API is a no-op and nothing here runs.
 */
import { context, trace } from "@opentelemetry/api";
import type { Timing } from "../admission/request.ts";

const tracer = trace.getTracer("gpulet");

function otelEnabled(): boolean {
  try {
    return Deno.env.get("OTEL_DENO") === "true";
  } catch {
    return false;
  }
}

/** True when traces are exported (read once). */
export const TRACING = otelEnabled();

/**
 * Records a served request's phases as child spans of the active HTTP span: `gpulet queue` (arrival → batch
 * sent), `gpulet batch wait` (→ the gpu-let starts on it), `gpulet worker` (pre-processing, model,
 * post-processing; the model's share as an attribute). `answeredAt` is the answer's time (ms since the epoch).
 */
export function traceRequest(fn: string, version: number, timing: Timing, answeredAt = Date.now()): void {
  if (!TRACING) return;
  const parent = trace.getActiveSpan();
  parent?.setAttributes({ "gpulet.function": fn, "gpulet.version": String(version) });
  const ctx = context.active();
  const start = answeredAt - timing.totalMs;
  const phase = (name: string, from: number, ms: number, attributes: Record<string, number> = {}) => {
    const span = tracer.startSpan(name, { startTime: from, attributes }, ctx);
    span.end(from + ms);
  };
  phase("gpulet queue", start, timing.queueMs);
  phase("gpulet batch wait", start + timing.queueMs, timing.batchWaitMs);
  phase("gpulet worker", start + timing.queueMs + timing.batchWaitMs, timing.workerMs, {
    "gpulet.compute_ms": timing.computeMs,
    "gpulet.batch_rows": timing.batchRows,
  });
}
