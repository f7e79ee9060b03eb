/** A closed-loop load generator over the lean client of `./http.ts`: each client sends its next request when the last is answered. */
import { Connection, type PreparedRequest } from "./http.ts";

/** What a load run measured. */
export interface LoadResult {
  /** Successful (2xx) responses per second. */
  perS: number;
  /** Latency of each successful request (ms). */
  latencies: number[];
  errors: number;
}

/** Runs `clients` closed-loop connections for `seconds`. */
export async function closedLoop(
  url: URL,
  req: PreparedRequest,
  clients: number,
  seconds: number,
): Promise<LoadResult> {
  const conns = await Promise.all(Array.from({ length: clients }, () => Connection.open(url)));
  const latencies: number[] = [];
  let errors = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  try {
    await Promise.all(conns.map(async (c) => {
      while (performance.now() < end) {
        const t = performance.now();
        const status = await c.request(req);
        if (status >= 200 && status < 300) latencies.push(performance.now() - t);
        else errors++;
      }
    }));
  } finally {
    for (const c of conns) c.close();
  }
  return { perS: latencies.length / ((performance.now() - start) / 1000), latencies, errors };
}
