/**
 * One live version of an application: its app process (the app's code, sandboxed), its stages' budgets, and
 * the routing of its stage calls into the stage functions' own dispatchers. Every app request gets exactly
 * one answer: the app's, or the first failure of one of its stages (never a partial answer passed off as
 * whole), or 504 when it runs past its deadline.
 */
import type { Answer, Timing } from "../admission/request.ts";
import type { DispatchObserver } from "../admission/events.ts";
import type { AppRecord } from "../functions/registry.ts";
import type { AppStageManifest } from "../functions/manifest.ts";
import { stageLevels } from "../functions/app.ts";
import { AppProcess } from "../runtime/app_process.ts";
import type { CallMessage } from "../runtime/app_protocol.ts";
import type { Deployment } from "./deployment.ts";

/** Weight of the newest request in a stage's measured fan-out (calls per app request, an EWMA). */
const FAN_OUT_ALPHA = 0.05;
/** An app request unanswered this long after its deadline (ms, at least) means its code hangs: 504. */
const HANG_GRACE_MIN_MS = 1_000;
/** Restarts of a dead app process are this far apart at least (ms). */
const RESTART_DELAY_MS = 200;

export interface AppDeploymentOptions {
  runtimeDir: string;
  startTimeoutMs?: number;
  log: (line: string) => void;
  /** SLOs are multiplied by this (simulated devices with dilated time). Default 1. */
  sloScale?: number;
  /** The live deployment of a function, if any: where stage calls go. */
  functionNamed: (name: string) => Deployment | undefined;
  /** App requests in flight at most; beyond it requests get 429. */
  maxInflight: number;
  observer?: DispatchObserver;
  /** Called on every app request submitted, admitted or not (the autoscaler's demand). */
  onArrival?: (name: string) => void;
}

/** A stage as the running app sees it. */
export interface StageState extends AppStageManifest {
  level: number;
  /** Measured calls per app request (EWMA), starting from the declared fan-out. */
  measuredFanOut: number;
}

/** One app request in flight. */
interface Flight {
  deadline: number;
  /** Calls per stage so far. */
  calls: Map<string, number>;
  /** Aborted once the request is answered otherwise than 200: its stage calls still queued leave their queues. */
  stageCalls: AbortController;
  done: boolean;
  finish: (a: Answer) => void;
}

/** A failed stage's status as the app's answer: its own for overload and deadlines, 502 for a broken stage. */
function appStatus(stageStatus: number): number {
  return stageStatus === 429 || stageStatus === 503 || stageStatus === 504 ? stageStatus : 502;
}

export class AppDeployment {
  readonly stages: StageState[];
  /** Each level's budget (ms, undilated): the planner's split, else the SLO split evenly over the levels. */
  budgetsMs: number[];
  /** Where the budgets came from. */
  budgetSource: "even" | "planner" = "even";
  private process?: AppProcess;
  private starting?: Promise<void>;
  private readonly flights = new Map<number, Flight>();
  private nextReq = 1;
  private stopped = false;
  /** Requests since the rate was last read, and since when. */
  private arrivals = 0;
  /** Called when the last request in flight is answered (a stopping app waits for it). */
  private drained?: () => void;
  private arrivalsSince = performance.now();

  constructor(readonly record: AppRecord, private readonly opts: AppDeploymentOptions) {
    const m = record.manifest;
    const byName = Object.fromEntries(m.stages.map((s) => [s.name, s]));
    const levels = stageLevels(byName);
    this.stages = m.stages.map((s) => ({
      ...s,
      level: levels.findIndex((l) => l.includes(s.name)),
      measuredFanOut: s.fanOut,
    }));
    this.budgetsMs = levels.map(() => m.sloMs / levels.length);
  }

  get name(): string {
    return this.record.name;
  }

  get version(): number {
    return this.record.version;
  }

  /** Number of levels (stages of one level run side by side). */
  get levels(): number {
    return this.budgetsMs.length;
  }

  /** The app's deadline (ms): its SLO, dilated on simulated devices. */
  get deadlineMs(): number {
    return this.record.manifest.sloMs * (this.opts.sloScale ?? 1);
  }

  /** True while its process runs and every stage's function is deployed and ready. */
  get ready(): boolean {
    return this.process !== undefined && this.missingStage() === undefined;
  }

  /** True while its process runs (whether its stages' functions are deployed or not). */
  get running(): boolean {
    return this.process !== undefined;
  }

  /** The first stage whose function is not deployed (or not ready), if any. */
  private missingStage(): StageState | undefined {
    return this.stages.find((s) => !this.opts.functionNamed(s.function)?.ready);
  }

  /** Starts the app process; throws a `WorkerStartError` when its code cannot be loaded. */
  async start(): Promise<void> {
    this.process = await AppProcess.start({
      id: `${this.name}-v${this.version}`,
      config: {
        name: this.name,
        appDir: this.record.dir,
        appFile: `${this.record.dir}/function.ts`,
        manifest: this.record.manifest,
      },
      runtimeDir: this.opts.runtimeDir,
      startTimeoutMs: this.opts.startTimeoutMs,
      onCall: (call, body) => this.onCall(call, body),
    });
    this.watch(this.process);
  }

