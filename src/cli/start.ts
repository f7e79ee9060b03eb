/**
 * `deno task start`: runs the platform (controller, HTTP API, gpu-let workers) with embedded defaults:
 * CPU devices, state in `.gpulet/`, 127.0.0.1:8080. SIGINT/SIGTERM drain in-flight requests and stop
 * every worker.
 */
import { startServer } from "../server.ts";
import { parseDevices } from "../controller/backends.ts";
import { parseArgs } from "./args.ts";
import { CudaSetupError } from "../cuda/setup.ts";
import { startToken } from "./admin_token.ts";
import { GrpcListenError, hostPart } from "../api/grpc/server.ts";
import { NodeName } from "../cluster/membership.ts";
import { ClusterJoinError } from "../cluster/cluster.ts";

const HELP =
  `usage: deno task start [--port N] [--grpc-port N|off] [--host ADDR] [--state DIR] [--devices D] [--token T]
  --port N          HTTP port (default 8080; 0 picks a free one and prints it)
  --grpc-port N     gRPC port, the Open Inference Protocol's GRPCInferenceService (default 8081; 0 picks a
                    free one and prints it; off serves no gRPC)
  --host ADDR       listen address (default 127.0.0.1)
  --state DIR       registry and deployed functions (default .gpulet)
  --devices D       where gpu-lets run, always planned and autoscaled: cpu (default: this machine's cores as
                    one device), cpu:N (N devices of its cores), sim:<profile>xN (N simulated GPUs, e.g.
                    sim:h100x8) or cuda (this host's NVIDIA GPUs as MPS gpu-lets; see --mps, --profile)
  --sim-scale K     simulated devices: every latency and SLO × K, so one machine can drive them (default 1)
  --token T         bearer token for /admin/* (default: GPULET_ADMIN_TOKEN; else, when --host is not a
                    loopback address, a random one saved in <state>/admin-token; else none)
  --cores-per-gpulet N   cores of a fixed gpu-let on cpu (default 1)
  --gpulets-per-function N   a fixed layout: every function on N gpu-lets of --cores-per-gpulet cores,
                    not sized by the planner (default: planned; a model without a profile on the
                    device gets one fixed gpu-let)
  --max-queue N     rows waiting per function before 429 (default 1024)
  --max-body-bytes N       largest invoke/infer request body (default 67108864)
  --max-tensor-elements N  largest input tensor, in elements (default 67108864)
  --hang-timeout-ms N      a batch unanswered this long kills its gpu-let (default max(10 s, 5 × SLO))
  --start-timeout-ms N     a gpu-let not loaded and warm in this long fails its deploy (default 120000)
  --mps existing|start     devices cuda: use the running MPS control daemon (default), or start gpulet's own
                           (pipes and logs under <state>/mps) and stop it on shutdown
  --profile NAME           devices cuda: plan with profiles/NAME.csv (default: from the GPUs' type, e.g. h100)
  --gpu-context-mb N       devices cuda: device memory per worker process besides its model (default 600)
  --cluster URLS    join a cluster through these NATS JetStream servers (comma-separated, e.g.
                    nats://h1:4222,nats://h2:4222); without it the node is alone with embedded state
  --node NAME       this node's name in the cluster (default: the host name)
  --advertise-url U the URL peers reach this node's HTTP at (default: the listening address)
  --cluster-replicas N     JetStream replicas of the cluster's state (default: 3 with ≥ 3 servers, else 1)
  --async-ack-wait-ms N    cluster: an async call a node took and did not finish in this long (it died) goes
                           to another node (default 30000; set when the cluster's queue is first made)`;

/** A positive integer flag, or its default; exits 2 with a message otherwise. */
function intFlag(values: Record<string, unknown>, name: string, fallback?: number): number | undefined {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`--${name} ${raw}: expected a whole number ≥ 1`);
    Deno.exit(2);
  }
  return n;
}

/** `--cluster`, `--node` and the rest, checked (exit 2 with a message when wrong); undefined without `--cluster`. */
function clusterFlags(values: Record<string, unknown>) {
  const raw = values.cluster as string | undefined;
  if (raw === undefined) return undefined;
  const servers = raw.split(",").map((s) => s.trim()).filter(Boolean);
  for (const s of servers) {
    if (!/^(nats|tls):\/\/[^\s/]+$/.test(s) && !/^[^\s/:]+:[0-9]+$/.test(s)) {
      console.error(`--cluster ${raw}: "${s}" is not a NATS server URL (nats://host:port)`);
      Deno.exit(2);
    }
  }
  if (servers.length === 0) {
    console.error("--cluster: expected one or more NATS server URLs, e.g. nats://127.0.0.1:4222");
    Deno.exit(2);
  }
  const fallback = Deno.hostname().toLowerCase().replace(/[^a-z0-9_-]/g, "-").replace(/^[^a-z0-9]+/, "");
  const node = NodeName.safeParse((values.node as string | undefined) ?? (fallback || "node"));
  if (!node.success) {
    console.error(`--node ${values.node}: ${node.error.issues[0].message}`);
    Deno.exit(2);
  }
  return {
    servers,
    node: node.data,
    replicas: intFlag(values, "cluster-replicas"),
    advertiseUrl: values["advertise-url"] as string | undefined,
    asyncAckWaitMs: intFlag(values, "async-ack-wait-ms"),
  };
}

