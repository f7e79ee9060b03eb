/**
 * A burst of clients, as a separate process (like a client's thread pool): for each round, `size` fresh
 * connections are opened, then every one sends the same request at once. Prints one JSON line per round:
 * each answer's status and latency (ms, from the moment the burst was let go).
 *
 * Usage: deno run --allow-net bench/burst_client.ts '{"url": …, "body": …, "headers": {…}, "size": 64,
 * "rounds": 5, "gapMs": 300}'
 */
import { Connection, prepareRequest } from "../src/loadgen/http.ts";

/** What to send. */
export interface BurstConfig {
  url: string;
  body: string;
  headers: Record<string, string>;
  size: number;
  rounds: number;
  gapMs: number;
}

/** One round's answers. */
export interface BurstRound {
  statuses: number[];
  latenciesMs: number[];
}

if (import.meta.main) {
  const cfg = JSON.parse(Deno.args[0]) as BurstConfig;
  const url = new URL(cfg.url);
  const req = prepareRequest(url, cfg.body, cfg.headers);
  for (let r = 0; r < cfg.rounds; r++) {
    const conns = await Promise.all(Array.from({ length: cfg.size }, () => Connection.open(url)));
    const start = performance.now();
    const answers = await Promise.all(conns.map(async (c) => {
      try {
        const status = await c.request(req);
        return { status, ms: performance.now() - start };
      } catch {
        return { status: 0, ms: performance.now() - start };
      } finally {
        c.close();
      }
    }));
    const round: BurstRound = { statuses: answers.map((a) => a.status), latenciesMs: answers.map((a) => a.ms) };
    console.log(JSON.stringify(round));
    await new Promise((res) => setTimeout(res, cfg.gapMs));
  }
}
