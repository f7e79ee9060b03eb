/** Requests as admission sees them, and the one answer each gets. */
import type { OrtType } from "../functions/tensor.ts";
import type { WireTensor } from "../runtime/protocol.ts";

/**
 * The payload of a request: a JSON body for the function (its bytes as received: the gpu-let parses and
 * validates it, so the serving loop never does), or model input tensors.
 */
export type Payload =
  | { kind: "json"; body: Uint8Array }
  | { kind: "tensors"; inputs: WireTensor[]; bytes: Uint8Array[] };

/** An output tensor of an answered tensor request (data owned by the answer). */
export interface OutputTensor {
  name: string;
  type: OrtType;
  shape: number[];
  data: Uint8Array;
}

/** Where a request's time went, in ms. */
export interface Timing {
  /** Arrival until its batch was sent to a gpu-let (waiting for a batch to form and a gpu-let to be free). */
  queueMs: number;
  /** Sent until the gpu-let started on its batch (behind the batch before it, and the hand-over). */
  batchWaitMs: number;
  /** The gpu-let's time on the batch: pre-processing, model, post-processing. */
  workerMs: number;
  /** The model's execution of the batch. */
  computeMs: number;
  /** Arrival to answer. */
  totalMs: number;
  /** Rows in the batch it ran in. */
  batchRows: number;
}

/** A request that failed: `status` is the HTTP status to answer with. */
export interface ErrorAnswer {
  status: number;
  error: string;
  retryAfterS?: number;
  timing?: Timing;
}

/** The single answer every accepted request gets. */
export type Answer =
  /** `json`: the function's answer, serialised (UTF-8 JSON), owned by the answer. */
  | { status: 200; json: Uint8Array; timing: Timing }
  | { status: 200; outputs: OutputTensor[]; timing: Timing }
  | ErrorAnswer;

/** A queued request. */
export interface Pending {
  payload: Payload;
  rows: number;
  arrivedAt: number;
  deadline: number;
  resolve: (a: Answer) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
  /** Set once its batch was lost with a gpu-let and it was queued again (it is retried only once). */
  retried?: boolean;
}

/** Two queues, each in deadline order, as one. */
export function mergeByDeadline(a: Pending[], b: Pending[]): Pending[] {
  if (a.length === 0) return b;
  const out: Pending[] = [];
  let i = 0, j = 0;
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && a[i].deadline <= b[j].deadline)) out.push(a[i++]);
    else out.push(b[j++]);
  }
  return out;
}
