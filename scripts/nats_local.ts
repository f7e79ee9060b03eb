/**
 * A NATS JetStream cluster on this machine's loopback, for the cluster quick start and the cluster tests:
 * `deno run -A scripts/nats_local.ts [N]` starts N `nats-server` processes (default 3) routed to each other,
 * prints the `--cluster` flag for `deno task start`, and stops them on Ctrl-C. Ports are free ones; data
 * goes to a temporary directory. `nats-server` comes from Debian (`scripts/setup.ts` installs it).
 */

/** One nats-server process of the local cluster. */
export interface LocalNatsServer {
  name: string;
  port: number;
  url: string;
  /** Kills it (SIGKILL by default). */
  kill(signal?: Deno.Signal): Promise<void>;
  /** Starts it again on the same ports and data (after a kill). */
  restart(): Promise<void>;
}

export interface LocalNats {
  servers: LocalNatsServer[];
  /** The servers' URLs, comma-separated: what `--cluster` takes. */
  clusterFlag: string;
  dir: string;
  stop(): Promise<void>;
}

/** Where nats-server is: `GPULET_NATS_SERVER`, Debian's path, or PATH. */
export function natsServerPath(): string {
  const override = Deno.env.get("GPULET_NATS_SERVER");
  if (override) return override;
  for (const p of ["/usr/sbin/nats-server", "/usr/bin/nats-server"]) {
    try {
      if (Deno.statSync(p).isFile) return p;
    } catch {
      // not there
    }
  }
  return "nats-server";
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Waits until something accepts TCP connections on `port`. */
async function listening(port: number, timeoutMs: number): Promise<void> {
  const until = performance.now() + timeoutMs;
  while (performance.now() < until) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`nats-server did not listen on ${port} within ${timeoutMs} ms`);
}

/**
 * Starts `n` routed nats-servers with JetStream (8 MiB messages, so most bodies go node to node in one
 * message); resolves once every one listens and JetStream has a meta leader.
 */
export async function startLocalNats(n = 3, o: { log?: (line: string) => void } = {}): Promise<LocalNats> {
  const dir = await Deno.makeTempDir({ prefix: "gpulet-nats-" });
  const ports = Array.from({ length: n }, () => ({ client: freePort(), route: freePort() }));
  const routes = ports.map((p) => `nats-route://127.0.0.1:${p.route}`).join(", ");
  const bin = natsServerPath();
  const servers: (LocalNatsServer & { child?: Deno.ChildProcess })[] = [];
  for (let i = 0; i < n; i++) {
    const name = `nats-${i + 1}`;
    const conf = `${dir}/${name}.conf`;
    await Deno.writeTextFile(
      conf,
      [
        `listen: 127.0.0.1:${ports[i].client}`,
        `server_name: ${name}`,
        `max_payload: 8MB`,
        `jetstream { store_dir: "${dir}/${name}" }`,
        n > 1 ? `cluster { name: gpulet, listen: 127.0.0.1:${ports[i].route}, routes: [${routes}] }` : "",
      ].join("\n"),
    );
    const server: LocalNatsServer & { child?: Deno.ChildProcess } = {
      name,
      port: ports[i].client,
      url: `nats://127.0.0.1:${ports[i].client}`,
      kill: async (signal: Deno.Signal = "SIGKILL") => {
        const child = server.child;
        if (!child) return;
        server.child = undefined;
        try {
          child.kill(signal);
        } catch {
          // already gone
        }
        await child.status;
      },
      restart: async () => {
        if (server.child) return;
        server.child = spawn();
        await listening(server.port, 10_000);
      },
    };
    const spawn = () =>
      new Deno.Command(bin, {
        args: ["-c", conf, "-l", `${dir}/${name}.log`],
        stdout: "null",
        stderr: "null",
        stdin: "null",
      }).spawn();
    server.child = spawn();
    servers.push(server);
  }
  await Promise.all(servers.map((s) => listening(s.port, 10_000)));
  await jetStreamReady(servers[0].port, 20_000);
  o.log?.(`nats: ${n} servers on ${servers.map((s) => s.port).join(", ")} (data in ${dir})`);
  return {
    servers,
    clusterFlag: servers.map((s) => s.url).join(","),
    dir,
    stop: async () => {
      await Promise.all(servers.map((s) => s.kill("SIGTERM")));
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** Waits until JetStream answers on the server at `port` (its meta leader is elected). */
async function jetStreamReady(port: number, timeoutMs: number): Promise<void> {
  const { connect } = await import("@nats-io/transport-node");
  const { jetstreamManager } = await import("@nats-io/jetstream");
  const nc = await connect({ servers: `127.0.0.1:${port}` });
  const until = performance.now() + timeoutMs;
  try {
    for (;;) {
      try {
        await (await jetstreamManager(nc, { timeout: 1000 })).getAccountInfo();
        return;
      } catch (e) {
        if (performance.now() > until) throw new Error(`JetStream not ready: ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  } finally {
    await nc.close();
  }
}

if (import.meta.main) {
  const n = Number(Deno.args[0] ?? 3);
  const nats = await startLocalNats(n, { log: console.log });
  console.log(`CLUSTER=${nats.clusterFlag}`);
  console.log(
    `start nodes with: deno task start --cluster $CLUSTER --node NAME --port PORT --state DIR (Ctrl-C stops NATS)`,
  );
  const stop = async () => {
    await nats.stop();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}
