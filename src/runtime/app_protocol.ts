/**
 * Messages between the controller and an app process (frame headers; each frame's body is one JSON
 * document, UTF-8: a request body, a stage call's body, an answer).
 *
 * app → controller: `ready` once the app's code is imported and checked against its manifest, or `fatal`;
 * then `call` (a stage call of request `req`) and `answer` (request `req`'s answer, once).
 * controller → app: `invoke` (a request), `reply` (a stage call's answer), `stop`.
 */
import type { AppManifest } from "../functions/manifest.ts";

/** What an app process is told at start (its one command-line argument, JSON). */
export interface AppConfig {
  socket: string;
  name: string;
  /** The app's folder: the only files its code may read. */
  appDir: string;
  appFile: string;
  manifest: AppManifest;
}

export interface AppReadyMessage {
  type: "ready";
  pid: number;
}

export interface AppFatalMessage {
  type: "fatal";
  stage: "import" | "validate";
  error: string;
}

/** One stage call of request `req`; the body is the stage function's JSON request. */
export interface CallMessage {
  type: "call";
  req: number;
  call: number;
  stage: string;
}

/** Request `req`'s answer: the body is its JSON answer when `ok`. */
export type AnswerMessage =
  | { type: "answer"; req: number; ok: true }
  | { type: "answer"; req: number; ok: false; status: number; error: string };

/** A request: the body is the app's JSON request; `budgetMs` is what is left of its SLO as it is sent. */
export interface InvokeMessage {
  type: "invoke";
  req: number;
  budgetMs: number;
}

/** A stage call's answer: the body is the stage function's JSON answer when `ok`. */
export type ReplyMessage =
  | { type: "reply"; call: number; ok: true }
  | { type: "reply"; call: number; ok: false; status: number; error: string };

export type AppToController = AppReadyMessage | AppFatalMessage | CallMessage | AnswerMessage;
export type ControllerToApp = InvokeMessage | ReplyMessage | { type: "stop" };
