/**
 * `deno task loadgen [--url U] (--schedule S.csv | --mix a=RATE,b=RATE --seconds N) [--cv C] [--seed N]
 * [--token T] [--out PREFIX] [--grace-s N] [--body name=FILE.json,…] [--json]`: open-loop load against a
 * running controller. Prints a line per second while it runs, then a summary; writes `PREFIX.json` (the
 * report) and `PREFIX.svg` (the timeline plot). An app is loaded with its JSON body (`--body`), and its
 * stages' functions are reported beside it, as the server counted their calls.
 */
import { parseArgs } from "./args.ts";
import { FunctionName } from "../functions/manifest.ts";
import { clientToken } from "./admin_token.ts";
import { runOpenLoop } from "../loadgen/open_loop.ts";
import { summarize, timelineSvg } from "../loadgen/report.ts";
import { Schedule } from "../loadgen/schedule.ts";
import { discoverTargets, functionCounts, gpuSampler } from "../api/load_targets.ts";

const USAGE = "usage: deno task loadgen [--url U] (--schedule S.csv | --mix name=rate,… --seconds N) [--cv C]\n" +
  "       [--seed N] [--token T] [--out PREFIX] [--grace-s N] [--body name=FILE.json,… (an app's request)] [--json]";

function fail(message: string): never {
  console.error(`${message}\n${USAGE}`);
  Deno.exit(2);
}

/** `a=x,b=y` as [name, value] pairs, names checked as function names; throws naming the flag and the part. */
function namedValues(flag: string, text: string, what: string): [string, string][] {
  return text.split(",").map((part) => {
    const m = /^([^=]+)=(.+)$/.exec(part.trim());
    if (!m || !FunctionName.safeParse(m[1]).success) throw new Error(`--${flag}: "${part}" is not name=${what}`);
    return [m[1], m[2]];
  });
}

/** A constant-rate schedule from `a=10,b=2.5`. */
export function mixSchedule(mix: string): Schedule {
  const points = namedValues("mix", mix, "rate").map(([name, rate]) => {
    if (!/^[0-9.]+$/.test(rate) || !(Number(rate) >= 0)) throw new Error(`--mix: "${name}=${rate}" is not name=rate`);
    return { time_s: 0, function: name, rate: Number(rate), shape: "step" as const };
  });
  return new Schedule(points);
}

if (import.meta.main) {
  const { values } = parseArgs(
    Deno.args,
    ["url", "schedule", "mix", "seconds", "cv", "seed", "token", "out", "grace-s", "body"],
    ["json", "help"],
  );
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const base = ((values.url as string | undefined) ?? "http://127.0.0.1:8080").replace(/\/$/, "");
  let schedule: Schedule;
  try {
    if (values.schedule) {
      schedule = Schedule.parse(await Deno.readTextFile(values.schedule as string), values.schedule as string);
    } else if (values.mix) {
      if (!values.seconds) fail("--mix needs --seconds");
      schedule = mixSchedule(values.mix as string);
    } else fail("give --schedule or --mix");
  } catch (e) {
    fail((e as Error).message);
  }
  const num = (name: string, fallback?: number) => {
    const v = values[name];
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!(n >= 0) || !Number.isFinite(n)) fail(`--${name} must be a number ≥ 0, got ${v}`);
    return n;
  };
  const token = clientToken(values.token as string | undefined);
  const bodies = new Map<string, string>();
  let pairs: [string, string][] = [];
  try {
    pairs = values.body ? namedValues("body", String(values.body), "FILE.json") : [];
  } catch (e) {
    fail((e as Error).message);
  }
  for (const [name, file] of pairs) {
    bodies.set(name, await Deno.readTextFile(file).catch((e) => fail(`--body ${name}: ${e.message}`)));
  }
  const targets = await discoverTargets(base, schedule.functions(), token, bodies).catch((e) => fail(e.message));
  const staged = targets.filter((t) => t.stages?.length);
  const before = staged.length ? await functionCounts(base) : undefined;
  const seconds = num("seconds") ?? schedule.end() + 10;
  console.error(`loading ${targets.map((t) => t.name).join(", ")} at ${base} for ${seconds} s`);
  const report = await runOpenLoop({
    url: new URL(base),
    targets,
    schedule,
    seconds,
    cv: num("cv", 1),
    seed: num("seed", 1),
    graceMs: (num("grace-s", 30) ?? 30) * 1000,
    sampleGpus: gpuSampler(base, token),
    progress: (s) =>
      console.error(
        `${String(s.t).padStart(4)} s  sent ${s.sent}  2xx ${s.ok}  within SLO ${
          s.attainment === null ? "-" : (100 * s.attainment).toFixed(1) + " %"
        }  429 ${s.rejected}  errors ${s.errors}  GPUs ${s.gpus ?? "-"}`,
      ),
  });
  if (before) {
    const after = await functionCounts(base);
    report.stages = Object.fromEntries(staged.map((t) => [
      t.name,
      Object.fromEntries(t.stages!.map((fn) => {
        const [a, b] = [after.get(fn), before.get(fn)];
        return [fn, { calls: (a?.answered ?? 0) - (b?.answered ?? 0), within: (a?.within ?? 0) - (b?.within ?? 0) }];
      })),
    ]));
  }
  const out = (values.out as string | undefined) ?? "loadgen";
  await Deno.writeTextFile(`${out}.json`, JSON.stringify(report, null, 2) + "\n");
  await Deno.writeTextFile(`${out}.svg`, timelineSvg(report, `gpulet load: ${schedule.functions().join(", ")}`));
  if (values.json) console.log(JSON.stringify(report, null, 2));
  else console.log(summarize(report));
  console.error(`report: ${out}.json, plot: ${out}.svg`);
}
