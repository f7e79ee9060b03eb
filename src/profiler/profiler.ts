/**
 * The profiler: latency per (model, part, batch) and co-location slowdowns, measured on this machine's device
 * with real gpu-let workers. On a CPU device a part is a share of the cores: part p % of N cores is
 * round(p·N/100) cores, taken from the highest-numbered core down (core 0 also runs the controller).
 *
 * Results are written after every point, so an interrupted run resumes where it stopped.
 */
import { formatCsv, parseCsv } from "../planner/csv.ts";
import { PROFILE_COLUMNS, type ProfileRow } from "../planner/latency_model.ts";
import { PAIR_COLUMNS, type PairRow } from "../planner/pairs.ts";
import { GpuletProbe } from "./gpulet_probe.ts";

/** Cores of a CPU part: `part` % of `coreCount` cores, highest-numbered first. */
export function coresForPart(part: number, coreCount: number): number[] {
  const k = Math.round((part * coreCount) / 100);
  if (k < 1 || k > coreCount) throw new Error(`part ${part} % is not a whole number of ${coreCount} cores`);
  return Array.from({ length: k }, (_, i) => coreCount - k + i);
}

/** The parts a CPU device supports: one per core count. */
export function cpuParts(coreCount: number): number[] {
  return Array.from({ length: coreCount }, (_, i) => Math.round((100 * (i + 1)) / coreCount));
}

/** Median of a non-empty list. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Formats seconds as "1h02m", "3m05s" or "42s". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${s}s`;
}

/** Where a probe gpu-let of a part runs: pinned cores (CPU) or a GPU share given by its environment (CUDA). */
export interface Placement {
  cores: number[];
  env?: Record<string, string>;
  cuda?: boolean;
  /** For progress lines, e.g. `cores 1` or `MPS 50 % of GPU 0`. */
  label: string;
}

/** CPU placement: `part` % of the cores, highest-numbered first. */
export function cpuPlacement(coreCount: number): (part: number) => Placement {
  return (part) => {
    const cores = coresForPart(part, coreCount);
    return { cores, label: `cores ${cores.join(",")}` };
  };
}

export interface ProfileOptions {
  models: string[];
  parts: number[];
  batches: number[];
  /** Timed runs per point (after one untimed warm-up run); fewer when a point runs past `maxPointSeconds`. */
  reps: number;
  maxPointSeconds: number;
  coreCount: number;
  /** Where a part runs; default {@link cpuPlacement}. */
  placement?: (part: number) => Placement;
  modelFile: (model: string) => string;
  /** Relative cost of one sample of a model (e.g. its MACs), for the time-left estimate. */
  cost: (model: string) => number;
  runtimeDir: string;
  outFile: string;
  progress: (line: string) => void;
}

