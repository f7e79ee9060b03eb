/** A small `--flag value` / `--flag=value` / `--switch` parser for the CLI tasks. */
import { parseArgs as nodeParseArgs } from "node:util";

/** Parses `args` with the given string and boolean options; positional arguments are kept. */
export function parseArgs(args: string[], strings: string[], booleans: string[] = []) {
  const options: Record<string, { type: "string" | "boolean" }> = {};
  for (const s of strings) options[s] = { type: "string" };
  for (const b of booleans) options[b] = { type: "boolean" };
  const { values, positionals } = nodeParseArgs({ args, options, allowPositionals: true, strict: true });
  return { values: values as Record<string, string | boolean | undefined>, positionals };
}
