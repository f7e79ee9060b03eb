/**
 * `deno task plan --profile P.csv --pairs P-pairs.csv --workload W.json --policy gpulet [--gpus N] [--json]`:
 * the offline planner. Prints the plan JSON (`--json`) or a readable table; `--peak` instead searches the
 * largest common rate multiplier the policy serves on `--gpus` GPUs and prints `{ policy, scale,
 * aggregateRate }`. Options: `--max-gpulets N` per GPU, `--max-functions N` per gpu-let, `--latency-ratio X`,
 * `--headroom` (plan for the Poisson 99th percentile of each rate), `--percentile P` and `--cv C` (the tail
 * target: every function's P-th percentile latency within its SLO under arrivals of CV C; default the
 * workload's `percentile` and `arrivalCv`, else p99 Poisson), `--averages` (the duty-cycle rule alone, which
 * holds on averages only), `--validate PLAN.json` (re-checks a plan and prints every rule it breaks; exit 3 if
 * any). `--from PLAN.json` re-plans a running plan
 * incrementally for the workload's rates (fewest gpu-lets started or stopped; gpulet only) and prints how many
 * gpu-lets changed on stderr.
 */
import { parseArgs } from "./args.ts";
import { CsvError } from "../planner/csv.ts";
import { loadInterference } from "../planner/profiles.ts";
import { loadLatencyModel, ProfileError } from "../planner/latency_model.ts";
import { replan } from "../planner/incremental.ts";
import { gpuletChanges } from "../planner/plan_diff.ts";
import { type Plan, Plan as PlanSchema, POLICIES, type Policy } from "../planner/plan.ts";
import { DEFAULT_OPTIONS, type PlannerOptions, type PlanProblem } from "../planner/planner.ts";
import { makePlan, peakFor } from "../planner/policies.ts";
import { checkedTail, percentileName, validatePlan } from "../planner/validate.ts";
import {
  appDemand,
  appPeakScale,
  planSplitsFor,
  planWithApps,
  withAppCalls,
  workloadApps,
} from "../planner/app_demand.ts";
import {
  parseJsonText,
  parseWorkload,
  plannedFunctions,
  poissonHeadroom,
  tailTarget,
  WorkloadError,
} from "../planner/workload.ts";

const USAGE = "usage: deno task plan --profile P.csv [--pairs P-pairs.csv] --workload W.json " +
  `--policy ${POLICIES.join("|")} [--gpus N] [--json] [--peak]\n` +
  "       [--max-gpulets N] [--max-functions N] [--latency-ratio X] [--headroom] [--from PLAN.json]\n" +
  "       [--percentile P (default 99)] [--cv C (arrival CV, default 1)] [--averages (no tail target)]\n" +
  "       [--validate PLAN.json (re-check a plan: every rule it breaks, the percentile each function misses)]";

/** A readable table of a plan. */
export function formatPlan(plan: Plan): string {
  const lines = [
    `${plan.policy} on ${plan.device}: ${plan.feasible ? "feasible" : "NOT feasible"}, ${plan.gpusUsed} GPU(s)` +
    (plan.tail
      ? `; ${percentileName(plan.tail.percentile)} within SLO for arrivals of CV ${plan.tail.cv}`
      : "; averages only (no tail target)"),
  ];
  for (const gpu of plan.gpus) {
    const used = gpu.gpulets.reduce((s, g) => s + g.part, 0);
    lines.push(`GPU ${gpu.id} (${used} % in use)`);
    for (const g of gpu.gpulets) {
      const duty = g.functions[0]?.dutyMs ?? 0;
      lines.push(`  ${String(g.part).padStart(3)} %  duty ${duty.toFixed(2)} ms`);
      for (const f of g.functions) {
        lines.push(
          `         ${f.name.padEnd(16)} batch ${String(f.batch).padStart(2)}  ${f.rate.toFixed(1).padStart(9)} req/s` +
            `  latency ${f.latencyMs.toFixed(2)} ms`,
        );
      }
    }
  }
  for (const u of plan.unserved) lines.push(`unserved: ${u.name} ${u.rate.toFixed(1)} req/s`);
  for (const a of plan.appSplits ?? []) {
    lines.push(
      `app ${a.name}: ${a.rate.toFixed(1)} req/s, SLO ${a.sloMs} ms split over its levels as ` +
        `${a.budgetsMs.map((b) => b.toFixed(2)).join(" + ")} ms`,
    );
  }
  return lines.join("\n");
}

function positiveNumber(name: string, v: string | boolean | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!(n > 0)) throw new WorkloadError(`--${name} must be a positive number, got ${v}`);
  return n;
}

/** A plan JSON file, checked against the schema. */
function readPlan(text: string, source: string): Plan {
  const parsed = PlanSchema.safeParse(parseJsonText(text, source));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new WorkloadError(`${source}: not a plan: ${issue.path.join(".") || "(root)"}: ${issue.message}`);
  }
  return parsed.data;
}

