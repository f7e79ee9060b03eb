/**
 * `deno task deploy [functions/NAME …]`: validates, bundles and uploads functions and apps to a running
 * controller (every folder under `functions/` when none is named). An app's stage functions that are not
 * deployed yet are deployed first, from the app's sibling folders (`functions/<function>`).
 */
import { type Bundle, bundleFolder, isAppBundle } from "../functions/bundle.ts";
import { parseArgs } from "./args.ts";
import { clientToken } from "./admin_token.ts";

/** Function folders under `root` (those with a function.ts). */
async function allFunctionFolders(root: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(root)) {
    if (!e.isDirectory) continue;
    try {
      await Deno.stat(`${root}/${e.name}/function.ts`);
      out.push(`${root}/${e.name}`);
    } catch { /* not a function folder */ }
  }
  return out.sort();
}

/** Uploads one bundle; returns the controller's answer or throws with its error. */
async function upload(url: string, token: string | undefined, bundle: Bundle) {
  const res = await fetch(`${url}/admin/functions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(bundle),
  });
  const body = await res.json();
  if (!res.ok) throw new Error(`${res.status}: ${body.error ?? JSON.stringify(body)}`);
  return body;
}

/** True if `name` is deployed on the controller (a function or an app). */
async function isDeployed(url: string, name: string): Promise<boolean> {
  const res = await fetch(`${url}/v2/models/${name}`);
  await res.body?.cancel();
  return res.ok;
}

if (import.meta.main) {
  const { values, positionals } = parseArgs(Deno.args, ["url", "token"]);
  const url = ((values.url as string | undefined) ?? "http://127.0.0.1:8080").replace(/\/$/, "");
  const token = clientToken(values.token as string | undefined);
  // Functions before apps: an app needs its stages deployed.
  const named = positionals.length ? positionals : await allFunctionFolders("functions");
  const bundles: { folder: string; bundle?: Bundle; error?: unknown }[] = [];
  for (const folder of named) {
    const f = folder.replace(/\/$/, "");
    try {
      bundles.push({ folder: f, bundle: await bundleFolder(f) });
    } catch (error) {
      bundles.push({ folder: f, error });
    }
  }
  bundles.sort((a, b) => Number(a.bundle && isAppBundle(a.bundle)) - Number(b.bundle && isAppBundle(b.bundle)));
  const deployed = new Set<string>();
  let failed = 0;
  const deployOne = async (bundle: Bundle) => {
    const t0 = performance.now();
    const body = await upload(url, token, bundle);
    deployed.add(body.name);
    const s = ((performance.now() - t0) / 1000).toFixed(1);
    if (body.app) {
      const stages = body.app.stages.map((st: { name: string; function: string }) => `${st.name}→${st.function}`);
      console.log(
        `deployed app ${body.name} v${body.version} (SLO ${body.manifest.sloMs} ms, stages ${
          stages.join(", ")
        }) in ${s} s`,
      );
      return;
    }
    const g = body.gpulets?.[0];
    console.log(
      `deployed ${body.name} v${body.version} (model ${body.manifest.model}, SLO ${body.manifest.sloMs} ms, ` +
        `batch ${g?.batch}, cores [${g?.cores}]) in ${s} s`,
    );
  };
  for (const { folder, bundle, error } of bundles) {
    try {
      if (error) throw error;
      if (isAppBundle(bundle!)) {
        const parent = folder.includes("/") ? folder.slice(0, folder.lastIndexOf("/")) : ".";
        for (const fn of new Set(bundle!.manifest.stages.map((s) => s.function))) {
          if (deployed.has(fn) || await isDeployed(url, fn)) continue;
          console.log(`app ${bundle!.manifest.name} needs ${fn}: deploying ${parent}/${fn}`);
          await deployOne(await bundleFolder(`${parent}/${fn}`));
        }
      }
      await deployOne(bundle!);
    } catch (e) {
      failed++;
      console.error(`${folder}: ${e instanceof Error ? e.message : e}`);
    }
  }
  Deno.exit(failed ? 1 : 0);
}
