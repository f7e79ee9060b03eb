/**
 * A device's profiles as the planner uses them: `<dir>/<name>.csv` (latency) and, when present,
 * `<dir>/<name>-pairs.csv` fitted into the interference model. I/O at the edge of the planner.
 */
import { readCsv } from "./csv.ts";
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
  try {
    const pairs = await loadPairs(`${dir}/${name}-pairs.csv`);
    return { latency, interference: InterferenceModel.fit(latency, observations(pairs)) };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { latency };
    throw e;
  }
}