if (import.meta.main) {
  const { values } = parseArgs(Deno.args, [
    "port",
    "grpc-port",
    "host",
    "state",
    "devices",
    "token",
    "cores-per-gpulet",
    "max-queue",
    "sim-scale",
    "gpulets-per-function",
    "max-body-bytes",
    "max-tensor-elements",
    "hang-timeout-ms",
    "start-timeout-ms",
    "mps",
    "profile",
    "gpu-context-mb",
    "cluster",
    "node",
    "advertise-url",
    "cluster-replicas",
    "async-ack-wait-ms",
  ], ["help"]);
  if (values.help) {
    console.log(HELP);
    Deno.exit(0);
  }
  const devices = (values.devices as string | undefined) ?? "cpu";
  try {
    parseDevices(devices);
  } catch (e) {
    console.error((e as Error).message);
    Deno.exit(2);
  }
  const simScale = Number(values["sim-scale"] ?? 1);
  if (!(simScale > 0)) {
    console.error(`--sim-scale ${values["sim-scale"]}: expected a number > 0`);
    Deno.exit(2);
  }
  const hostname = (values.host as string | undefined) ?? "127.0.0.1";
  const stateDir = (values.state as string | undefined) ?? ".gpulet";
  const { token, madeAt } = await startToken(
    (values.token as string | undefined) ?? Deno.env.get("GPULET_ADMIN_TOKEN"),
    hostname,
    stateDir,
  );
  const grpcFlag = (values["grpc-port"] as string | undefined) ?? "8081";
  const grpcPort = grpcFlag === "off" ? "off" : Number(grpcFlag);
  if (grpcPort !== "off" && !(Number.isInteger(grpcPort) && grpcPort >= 0 && grpcPort < 65536)) {
    console.error(`--grpc-port ${grpcFlag}: expected a port number (0 picks one) or off`);
    Deno.exit(2);
  }
  const mps = (values.mps as string | undefined) ?? "existing";
  if (mps !== "existing" && mps !== "start") {
    console.error(`--mps ${mps}: expected existing or start`);
    Deno.exit(2);
  }
  const cluster = clusterFlags(values);
  let server;
  try {
    server = await startServer({
      port: Number(values.port ?? 8080),
      grpcPort,
      hostname,
      stateDir,
      adminToken: token,
      coresPerGpulet: intFlag(values, "cores-per-gpulet", 1),
      gpuletsPerFunction: intFlag(values, "gpulets-per-function"),
      maxQueueRows: intFlag(values, "max-queue", 1024),
      maxBodyBytes: intFlag(values, "max-body-bytes"),
      maxTensorElements: intFlag(values, "max-tensor-elements"),
      hangTimeoutMs: intFlag(values, "hang-timeout-ms"),
      startTimeoutMs: intFlag(values, "start-timeout-ms"),
      mps,
      profile: values.profile as string | undefined,
      gpuContextMiB: intFlag(values, "gpu-context-mb"),
      devices,
      simScale,
      cluster,
    });
  } catch (e) {
    // A device that cannot be used is a setup problem with a fix, not a crash: one message, exit 2.
    if (e instanceof CudaSetupError) {
      console.error(e.message);
      Deno.exit(2);
    }
    if (e instanceof ClusterJoinError) {
      console.error(`${e.message} (is nats-server running with JetStream? scripts/nats_local.ts starts one)`);
      Deno.exit(2);
    }
    if (e instanceof GrpcListenError) {
      console.error(`${e.message} (choose another with --grpc-port N, or --grpc-port off)`);
      Deno.exit(2);
    }
    throw e;
  }
  const grpcAt = server.grpcPort !== undefined ? `, gRPC on ${hostPart(hostname)}:${server.grpcPort}` : "";
  console.log(`gpulet listening on ${server.url}${grpcAt} (state ${server.controller.stateDir})`);
  if (madeAt) {
    console.log(`admin API needs a bearer token (listening beyond loopback): it is in ${madeAt}`);
  }
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: draining and stopping workers`);
    await server.shutdown();
    console.log("stopped");
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", () => stop("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => stop("SIGTERM"));
}
