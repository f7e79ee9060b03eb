/**
 * What `nvidia-smi` says about the GPUs, parsed. Pure: the outputs come from {@link ../cuda/setup.ts}.
 */

/** The query gpulet runs (one line per GPU). */
export const GPU_QUERY = ["--query-gpu=index,name,memory.total,compute_mode,mig.mode.current", "--format=csv,noheader"];

/** One GPU as `nvidia-smi` describes it. */
export interface GpuInfo {
  /** nvidia-smi's index (what `CUDA_VISIBLE_DEVICES` takes). */
  index: number;
  name: string;
  memoryMiB: number;
  /** `Default`, `Exclusive_Process`, `Prohibited`, … */
  computeMode: string;
  /** `Enabled`, `Disabled`, or `[N/A]` on GPUs without MIG. */
  migMode: string;
  /** Profile name for the planner, e.g. `h100`; undefined for a GPU gpulet has no name for. */
  type?: string;
}

/** A GPU model's profile name from its marketing name: `NVIDIA H100 80GB HBM3` → `h100`. */
export function gpuType(name: string): string | undefined {
  const m = /\b(GH|GB)?([ABHLTV])(\d{1,3})[A-Z]?\b/i.exec(name.replace(/^NVIDIA\s+/i, "").replace(/Tesla\s+/i, ""));
  return m ? `${m[2]}${m[3]}`.toLowerCase() : undefined;
}

/** Parses a memory figure like `81559 MiB` (or `80 GiB`) into MiB. */
function mib(s: string, line: string): number {
  const m = /^([0-9.]+)\s*(MiB|GiB)$/.exec(s.trim());
  if (!m) throw new Error(`nvidia-smi: cannot read memory "${s}" in "${line}"`);
  return Math.round(Number(m[1]) * (m[2] === "GiB" ? 1024 : 1));
}

/**
 * Parses `nvidia-smi --query-gpu=index,name,memory.total,compute_mode,mig.mode.current --format=csv,noheader`.
 * Lines without the index (`name, memory, compute mode, MIG mode`, as older scripts query) get their
 * position as index. Blank lines are skipped; anything else unreadable is an error naming the line.
 */
export function parseGpuList(csv: string): GpuInfo[] {
  const gpus: GpuInfo[] = [];
  for (const line of csv.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0)) {
    const f = line.split(",").map((s) => s.trim());
    let index: number, rest: string[];
    if (f.length === 5 && /^\d+$/.test(f[0])) [index, rest] = [Number(f[0]), f.slice(1)];
    else if (f.length === 4) [index, rest] = [gpus.length, f];
    else throw new Error(`nvidia-smi: expected "index, name, memory, compute mode, MIG mode", got "${line}"`);
    const [name, memory, computeMode, migMode] = rest;
    gpus.push({ index, name, memoryMiB: mib(memory, line), computeMode, migMode, type: gpuType(name) });
  }
  return gpus;
}
