/**
 * `deno task models [NAME…]`: makes the model zoo's default models (or the named ones) in
 * `resource/models/`. Idempotent: up-to-date files are kept.
 */
import { DEFAULT_MODELS_DIR, defaultModels, ensureModels, ZOO } from "../models/zoo.ts";

if (import.meta.main) {
  const names = Deno.args.filter((a) => !a.startsWith("-"));
  if (Deno.args.includes("--list")) {
    for (const [name, e] of Object.entries(ZOO)) {
      console.log(`${name.padEnd(16)} ${e.default ? "default " : "on demand"} ${e.description}`);
    }
    Deno.exit(0);
  }
  const wanted = names.length ? names : defaultModels();
  const built = await ensureModels(wanted, DEFAULT_MODELS_DIR, (line) => console.log(line));
  console.log(
    built.length ? `built ${built.join(", ")} in ${DEFAULT_MODELS_DIR}` : `models up to date in ${DEFAULT_MODELS_DIR}`,
  );
}
