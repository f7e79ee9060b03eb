/**
 * Simulated GPUs (`--devices sim:h100x8`): the controller, admission, planner and autoscaler run for real;
 * only a gpu-let's execute step is replaced by waiting as long as the profile says.
 *
 * A batch of b rows on a gpu-let of part p takes the profiled latency L(model, p, b), slowed by the
 * interference model for whatever the other gpu-lets of the same GPU run *while it runs*: every time a batch
 * starts or ends on a GPU, the speed of each running batch is recomputed from its current neighbours
 * (progress-based, so a batch that overlaps a neighbour for half its time is slowed for half its time), and
 * each batch's time spreads around the profile (lognormal, CV `DEFAULT_SPREAD`): the request-level simulator's model. A
 * gpu-let runs one batch at a time; the functions of a time-shared gpu-let take turns in arrival order.
 * `scale` dilates time: every latency (and, in the controller, every SLO) is multiplied by it.
 */
import type { InterferenceModel } from "../planner/interference.ts";
import { DEFAULT_SPREAD } from "./request_sim.ts";
import { meanOneLognormal } from "../loadgen/arrivals.ts";
import type { LatencyModel } from "../planner/latency_model.ts";
import type { BatchResult, Executor } from "../runtime/executor.ts";
import type { ItemResult, ModelInfo, RunItem } from "../runtime/protocol.ts";
import { zeroByteLength } from "../functions/tensor.ts";
import { parseJsonBytes } from "../runtime/json_body.ts";
import { concatBytes } from "../runtime/bytes.ts";

/** A batch running on a simulated GPU. */
interface Job {
  gpulet: SimGpulet;
  model: string;
  /** The gpu-let's part. */
  part: number;
  batch: number;
  /** Work left, in ms at full (solo) speed. */
  remaining: number;
  /** Fraction of solo speed it runs at now (1 / slowdown). */
  speed: number;
  done: () => void;
}

/** One simulated GPU: the batches running on it and the timer of the next one to finish. */
export class SimGpu {
  private readonly jobs = new Set<Job>();
  private last = performance.now();
  private timer?: ReturnType<typeof setTimeout>;

  constructor(readonly id: number, private readonly device: SimDevice) {}

  /** Batches running now. */
  get running(): number {
    return this.jobs.size;
  }

  /** Runs a batch to completion (resolves when its simulated time has passed). */
  execute(gpulet: SimGpulet, model: string, batch: number): Promise<void> {
    return new Promise((done) => {
      this.advance();
      // A batch's time spreads around the profile as on a real GPU (the request-level simulator's rule).
      const solo = this.device.soloMs(model, gpulet.part, batch) * meanOneLognormal(DEFAULT_SPREAD, Math.random);
      this.jobs.add({ gpulet, model, part: gpulet.part, batch, remaining: solo, speed: 1, done });
      this.reschedule();
    });
  }

  /** Moves every running batch forward to now at its current speed. */
  private advance(): void {
    const now = performance.now();
    const dt = now - this.last;
    this.last = now;
    for (const j of this.jobs) j.remaining -= dt * j.speed;
  }

  /** Finishes what is done, recomputes speeds against the current neighbours, arms the next wake-up. */
  private reschedule(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    for (const j of [...this.jobs]) {
      // Timers fire late by up to a millisecond or so; a batch this close to its end is done.
      if (j.remaining <= 0.05) {
        this.jobs.delete(j);
        j.done();
      }
    }
    let next = Infinity;
    for (const j of this.jobs) {
      j.speed = 1 / this.slowdown(j);
      next = Math.min(next, j.remaining / j.speed);
    }
    if (Number.isFinite(next)) {
      this.timer = setTimeout(() => {
        this.advance();
        this.reschedule();
      }, Math.max(0, next));
    }
  }

  /** Slowdown of a batch from the batches its neighbours (other gpu-lets) run now: the simulators' rule. */
  private slowdown(j: Job): number {
    const interference = this.device.interference;
    if (!interference) return 1;
    // A gpu-let runs one batch at a time, so each other job is another gpu-let; gpu-lets have no lifetime
    // here, so the clients that count are those running now.
    const others = [...this.jobs].filter((o) => o.gpulet !== j.gpulet);
    return interference.concurrent(j, others, others.length);
  }
}

/** A gpu-let of a simulated GPU: one batch at a time, its functions taking turns. */
export class SimGpulet {
  private tail: Promise<void> = Promise.resolve();

  constructor(readonly gpu: SimGpu, readonly part: number) {}

  /** Queues a batch behind the gpu-let's current work; resolves with the time it took (ms). */
  run(model: string, batch: number): Promise<number> {
    const start = this.tail.then(() => performance.now());
    const end = start.then((t0) => this.gpu.execute(this, model, batch).then(() => performance.now() - t0));
    this.tail = end.then(() => {}, () => {});
    return end;
  }
}

/** Options of a simulated device set. */
export interface SimDeviceOptions {
  /** Profile name, e.g. `h100`. */
  profile: string;
  gpus: number;
  latency: LatencyModel;
  interference?: InterferenceModel;
  /** Time dilation: every simulated latency is multiplied by it. */
  scale: number;
}

/** N simulated GPUs driven by a profile and the interference model. */
export class SimDevice {
  readonly gpus: SimGpu[];
  private seq = 0;

