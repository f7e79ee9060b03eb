/**
 * The HTTP load generator of `bench protocols`, in its own process: a closed loop over the project's lean
 * HTTP/1.1 client, the request encoded once, answers read as bytes. (Its gRPC twin is `grpc_load.py`.)
 *
 *   deno run -A bench/protocol_client.ts URL BODY_FILE HEADERS_JSON CLIENTS SECONDS
 *
 * Prints one JSON line: { perS, p50Ms, p99Ms, errors }.
 */
import { closedLoop } from "../src/loadgen/closed_loop.ts";
import { prepareRequest } from "../src/loadgen/http.ts";
import { percentile } from "../src/loadgen/stats.ts";

const [target, file, headers, clients, seconds] = Deno.args;
const url = new URL(target);
const req = prepareRequest(url, await Deno.readFile(file), JSON.parse(headers));
await closedLoop(url, req, Number(clients), 1); // warm the connections and the path
const { perS, latencies, errors } = await closedLoop(url, req, Number(clients), Number(seconds));
const sorted = latencies.sort((a, b) => a - b);
console.log(JSON.stringify({ perS, p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99), errors }));