  /** Restarts the process when it dies (its requests were failed with 503 by then). */
  private watch(p: AppProcess): void {
    p.exited.then(async (status) => {
      if (p.stopping || this.stopped) return;
      this.opts.log(`app ${this.name} v${this.version}: process died (${status.signal ?? status.code}), restarting`);
      this.process = undefined;
      await new Promise((r) => setTimeout(r, RESTART_DELAY_MS));
      if (this.stopped) return;
      this.starting = this.start().catch((e) => this.opts.log(`app ${this.name}: restart failed: ${e.message}`));
      await this.starting;
      this.starting = undefined;
    });
  }

  /** Sets each level's budget (ms, undilated; they add up to the SLO). */
  setBudgets(budgetsMs: number[], source: "even" | "planner"): void {
    if (budgetsMs.length !== this.levels) throw new RangeError(`app ${this.name} has ${this.levels} levels`);
    this.budgetsMs = budgetsMs;
    this.budgetSource = source;
  }

  /** The deadline of a call of `stage` for a request due at `deadline`: the later levels keep their budgets. */
  private stageDeadline(stage: StageState, deadline: number): number {
    return deadline - this.laterBudgetsMs(stage.level) * (this.opts.sloScale ?? 1);
  }

  /** What the levels after `level` keep of the SLO (ms, undilated). */
  private laterBudgetsMs(level: number): number {
    return this.budgetsMs.slice(level + 1).reduce((a, b) => a + b, 0);
  }

  /** App requests in flight. */
  get inflight(): number {
    return this.flights.size;
  }

  /**
   * Answers 429 at the door when the stages' queues already say the request cannot make its SLO: level by
   * level, the slowest stage's expected time (its queue, then a batch) for its expected calls.
   */
  private hopeless(): string | undefined {
    let total = 0;
    const parts: string[] = [];
    for (let l = 0; l < this.levels; l++) {
      let worst = 0;
      let worstName = "";
      for (const s of this.stages.filter((s) => s.level === l)) {
        const dep = this.opts.functionNamed(s.function)!;
        const ms = dep.dispatcher.expectedMs(Math.max(1, Math.round(s.measuredFanOut)));
        if (ms >= worst) [worst, worstName] = [ms, s.name];
      }
      total += worst;
      parts.push(`${worstName} ~${worst.toFixed(0)} ms`);
    }
    if (total <= this.deadlineMs) return undefined;
    return `app ${this.name} cannot meet its SLO of ${this.deadlineMs} ms now: its stages need ${
      parts.join(", then ")
    }`;
  }

  /**
   * Runs one app request (its JSON body as received); resolves with its one answer. When `signal` aborts (its
   * client went away) the request is answered 499 and its stage calls that have not run leave their queues.
   */
  invoke(body: Uint8Array, signal?: AbortSignal): Promise<Answer> {
    this.opts.onArrival?.(this.name);
    this.arrivals++;
    const refuse = (status: number, error: string, retryAfterS?: number): Promise<Answer> => {
      this.opts.observer?.answer({ status, totalMs: 0, withinSlo: false });
      return Promise.resolve({ status, error, ...(retryAfterS ? { retryAfterS } : {}) });
    };
    if (signal?.aborted) return refuse(499, "client closed the request");
    if (this.stopped) return refuse(503, `app ${this.name} v${this.version} was stopped`);
    const missing = this.missingStage();
    if (missing) {
      return refuse(
        503,
        `app ${this.name}: stage ${missing.name} needs function "${missing.function}", which is not deployed or not ready`,
        1,
      );
    }
    const process = this.process;
    if (!process) return refuse(503, `app ${this.name} is restarting its process`, 1);
    if (this.flights.size >= this.opts.maxInflight) {
      return refuse(429, `app ${this.name} has ${this.flights.size} requests in flight, its limit`, 1);
    }
    const hopeless = this.hopeless();
    if (hopeless) return refuse(429, hopeless, 1);

    const req = this.nextReq++;
    const arrivedAt = performance.now();
    const deadline = arrivedAt + this.deadlineMs;
    return new Promise<Answer>((resolve) => {
      const hangAfter = this.deadlineMs + Math.max(HANG_GRACE_MIN_MS, this.deadlineMs);
      const timer = setTimeout(() => {
        flight.finish({
          status: 504,
          error: `app ${this.name} gave no answer within ${hangAfter.toFixed(0)} ms (SLO ${this.deadlineMs} ms)`,
        });
      }, hangAfter);
      const onAbort = () => flight.finish({ status: 499, error: "client closed the request" });
      const flight: Flight = {
        deadline,
        calls: new Map(),
        stageCalls: new AbortController(),
        done: false,
        finish: (a) => {
          if (flight.done) return;
          flight.done = true;
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          // A failed or abandoned request needs none of its other stage calls: no worker time on them.
          if (a.status !== 200) flight.stageCalls.abort();
          this.flights.delete(req);
          if (this.flights.size === 0) this.drained?.();
          process.forget(req);
          const totalMs = performance.now() - arrivedAt;
          this.opts.observer?.answer({
            status: a.status,
            totalMs,
            withinSlo: a.status === 200 && totalMs <= this.deadlineMs,
          });
          if (a.status === 200) this.noteFanOut(flight.calls);
          resolve(a);
        },
      };
      this.flights.set(req, flight);
      signal?.addEventListener("abort", onAbort, { once: true });
      process.invoke(req, body, this.deadlineMs).then((r) => {
        const timing: Timing = {
          queueMs: 0,
          batchWaitMs: 0,
          workerMs: 0,
          computeMs: 0,
          totalMs: performance.now() - arrivedAt,
          batchRows: 1,
        };
        flight.finish(r.ok ? { status: 200, json: r.json, timing } : { status: r.status, error: r.error, timing });
      });
    });
  }

