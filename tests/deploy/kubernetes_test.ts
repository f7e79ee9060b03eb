/**
 * Offline checks of the Kubernetes manifests (`deploy/kubernetes/`), as far as this machine allows (no
 * cluster, no kubectl): every document parses and names itself; the DaemonSet's arguments are flags `start`
 * takes, and `start` run with exactly them stops at the GPU check (not at a flag); its probes are routes that
 * answer; the secret it reads is defined; the KEDA query reads metrics gpulet exports; NATS is configured as
 * the cluster needs (JetStream, 3 servers, 8 MiB messages).
 */
import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { z } from "zod";
import { ROOT, startTestServer } from "../helpers.ts";

const DIR = `${ROOT}/deploy/kubernetes`;

async function documents(file: string): Promise<Record<string, unknown>[]> {
  const docs = parseAllDocuments(await Deno.readTextFile(`${DIR}/${file}`));
  for (const d of docs) assert.deepEqual(d.errors, [], `${file}: ${d.errors.join("; ")}`);
  return docs.map((d) => d.toJS());
}

const Named = z.object({
  apiVersion: z.string().min(1),
  kind: z.string().min(1),
  metadata: z.object({ name: z.string().regex(/^[a-z0-9-]+$/), namespace: z.string().optional() }),
});

const Container = z.object({
  name: z.string(),
  image: z.string(),
  args: z.array(z.string()),
  env: z.array(z.object({
    name: z.string(),
    value: z.string().optional(),
    valueFrom: z.record(z.string(), z.unknown()).optional(),
  })),
  resources: z.object({ limits: z.object({ "nvidia.com/gpu": z.number().int().positive() }) }),
  readinessProbe: z.object({ httpGet: z.object({ path: z.string() }) }),
  livenessProbe: z.object({ httpGet: z.object({ path: z.string() }) }),
});

Deno.test("kubernetes manifests: well formed, and what they ask of gpulet is what gpulet does", async () => {
  const manifests = await documents("gpulet.yaml");
  const all = [...manifests, ...await documents("keda-gpu-nodes.yaml")];
  for (const d of all) Named.parse(d);
  const ds = all.find((d) => d.kind === "DaemonSet") as { spec: { template: { spec: Record<string, unknown> } } };
  assert.ok(ds, "a DaemonSet");
  const pod = ds.spec.template.spec as { nodeSelector: Record<string, string>; containers: unknown[] };
  assert.ok(Object.keys(pod.nodeSelector).some((k) => k.startsWith("nvidia.com/")), "GPU nodes only");
  const c = Container.parse(pod.containers[0]);

  // Every flag is one `start` knows, and with exactly these arguments it gets past its flags: on this
  // machine it stops at the GPU check, with the GPU's message.
  const args = c.args.slice(c.args.indexOf("start") + 1)
    .map((a) => a.replace("$(NODE_NAME)", "node-1").replace("$(POD_IP)", "127.0.0.1"));
  const help = new TextDecoder().decode(
    (await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${ROOT}/src/cli/start.ts`, "--help"],
      stdout: "piped",
    })
      .output()).stdout,
  );
  for (const flag of args.filter((a) => a.startsWith("--"))) {
    assert.ok(help.includes(`${flag} `), `start has no ${flag}`);
  }
  const state = await Deno.makeTempDir({ prefix: "gpulet-k8s-" });
  const run = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}/src/cli/start.ts`, ...args.map((a) => (a === "/var/lib/gpulet" ? state : a))],
    env: { GPULET_ADMIN_TOKEN: "t", PATH: "/nonexistent" }, // no nvidia-smi here: the GPU check speaks
    stdout: "null",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(run.stderr);
  assert.equal(run.code, 2, err);
  assert.match(err, /nvidia-smi|NVIDIA|GPU/, err);
  assert.doesNotMatch(err, /expected|unknown flag|not a NATS/, err);

  // The secret it reads is defined beside it.
  const secrets = all.filter((d) => d.kind === "Secret").map((d) =>
    (d as { metadata: { name: string } }).metadata.name
  );
  for (const e of c.env) {
    const ref = (e.valueFrom as { secretKeyRef?: { name: string } } | undefined)?.secretKeyRef;
    if (ref) assert.ok(secrets.includes(ref.name), `secret ${ref.name} is not defined`);
  }

  // Its probes answer (a readiness probe may say 503; a missing route would be 404).
  const server = await startTestServer();
  try {
    for (const path of [c.readinessProbe.httpGet.path, c.livenessProbe.httpGet.path]) {
      const res = await fetch(`${server.url}${path}`);
      await res.body?.cancel();
      assert.ok(res.status === 200 || res.status === 503, `${path}: ${res.status}`);
    }
  } finally {
    await server.shutdown();
  }

  // KEDA's query reads metrics gpulet exports.
  const scaled = all.find((d) => d.kind === "ScaledObject") as {
    spec: { triggers: { metadata: { query: string } }[] };
  };
  const metrics = await Deno.readTextFile(`${ROOT}/src/observability/metrics.ts`);
  for (const t of scaled.spec.triggers) {
    const names = t.metadata.query.match(/gpulet_[a-z_]+/g) ?? [];
    assert.ok(names.length > 0);
    for (const n of names) assert.ok(metrics.includes(`"${n}"`), `gpulet exports no ${n}`);
  }

  // NATS as the cluster needs it.
  const [nats] = await documents("nats-values.yaml");
  const v = z.object({
    config: z.object({
      cluster: z.object({ enabled: z.literal(true), replicas: z.number().int().min(3) }),
      jetstream: z.object({ enabled: z.literal(true) }),
      merge: z.object({ max_payload: z.number().int().min(8 * 1024 * 1024) }),
    }),
  });
  v.parse(nats);
});