/** Runs the CLI; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs(
    args,
    [
      "profile",
      "pairs",
      "workload",
      "policy",
      "gpus",
      "max-gpulets",
      "max-functions",
      "latency-ratio",
      "from",
      "validate",
      "percentile",
      "cv",
    ],
    ["json", "peak", "headroom", "averages"],
  );
  const profile = values.profile as string | undefined;
  const workloadFile = values.workload as string | undefined;
  const policy = (values.policy ?? "gpulet") as Policy;
  if (!profile || !workloadFile || !POLICIES.includes(policy)) {
    console.error(USAGE);
    return 2;
  }
  const latency = await loadLatencyModel(profile);
  const workload = parseWorkload(await Deno.readTextFile(workloadFile), workloadFile);
  let functions = plannedFunctions(workload, latency, workloadFile);
  let apps = workloadApps(workload, functions, workloadFile);
  if (values.headroom) {
    functions = functions.map((f) => ({ ...f, rate: poissonHeadroom(f.rate) }));
    apps = apps.map((a) => ({ ...a, rate: poissonHeadroom(a.rate) }));
  }
  const pairs = values.pairs as string | undefined;
  const interference = pairs ? await loadInterference(latency, pairs) : undefined;
  const options: PlannerOptions = {
    ...DEFAULT_OPTIONS,
    maxGpuletsPerGpu: positiveNumber("max-gpulets", values["max-gpulets"]) ?? DEFAULT_OPTIONS.maxGpuletsPerGpu,
    maxFunctionsPerGpulet: positiveNumber("max-functions", values["max-functions"]) ??
      DEFAULT_OPTIONS.maxFunctionsPerGpulet,
    latencyRatio: positiveNumber("latency-ratio", values["latency-ratio"]) ?? DEFAULT_OPTIONS.latencyRatio,
    tail: values.averages ? undefined : tailTarget(workload, {
      percentile: positiveNumber("percentile", values.percentile),
      cv: positiveNumber("cv", values.cv),
    }),
  };
  const problem: PlanProblem = {
    device: workload.device,
    gpus: positiveNumber("gpus", values.gpus) ?? workload.gpus,
    functions,
    latency,
    interference,
  };
  const check = values.validate as string | undefined;
  if (check) {
    // Re-check a plan (made here or elsewhere) against the profile, the interference model and the tail target
    // (the flags', else the plan's own).
    const plan = readPlan(await Deno.readTextFile(check), check);
    const splits = planSplitsFor(plan, apps);
    if (!splits) throw new WorkloadError(`${check}: the workload has apps; the plan has no app budgets for them all`);
    const tail = values.averages
      ? null
      : values.percentile !== undefined || values.cv !== undefined || workload.percentile !== undefined ||
          workload.arrivalCv !== undefined
      ? options.tail
      : undefined;
    const demand = apps.length ? withAppCalls(functions, apps, splits, 1, options.tail?.cv ?? 1) : functions;
    const errors = validatePlan(plan, { functions: demand, latency, interference, gpus: problem.gpus, tail });
    const checked = checkedTail(plan, tail);
    const what = checked ? `${percentileName(checked.percentile)}, arrivals of CV ${checked.cv}` : "averages";
    if (errors.length === 0) console.log(`${check}: valid (${what})`);
    else console.log([`${check}: ${errors.length} violation(s) (${what})`, ...errors.map((e) => `  ${e}`)].join("\n"));
    return errors.length === 0 ? 0 : 3;
  }
  if (values.peak && apps.length) {
    // Every app (and function) rate × the scale, each app's SLO re-split at every rate tried.
    const scale = appPeakScale(problem, apps, policy, options);
    console.log(
      JSON.stringify({ policy, scale, appRates: Object.fromEntries(apps.map((a) => [a.name, a.rate * scale])) }),
    );
    return 0;
  }
  if (values.peak) {
    console.log(JSON.stringify(peakFor(problem, policy, options)));
    return 0;
  }
  const from = values.from as string | undefined;
  let plan: Plan;
  if (from) {
    if (policy !== "gpulet") throw new WorkloadError("--from re-plans with the gpulet policy only");
    const current = readPlan(await Deno.readTextFile(from), from);
    const split = apps.length ? appDemand(problem, apps, policy, options) : undefined;
    plan = replan({ ...problem, functions: split?.functions ?? functions }, current, { ...options, compact: true });
    if (split) plan = { ...plan, appSplits: split.budgets };
    console.error(`${gpuletChanges(current, plan)} gpu-let(s) started or stopped`);
  } else plan = apps.length ? planWithApps(problem, apps, policy, options).plan : makePlan(problem, policy, options);
  console.log(values.json ? JSON.stringify(plan, null, 2) : formatPlan(plan));
  return plan.feasible ? 0 : 3;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    const known = e instanceof CsvError || e instanceof ProfileError || e instanceof WorkloadError ||
      e instanceof Deno.errors.NotFound || (e instanceof Error && /needs an interference model|ideal/.test(e.message));
    if (known) {
      console.error(`error: ${(e as Error).message}`);
      Deno.exit(1);
    }
    throw e;
  }
}
