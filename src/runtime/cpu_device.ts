/**
 * The CPU device: the machine's cores, handed out to gpu-lets. A gpu-let's "part" is a set of cores its
 * worker is pinned to (DESIGN.md: real isolation needs every worker pinned).
 */
/**
 * Number of online CPUs of the machine. Not `navigator.hardwareConcurrency`: that follows this process's
 * affinity, and a controller started under `taskset` must still place workers on the other cores.
 */
export function onlineCpuCount(): number {
  try {
    // e.g. "0-1" or "0,2-5"
    const spec = Deno.readTextFileSync("/sys/devices/system/cpu/online").trim();
    let n = 0;
    for (const part of spec.split(",")) {
      const [a, b] = part.split("-").map(Number);
      n += b === undefined ? 1 : b - a + 1;
    }
    if (n > 0) return n;
  } catch { /* not Linux, or no sysfs */ }
  return navigator.hardwareConcurrency || 1;
}

export class CpuDevice {
  readonly kind = "cpu";
  /** gpu-lets pinned to each core. */
  private readonly usage: number[];

  /**
   * With more than one core, core 0 starts counted as used by the controller itself (HTTP, JSON, batching),
   * so the first gpu-lets are pinned away from it.
   */
  constructor(readonly coreCount = onlineCpuCount()) {
    this.usage = new Array(coreCount).fill(0);
    if (coreCount > 1) this.usage[0] = 1;
  }

  /** Records that a gpu-let now uses `cores`. */
  take(cores: number[]): void {
    for (const c of cores) this.usage[c]++;
  }

  /** Records that a gpu-let released `cores`. */
  release(cores: number[]): void {
    for (const c of cores) this.usage[c] = Math.max(0, this.usage[c] - 1);
  }

  /** Current gpu-lets per core. */
  load(): readonly number[] {
    return this.usage;
  }
}
