/**
 * The project's one seeded pseudo-random generator (pure): the planner's fit restarts, the load generator's
 * and the simulators' arrivals and service times, the generated models' weights, the random workloads and
 * inputs of tests and benchmarks.
 */

/** A seeded uniform random source in [0, 1) (mulberry32: small, fast, good enough for load and restarts). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
