/**
 * The CPU device: the machine's cores, handed out to gpu-lets. A gpu-let's "part" is a set of cores its
 * worker is pinned to (DESIGN.md: real isolation needs every worker pinned).
 */
export class CpuDevice {
  readonly kind = "cpu";
  /** gpu-lets pinned to each core. */
  private readonly usage: number[];

  constructor(readonly coreCount = navigator.hardwareConcurrency || 1) {
    this.usage = new Array(coreCount).fill(0);
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
