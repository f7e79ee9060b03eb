/**
 * The layout a newcomer relies on: folders of `src/` import one another without cycles, and the lower layers
 * (what runs inside a worker, the function SDK, the planner) import nothing above them.
 */
import assert from "node:assert/strict";
import { ROOT } from "./helpers.ts";

/** Folder → the other folders of `src/` its modules import (relative specifiers only). */
function folderImports(): Map<string, Set<string>> {
  const graph = new Map<string, Set<string>>();
  const walk = (dir: string) => {
    for (const e of Deno.readDirSync(dir)) {
      const path = `${dir}/${e.name}`;
      if (e.isDirectory) walk(path);
      else if (e.name.endsWith(".ts")) {
        const folder = path.slice(`${ROOT}/src/`.length).split("/")[0];
        const text = Deno.readTextFileSync(path);
        for (const m of text.matchAll(/(?:from|import)\s*\(?\s*"(\.\.?\/[^"]+)"/g)) {
          const target = new URL(m[1], `file://${path}`).pathname;
          if (!target.startsWith(`${ROOT}/src/`)) continue;
          const to = target.slice(`${ROOT}/src/`.length).split("/")[0];
          if (to === folder) continue;
          if (!graph.has(folder)) graph.set(folder, new Set());
          graph.get(folder)!.add(to);
        }
      }
    }
  };
  walk(`${ROOT}/src`);
  return graph;
}

Deno.test("architecture: no import cycles between the folders of src/", () => {
  const graph = folderImports();
  const cycles: string[] = [];
  const visit = (start: string, at: string, path: string[]) => {
    for (const next of graph.get(at) ?? []) {
      if (next === start) cycles.push([...path, start].join(" → "));
      else if (!path.includes(next) && next > start) visit(start, next, [...path, next]);
    }
  };
  for (const folder of graph.keys()) visit(folder, folder, [folder]);
  assert.deepEqual(cycles, []);
});

Deno.test("architecture: the worker runtime, the function SDK and the planner import no layer above them", () => {
  const graph = folderImports();
  assert.deepEqual([...graph.get("runtime") ?? []].sort(), ["functions"]);
  assert.deepEqual([...graph.get("functions") ?? []], []);
  assert.deepEqual([...graph.get("planner") ?? []].sort(), ["functions"]);
  // And something was read: the controller imports the planner and the runtime.
  assert.ok(graph.get("controller")?.has("planner") && graph.get("controller")?.has("runtime"));
});
