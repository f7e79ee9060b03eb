/**
 * A device's profiles as the planner uses them: `<dir>/<name>.csv` (latency) and, when present,
 * `<dir>/<name>-pairs.csv` fitted into the interference model, with the residuals of whole plans measured on
 * the device (`<dir>/<name>-colocated.csv`, `colocated.ts`) when those are present too. I/O at the edge of
 * the planner.
 */
import { readCsv } from "./csv.ts";
import { loadResiduals } from "./colocated.ts";
import { InterferenceModel } from "./interference.ts";
import { LatencyModel, PROFILE_COLUMNS } from "./latency_model.ts";
import { loadPairs, observations } from "./pairs.ts";

/** Loads `profiles/<name>.csv` (and `-pairs.csv` when present); parts are multiplied by `partScale`. */
export async function loadProfile(
  dir: string,
  name: string,
  partScale = 1,
): Promise<{ latency: LatencyModel; interference?: InterferenceModel }> {
  const path = `${dir}/${name}.csv`;
  const rows = (await readCsv(path, PROFILE_COLUMNS))
    .filter((r) => r.part * partScale <= 100 + 1e-9)
    .map((r) => ({ ...r, part: Math.round(r.part * partScale * 1000) / 1000 }));
  if (rows.length === 0) throw new Error(`${path}: no part fits a device of 1/${partScale} of the profiled one`);
  const latency = LatencyModel.fromRows(rows, path);
  if (partScale !== 1) return { latency };
  const interference = await ifPresent(() => loadInterference(latency, `${dir}/${name}-pairs.csv`));
  return interference ? { latency, interference } : { latency };
}

/**
 * The interference model fitted on a pairs file (`X-pairs.csv`), with the residuals of whole plans beside it
 * (`X-colocated.csv`) when that file exists.
 */
export async function loadInterference(latency: LatencyModel, pairsPath: string): Promise<InterferenceModel> {
  const model = InterferenceModel.fit(latency, observations(await loadPairs(pairsPath)));
  const colocated = pairsPath.replace(/-pairs\.csv$/, "-colocated.csv");
  const residuals = colocated === pairsPath ? undefined : await ifPresent(() => loadResiduals(colocated));
  return residuals ? model.withResiduals(residuals) : model;
}

/** What `read` reads, or undefined when its file does not exist. */
async function ifPresent<T>(read: () => Promise<T>): Promise<T | undefined> {
  try {
    return await read();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}