  /** App requests/s since the last call (admitted or not: the demand), and restarts the count. */
  takeRate(now = performance.now()): number {
    const rate = this.arrivals / Math.max(1e-3, (now - this.arrivalsSince) / 1000);
    this.arrivals = 0;
    this.arrivalsSince = now;
    return rate;
  }

  /** A completed request's calls per stage update the measured fan-outs. */
  private noteFanOut(calls: Map<string, number>): void {
    for (const s of this.stages) {
      s.measuredFanOut += FAN_OUT_ALPHA * ((calls.get(s.name) ?? 0) - s.measuredFanOut);
    }
  }

  /** A stage call from the app's code: into the stage function's dispatcher, with the stage's deadline. */
  private onCall(call: CallMessage, body: Uint8Array): void {
    const p = this.process;
    const flight = this.flights.get(call.req);
    const fail = (status: number, error: string) =>
      p?.reply({ type: "reply", call: call.call, ok: false, status, error });
    if (!flight || flight.done) return fail(409, "the app request was answered already");
    const stage = this.stages.find((s) => s.name === call.stage);
    if (!stage) return fail(500, `the app has no stage "${call.stage}"`);
    flight.calls.set(stage.name, (flight.calls.get(stage.name) ?? 0) + 1);
    const failApp = (status: number, error: string) => {
      const message =
        `app ${this.name}: stage ${stage.name} (function ${stage.function}) failed with ${status}: ${error}`;
      flight.finish({ status: appStatus(status), error: message, ...(status === 429 ? { retryAfterS: 1 } : {}) });
      fail(status, message);
    };
    const dep = this.opts.functionNamed(stage.function);
    if (!dep) return failApp(503, `function "${stage.function}" is not deployed`);
    const now = performance.now();
    const deadline = this.stageDeadline(stage, flight.deadline);
    if (deadline <= now) {
      return failApp(504, `no budget left: the app's deadline leaves this stage ${(deadline - now).toFixed(1)} ms`);
    }
    dep.submit({ kind: "json", body }, 1, flight.stageCalls.signal, now, deadline - now).then((a) => {
      if ("error" in a) return failApp(a.status, a.error);
      if (!("json" in a)) return failApp(500, "the stage answered tensors");
      if (!flight.done) p?.reply({ type: "reply", call: call.call, ok: true }, a.json);
    });
  }

  /** Serves what was accepted (up to `drainTimeoutMs`), then stops the process. */
  async stop(drainTimeoutMs = 30_000): Promise<void> {
    this.stopped = true;
    if (this.flights.size > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        new Promise<void>((r) => (this.drained = r)),
        new Promise((r) => (timer = setTimeout(r, drainTimeoutMs))),
      ]);
      clearTimeout(timer);
    }
    for (const f of [...this.flights.values()]) f.finish({ status: 503, error: `app ${this.name} was stopped` });
    await this.starting;
    await this.process?.stop();
  }

  /** The app as `/admin/plan` and `/admin/functions` show it. */
  describe() {
    const scale = this.opts.sloScale ?? 1;
    return {
      name: this.name,
      version: this.version,
      sloMs: this.record.manifest.sloMs,
      ready: this.ready,
      inflight: this.inflight,
      pid: this.process?.pid ?? 0,
      budgetSource: this.budgetSource,
      stages: this.stages.map((s) => ({
        name: s.name,
        function: s.function,
        after: s.after,
        level: s.level,
        budgetMs: this.budgetsMs[s.level],
        deadlineMs: (this.record.manifest.sloMs - this.laterBudgetsMs(s.level)) * scale,
        fanOut: s.fanOut,
        measuredFanOut: Math.round(s.measuredFanOut * 100) / 100,
        deployed: this.opts.functionNamed(s.function) !== undefined,
      })),
    };
  }
}
