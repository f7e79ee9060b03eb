/**
 * `deno task interference predict --profile P --pairs F --input Q.csv`: fits the interference model on the
 * pairs file and prints, as CSV, each query row's `model_a,part_a,model_b,part_b,batch` with
 * `pred_slowdown_a,pred_slowdown_b`. `--input -` reads standard input.
 * `deno task interference cv --profile P --pairs F`: leave-one-model-out errors, as JSON.
 */
import { parseArgs } from "./args.ts";
import { CsvError, formatCsv, parseCsv } from "../planner/csv.ts";
import { InterferenceModel, leaveOneModelOut } from "../planner/interference.ts";
import { loadLatencyModel, ProfileError } from "../planner/latency_model.ts";
import { loadPairs, observations, PAIR_QUERY_COLUMNS } from "../planner/pairs.ts";

const USAGE = "usage: deno task interference predict --profile P.csv --pairs P-pairs.csv --input Q.csv|-\n" +
  "       deno task interference cv --profile P.csv --pairs P-pairs.csv";

async function readInput(path: string): Promise<string> {
  if (path !== "-") return await Deno.readTextFile(path);
  return await new Response(Deno.stdin.readable).text();
}

/** Answers a query CSV (pairs columns; extra columns ignored) with predicted slowdowns, as CSV. */
export function predictCsv(model: InterferenceModel, text: string, source: string): string {
  const queries = parseCsv(text, source, PAIR_QUERY_COLUMNS);
  const out = queries.map((q) => {
    if (q.part_a + q.part_b > 100) {
      throw new CsvError(source, q.line, null, `parts ${q.part_a} + ${q.part_b} exceed 100 %`);
    }
    try {
      const [a, b] = model.pair(q.model_a, q.part_a, q.model_b, q.part_b, q.batch);
      return { ...q, pred_slowdown_a: a.toFixed(4), pred_slowdown_b: b.toFixed(4) };
    } catch (e) {
      if (e instanceof ProfileError) throw new CsvError(source, q.line, null, e.message);
      throw e;
    }
  });
  return formatCsv(out, [...Object.keys(PAIR_QUERY_COLUMNS), "pred_slowdown_a", "pred_slowdown_b"]);
}

/** Runs the CLI; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs(args, ["profile", "pairs", "input"]);
  const [command] = positionals;
  const profile = values.profile as string | undefined;
  const pairsFile = values.pairs as string | undefined;
  if (!["predict", "cv"].includes(command ?? "") || !profile || !pairsFile) {
    console.error(USAGE);
    return 2;
  }
  const latency = await loadLatencyModel(profile);
  const obs = observations(await loadPairs(pairsFile));
  if (command === "cv") {
    console.log(JSON.stringify(leaveOneModelOut(latency, obs), null, 2));
    return 0;
  }
  const input = values.input as string | undefined;
  if (!input) {
    console.error(USAGE);
    return 2;
  }
  const model = InterferenceModel.fit(latency, obs);
  const text = predictCsv(model, await readInput(input), input === "-" ? "stdin" : input);
  await Deno.stdout.write(new TextEncoder().encode(text));
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    if (e instanceof CsvError || e instanceof ProfileError || e instanceof Deno.errors.NotFound) {
      console.error(`error: ${e.message}`);
      Deno.exit(1);
    }
    throw e;
  }
}
