/**
 * `deno task deploy [functions/NAME …]`: validates, bundles and uploads functions to a running controller
 * (every folder under `functions/` when none is named).
 */
import { bundleFolder } from "../functions/bundle.ts";
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

if (import.meta.main) {
  const { values, positionals } = parseArgs(Deno.args, ["url", "token"]);
  const url = ((values.url as string | undefined) ?? "http://127.0.0.1:8080").replace(/\/$/, "");
  const token = clientToken(values.token as string | undefined);
  const folders = positionals.length ? positionals : await allFunctionFolders("functions");
  let failed = 0;
  for (const folder of folders) {
    const t0 = performance.now();
    try {
      const bundle = await bundleFolder(folder.replace(/\/$/, ""));
      const res = await fetch(`${url}/admin/functions`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify(bundle),
      });
      const body = await res.json();
      if (!res.ok) throw new Error(`${res.status}: ${body.error ?? JSON.stringify(body)}`);
      const g = body.gpulets?.[0];
      console.log(
        `deployed ${body.name} v${body.version} (model ${body.manifest.model}, SLO ${body.manifest.sloMs} ms, ` +
          `batch ${g?.batch}, cores [${g?.cores}]) in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
      );
    } catch (e) {
      failed++;
      console.error(`${folder}: ${e instanceof Error ? e.message : e}`);
    }
  }
  Deno.exit(failed ? 1 : 0);
}
