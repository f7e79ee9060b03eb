/**
 * `deno task models [NAME…]`: makes the model zoo's default models (or the named ones) in
 * `resource/models/`. Idempotent: up-to-date files are kept. `--list` lists the zoo; `--report` prints each
 * generated model's parameters and multiply-accumulates per sample (without building weights).
 */
import { architectureReport, DEFAULT_MODELS_DIR, defaultModels, ensureModels, ZOO } from "../models/zoo.ts";

if (import.meta.main) {
  const names = Deno.args.filter((a) => !a.startsWith("-"));
  if (Deno.args.includes("--list")) {
    for (const [name, e] of Object.entries(ZOO)) {
      console.log(`${name.padEnd(16)} ${e.default ? "default " : "on demand"} ${e.description}`);
    }
    Deno.exit(0);
  }
  if (Deno.args.includes("--report")) {
    const wanted = names.length ? names : Object.keys(ZOO).filter((n) => ZOO[n].kind === "generated");
    console.log(`${"model".padEnd(14)} ${"params".padStart(12)} ${"MACs/sample".padStart(14)}`);
    for (const name of wanted) {
      const r = architectureReport(name);
      const macs = r.macs === undefined
        ? "-"
        : r.macs < 1e8
        ? `${(r.macs / 1e6).toFixed(3)} M`
        : `${(r.macs / 1e9).toFixed(3)} G`;
      console.log(`${name.padEnd(14)} ${`${(r.params / 1e6).toFixed(3)} M`.padStart(12)} ${macs.padStart(14)}`);
    }
    Deno.exit(0);
  }
  const wanted = names.length ? names : defaultModels();
  const built = await ensureModels(wanted, DEFAULT_MODELS_DIR, (line) => console.log(line));
  console.log(
    built.length ? `built ${built.join(", ")} in ${DEFAULT_MODELS_DIR}` : `models up to date in ${DEFAULT_MODELS_DIR}`,
  );
}