  constructor(readonly opts: SimDeviceOptions) {
    this.gpus = Array.from({ length: opts.gpus }, (_, i) => new SimGpu(i, this));
  }

  get interference(): InterferenceModel | undefined {
    return this.opts.interference;
  }

  /** Solo latency (ms, dilated) of `batch` rows; batches beyond the profile scale linearly from its largest. */
  soloMs(model: string, part: number, batch: number): number {
    const batches = this.opts.latency.batches(model);
    const max = batches[batches.length - 1];
    const b = Math.max(batches[0], Math.min(max, batch));
    const ms = this.opts.latency.latency(model, part, b) * (batch > max ? batch / max : 1);
    return ms * this.opts.scale;
  }

  /** A new gpu-let of `part` % on GPU `gpu`. */
  gpulet(gpu: number, part: number): SimGpulet {
    if (!(gpu >= 0 && gpu < this.gpus.length)) throw new RangeError(`no simulated GPU ${gpu}`);
    return new SimGpulet(this.gpus[gpu], part);
  }

  /** A function's handle on a simulated gpu-let. */
  executor(gpulet: SimGpulet, model: string, info: ModelInfo, name: string): SimExecutor {
    return new SimExecutor(`sim-${name}-${this.seq++}`, gpulet, model, info, this);
  }
}

/** What a simulated JSON function answers: at the start of every result body, zero tensors after it. */
const SIMULATED_ANSWER = new TextEncoder().encode('{"simulated":true}');
const TENSORS_AT = 24;

/** A result body: the simulated JSON answer, then `tensorBytes` zero bytes from {@link TENSORS_AT}. */
function answerBody(tensorBytes: number): Uint8Array {
  const out = new Uint8Array(TENSORS_AT + tensorBytes);
  out.set(SIMULATED_ANSWER, 0);
  return out;
}

/** Rows of one request as the worker would count them: the leading dim of its first tensor, else 1. */
function rowsOf(item: RunItem): number {
  return item.kind === "tensors" ? Math.max(1, item.inputs[0]?.shape[0] ?? 1) : 1;
}

/**
 * One function on a simulated gpu-let. Answers carry zero-filled outputs of the model's output shapes
 * (tensor requests) or `{ "simulated": true }` (JSON requests); the controller marks them simulated.
 */
export class SimExecutor implements Executor {
  readonly pid = 0;
  readonly simulated = true;
  inflight = 0;
  stopping = false;
  private dead = false;
  readonly warmLatencyMs: Record<string, number>;
  readonly exited: Promise<{ code: number; signal: string | null }>;
  private markExited!: (s: { code: number; signal: string | null }) => void;

  constructor(
    readonly id: string,
    readonly gpulet: SimGpulet,
    readonly profileModel: string,
    readonly model: ModelInfo,
    private readonly device: SimDevice,
  ) {
    this.exited = new Promise((r) => (this.markExited = r));
    // What warm-up would have measured: solo latency at the profiled batches.
    this.warmLatencyMs = Object.fromEntries(
      device.opts.latency.batches(profileModel).map((b) => [b, device.soloMs(profileModel, gpulet.part, b)]),
    );
  }

  async run(items: RunItem[], body: Uint8Array[]): Promise<BatchResult> {
    if (this.dead) throw new Error(`simulated gpu-let ${this.id} has ended`);
    const rows = items.reduce((n, i) => n + rowsOf(i), 0);
    this.inflight++;
    let ms: number;
    try {
      ms = await this.gpulet.run(this.profileModel, rows);
    } finally {
      this.inflight--;
    }
    if (this.dead) throw new Error(`simulated gpu-let ${this.id} was killed`);
    // JSON bodies are parsed as a worker would (a malformed one gets its 400); the answer is a marker.
    // Joined only for a batch that has JSON items: tensor bytes are never read here.
    let sent: Uint8Array | undefined;
    let bytes = 0;
    const results: ItemResult[] = items.map((item) => {
      if (item.kind === "json") {
        sent ??= concatBytes(body);
        try {
          parseJsonBytes(sent.subarray(item.body.offset, item.body.offset + item.body.bytes));
        } catch (e) {
          return { id: item.id, ok: false, status: 400, error: e instanceof Error ? e.message : String(e) };
        }
        return { id: item.id, ok: true, json: { offset: 0, bytes: SIMULATED_ANSWER.byteLength } };
      }
      const r = rowsOf(item);
      const outputs = this.model.outputs.map((o) => {
        const shape = o.shape.map((d, i) => (i === 0 && d === -1 ? r : Math.max(1, d)));
        const n = zeroByteLength(o.type, shape.reduce((a, b) => a * b, 1));
        bytes = Math.max(bytes, n);
        return { name: o.name, type: o.type, shape, offset: TENSORS_AT, bytes: n };
      });
      return { id: item.id, ok: true, outputs };
    });
    return {
      type: "result",
      batchId: 0,
      items: results,
      rows,
      computeMs: ms,
      workerMs: ms,
      body: answerBody(bytes),
    };
  }

  async stop(): Promise<void> {
    this.stopping = true;
    while (this.inflight > 0 && !this.dead) await new Promise((r) => setTimeout(r, 2));
    this.dead = true;
    this.markExited({ code: 0, signal: null });
  }

  /** Ends it as a crash would: batches in flight fail. */
  kill(): void {
    this.dead = true;
    this.markExited({ code: 137, signal: "SIGKILL" });
  }
}
