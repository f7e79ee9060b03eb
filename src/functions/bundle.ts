/**
 * Function bundles: a function folder's files plus its manifest, as uploaded by `deno task deploy` to
 * `POST /admin/functions`, and their safe unpacking on the controller.
 */
import { z } from "zod";
import { AppManifest, BundlePath, Manifest } from "./manifest.ts";
import { type FunctionDefinition, isDefinedFunction } from "./sdk.ts";
import { type AppDefinition, isDefinedApp } from "./app.ts";

const BundleFiles = z.array(z.object({ path: BundlePath, base64: z.base64() })).min(1).max(1000)
  .refine((fs) => fs.some((f) => f.path === "function.ts"), "a bundle must contain function.ts")
  .refine((fs) => new Set(fs.map((f) => f.path)).size === fs.length, "bundle paths must be unique");

/** A function's bundle. */
export const FunctionBundle = z.object({ manifest: Manifest, files: BundleFiles }).strict();
export type FunctionBundle = z.infer<typeof FunctionBundle>;

/** An app's bundle (its manifest says `kind: "app"`). */
export const AppBundle = z.object({ manifest: AppManifest, files: BundleFiles }).strict();
export type AppBundle = z.infer<typeof AppBundle>;

/** The JSON body of `POST /admin/functions`: a function's or an app's bundle. */
export type Bundle = FunctionBundle | AppBundle;

/**
 * Validates the body of `POST /admin/functions`: an app's bundle when its manifest says `kind: "app"`, else a
 * function's (so the errors are those of the one schema meant, not of a union).
 */
export function parseBundle(
  x: unknown,
): ReturnType<typeof FunctionBundle.safeParse> | ReturnType<typeof AppBundle.safeParse> {
  const kind = (x as { manifest?: { kind?: unknown } } | null)?.manifest?.kind;
  return kind === "app" ? AppBundle.safeParse(x) : FunctionBundle.safeParse(x);
}

/** True if the bundle is an app's. */
export function isAppBundle(b: Bundle): b is AppBundle {
  return "kind" in b.manifest && b.manifest.kind === "app";
}

const MAX_FOLDER_BYTES = 512 * 1024 * 1024;

async function listFiles(root: string, rel = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(rel ? `${root}/${rel}` : root)) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (e.name.startsWith(".")) continue;
    if (e.isDirectory) out.push(...await listFiles(root, p));
    else if (e.isFile) out.push(p);
  }
  return out.sort();
}

/** Builds the manifest of a loaded definition. */
export function manifestOf(name: string, def: FunctionDefinition): Manifest {
  return Manifest.parse({
    name,
    model: def.model,
    sloMs: def.sloMs,
    maxBatch: def.maxBatch ?? 32,
    description: def.description,
    json: def.input !== undefined,
  });
}

/** Builds the manifest of a loaded app definition. */
export function appManifestOf(name: string, def: AppDefinition): AppManifest {
  return AppManifest.parse({
    kind: "app",
    name,
    sloMs: def.sloMs,
    description: def.description,
    stages: Object.entries(def.stages).map(([stage, s]) => ({
      name: stage,
      function: s.function,
      after: s.after ?? [],
      fanOut: s.fanOut ?? 1,
    })),
    tensors: def.tensors,
  });
}

/**
 * Reads a function folder into a bundle: imports its `function.ts` to read the definition (this runs the
 * user's code on the user's own machine, as any build tool would), then packs every file.
 */
export async function bundleFolder(folder: string, name?: string): Promise<Bundle> {
  const abs = await Deno.realPath(folder);
  const fnName = name ?? abs.split("/").pop()!;
  const mod = await import(`file://${abs}/function.ts`);
  const def: unknown = mod.default;
  if (!isDefinedFunction(def) && !isDefinedApp(def)) {
    throw new Error(`${folder}/function.ts must default-export defineFunction({...}) or defineApp({...})`);
  }
  const manifest = isDefinedApp(def) ? appManifestOf(fnName, def) : manifestOf(fnName, def);
  let total = 0;
  const files = [];
  for (const path of await listFiles(abs)) {
    const data = await Deno.readFile(`${abs}/${path}`);
    total += data.byteLength;
    if (total > MAX_FOLDER_BYTES) throw new Error(`${folder} is larger than ${MAX_FOLDER_BYTES >> 20} MiB`);
    files.push({ path, base64: encodeBase64(data) });
  }
  return "kind" in manifest ? AppBundle.parse({ manifest, files }) : FunctionBundle.parse({ manifest, files });
}

/** Writes a validated bundle's files under `dir` (created). Paths were validated by {@link Bundle}. */
export async function writeBundle(bundle: Bundle, dir: string): Promise<void> {
  for (const f of bundle.files) {
    const path = `${dir}/${f.path}`;
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    await Deno.writeFile(path, decodeBase64(f.base64));
  }
  await Deno.writeTextFile(`${dir}/.manifest.json`, JSON.stringify(bundle.manifest));
}

/** Standard base64 of bytes. */
export function encodeBase64(bytes: Uint8Array): string {
  let s = "";
  const chunk = 0x8000;
  for (let i = 0; i < bytes.length; i += chunk) s += String.fromCharCode(...bytes.subarray(i, i + chunk));
  return btoa(s);
}

/** Bytes of a standard base64 string; throws on invalid input. */
export function decodeBase64(b64: string): Uint8Array {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
