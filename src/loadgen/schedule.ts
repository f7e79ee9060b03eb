/**
 * Rate schedules: per function, the rate over time as steps and ramps, read from a CSV file with the columns
 * `time_s,function,rate[,shape]` (`shape` = `step`, the default: the rate jumps at `time_s`; or `ramp`: it
 * moves linearly from the previous point to this one). Before its first point a function's rate is 0.
 * Shared by the load generator and the simulator.
 */
import { type ColumnKind, parseCsv } from "../planner/csv.ts";

/** One point of a schedule. */
export interface SchedulePoint {
  time_s: number;
  function: string;
  rate: number;
  shape: "step" | "ramp";
}

const COLUMNS = {
  time_s: { type: "number", min: 0 },
  function: { type: "string", pattern: /^[a-z0-9][a-z0-9_-]{0,62}$/, what: "a function name" },
  rate: { type: "number", min: 0 },
  shape: { type: "string", pattern: /^(step|ramp)$/, what: "step or ramp", default: "step" },
} as const satisfies Record<string, ColumnKind>;

/** A schedule: points per function, in time order. */
export class Schedule {
  readonly byFunction: Map<string, SchedulePoint[]>;

  constructor(points: readonly SchedulePoint[]) {
    this.byFunction = new Map();
    for (const p of points) this.byFunction.set(p.function, [...(this.byFunction.get(p.function) ?? []), p]);
    for (const ps of this.byFunction.values()) ps.sort((a, b) => a.time_s - b.time_s);
  }

  /** Parses the CSV text; errors name the line and the column. */
  static parse(text: string, source = "schedule"): Schedule {
    return new Schedule(
      parseCsv(text, source, COLUMNS).map((r) => ({ ...r, shape: r.shape as SchedulePoint["shape"] })),
    );
  }

  /** Functions the schedule mentions. */
  functions(): string[] {
    return [...this.byFunction.keys()];
  }

  /** The rate of `fn` at `t` seconds. */
  rateAt(fn: string, t: number): number {
    const ps = this.byFunction.get(fn);
    if (!ps || ps.length === 0 || t < ps[0].time_s) return 0;
    let i = 0;
    while (i + 1 < ps.length && ps[i + 1].time_s <= t) i++;
    const next = ps[i + 1];
    if (next && next.shape === "ramp") {
      const f = (t - ps[i].time_s) / (next.time_s - ps[i].time_s);
      return ps[i].rate + f * (next.rate - ps[i].rate);
    }
    return ps[i].rate;
  }

  /** Last point in time (s). */
  end(): number {
    return Math.max(0, ...[...this.byFunction.values()].flatMap((ps) => ps.map((p) => p.time_s)));
  }

  /** Times (s) where some rate changes course: the boundaries of the schedule's phases. */
  boundaries(): number[] {
    return [...new Set([...this.byFunction.values()].flatMap((ps) => ps.map((p) => p.time_s)))].sort((a, b) => a - b);
  }
}
