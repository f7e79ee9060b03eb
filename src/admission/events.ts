/** What a dispatcher reports as it works, for metrics and the dashboard. */
import type { Timing } from "./request.ts";

/** One executed batch, as observers see it. */
export interface BatchEvent {
  /** The gpu-let's executor id. */
  executor: string;
  rows: number;
  requests: number;
  /** Model execution (ms). */
  computeMs: number;
  /** The worker's whole time on the batch: pre-processing, model, post-processing (ms). */
  workerMs: number;
}

/** One answered request (every request gets exactly one). */
export interface AnswerEvent {
  status: number;
  /** Arrival to answer (ms); 0 for requests refused at the door. */
  totalMs: number;
  /** Answered 200 within its deadline. */
  withinSlo: boolean;
  timing?: Timing;
}

/** What a dispatcher reports, for metrics and the dashboard. */
export interface DispatchObserver {
  batch(e: BatchEvent): void;
  answer(e: AnswerEvent): void;
  /** Requests queued again after their gpu-let was lost. */
  retried?(requests: number): void;
}