async function readExisting<T>(path: string, parse: (text: string) => T[]): Promise<T[]> {
  try {
    return parse(await Deno.readTextFile(path));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}

async function writeAtomically(path: string, text: string): Promise<void> {
  await Deno.writeTextFile(`${path}.tmp`, text);
  await Deno.rename(`${path}.tmp`, path);
}

const PROFILE_HEADER = Object.keys(PROFILE_COLUMNS);

/** Measures the solo latency table; returns every row of the (possibly resumed) output file. */
export async function profileLatency(o: ProfileOptions): Promise<ProfileRow[]> {
  const rows = await readExisting(o.outFile, (t) => parseCsv(t, o.outFile, PROFILE_COLUMNS));
  const done = new Set(rows.map((r) => `${r.model},${r.part},${r.batch}`));
  const todo = o.models.flatMap((model) =>
    o.parts.map((part) => ({ model, part, batches: o.batches.filter((b) => !done.has(`${model},${part},${b}`)) }))
  ).filter((t) => t.batches.length > 0);
  if (rows.length) o.progress(`resuming: ${rows.length} points already in ${o.outFile}`);
  // Work of a point for the time-left estimate: per-sample cost plus a fixed per-run overhead.
  const work = (t: { model: string; part: number }, b: number) => ((o.cost(t.model) * b + 2e7) * (o.reps + 1)) / t.part;
  let remaining = todo.reduce((s, t) => s + t.batches.reduce((x, b) => x + work(t, b), 0), 0);
  let spentWork = 0;
  const started = performance.now();
  const total = todo.reduce((s, t) => s + t.batches.length, 0);
  let n = 0;
  for (const t of todo) {
    const place = (o.placement ?? cpuPlacement(o.coreCount))(t.part);
    const probe = await GpuletProbe.start({
      model: t.model,
      modelFile: o.modelFile(t.model),
      ...place,
      runtimeDir: o.runtimeDir,
      warmBatch: t.batches[0],
      maxBatch: Math.max(...t.batches),
    });
    try {
      for (const batch of t.batches) {
        const pointStart = performance.now();
        await probe.run(batch); // warm this batch size
        const times: number[] = [];
        while (times.length < o.reps) {
          times.push(await probe.run(batch));
          if (times.length >= 3 && (performance.now() - pointStart) / 1000 > o.maxPointSeconds) break;
        }
        const ms = median(times);
        rows.push({ line: 0, model: t.model, part: t.part, batch, latency_ms: Number(ms.toFixed(4)) });
        await writeAtomically(o.outFile, formatCsv(rows, PROFILE_HEADER));
        n++;
        spentWork += work(t, batch);
        remaining -= work(t, batch);
        const elapsed = (performance.now() - started) / 1000;
        const eta = spentWork > 0 ? (elapsed / spentWork) * remaining : 0;
        o.progress(
          `[${n}/${total}] ${t.model} part ${t.part} % (${place.label}) batch ${batch}: ${
            ms.toFixed(3)
          } ms (median of ${times.length}); ${formatDuration(elapsed)} elapsed, ~${formatDuration(eta)} left`,
        );
      }
    } finally {
      await probe.stop();
    }
  }
  return rows;
}

export interface PairOptions {
  models: string[];
  batch: number;
  /** Minimum measuring time per phase; a phase also lasts at least three batches of its slowest model. */
  seconds: number;
  coreCount: number;
  /** The two gpu-lets' places and parts; default: the two halves of the cores. */
  pairPlacement?: { a: Placement & { part: number }; b: Placement & { part: number } };
  modelFile: (model: string) => string;
  runtimeDir: string;
  outFile: string;
  progress: (line: string) => void;
}

/** Back-to-back batches on each probe until `seconds` have passed (and each ran ≥ 3); medians per probe. */
async function runTogether(probes: GpuletProbe[], batch: number, seconds: number): Promise<number[]> {
  const end = performance.now() + seconds * 1000;
  return await Promise.all(probes.map(async (p) => {
    const times: number[] = [];
    while (times.length < 3 || performance.now() < end) times.push(await p.run(batch));
    return median(times);
  }));
}

/**
 * Co-location on a CPU device: for every unordered pair of models (self-pairs included), two gpu-lets on
 * disjoint halves of the cores, each alone, then together, then each alone again (the two alone medians are
 * averaged). Returns all rows of the output file.
 */
export async function profilePairs(o: PairOptions): Promise<PairRow[]> {
  let placed = o.pairPlacement;
  if (!placed) {
    if (o.coreCount < 2) throw new Error("co-location needs at least 2 cores");
    const half = Math.floor(o.coreCount / 2);
    const coresA = Array.from({ length: half }, (_, i) => i);
    const coresB = Array.from({ length: o.coreCount - half }, (_, i) => half + i);
    const partA = Math.round((100 * coresA.length) / o.coreCount);
    placed = {
      a: { cores: coresA, part: partA, label: `cores ${coresA.join(",")}` },
      b: { cores: coresB, part: 100 - partA, label: `cores ${coresB.join(",")}` },
    };
  }
  const [partA, partB] = [placed.a.part, placed.b.part];
  const rows = await readExisting(o.outFile, (t) => parseCsv(t, o.outFile, PAIR_COLUMNS));
  const done = new Set(rows.map((r) => `${r.model_a},${r.model_b},${r.batch}`));
  const pairs = o.models.flatMap((a, i) => o.models.slice(i).map((b) => [a, b] as const))
    .filter(([a, b]) => !done.has(`${a},${b},${o.batch}`));
  if (rows.length) o.progress(`resuming: ${rows.length} pairs already in ${o.outFile}`);
  const started = performance.now();
  for (const [k, [a, b]] of pairs.entries()) {
    const start = (model: string, place: Placement) =>
      GpuletProbe.start({
        model,
        modelFile: o.modelFile(model),
        cores: place.cores,
        env: place.env,
        cuda: place.cuda,
        runtimeDir: o.runtimeDir,
        warmBatch: o.batch,
        maxBatch: o.batch,
      });
    const pa = await start(a, placed.a);
    const pb = await start(b, placed.b).catch(async (e) => {
      await pa.stop();
      throw e;
    });
    try {
      // Alone before and after together, averaged: this VM's speed drifts over seconds.
      const alone = async () => [
        (await runTogether([pa], o.batch, o.seconds / 2))[0],
        (await runTogether([pb], o.batch, o.seconds / 2))[0],
      ];
      const before = await alone();
      const seconds = Math.max(o.seconds, (3 * Math.max(...before)) / 1000);
      const [togetherA, togetherB] = await runTogether([pa, pb], o.batch, seconds);
      const after = await alone();
      const [aloneA, aloneB] = [(before[0] + after[0]) / 2, (before[1] + after[1]) / 2];
      rows.push({
        line: 0,
        model_a: a,
        part_a: partA,
        model_b: b,
        part_b: partB,
        batch: o.batch,
        alone_a_ms: Number(aloneA.toFixed(4)),
        alone_b_ms: Number(aloneB.toFixed(4)),
        together_a_ms: Number(togetherA.toFixed(4)),
        together_b_ms: Number(togetherB.toFixed(4)),
      });
      await writeAtomically(o.outFile, formatCsv(rows, Object.keys(PAIR_COLUMNS)));
      const elapsed = (performance.now() - started) / 1000;
      const eta = (elapsed / (k + 1)) * (pairs.length - k - 1);
      o.progress(
        `[${k + 1}/${pairs.length}] ${a}@${partA} + ${b}@${partB} batch ${o.batch}: slowdown ${
          (togetherA / aloneA).toFixed(3)
        } / ${(togetherB / aloneB).toFixed(3)}; ${formatDuration(elapsed)} elapsed, ~${formatDuration(eta)} left`,
      );
    } finally {
      await Promise.all([pa.stop(), pb.stop()]);
    }
  }
  return rows;
}
