/** `deno task invoke NAME --data JSON [--url U]`: calls a function and prints its answer. */
import { parseArgs } from "./args.ts";

if (import.meta.main) {
  const { values, positionals } = parseArgs(Deno.args, ["data", "url"]);
  const name = positionals[0];
  if (!name || values.data === undefined) {
    console.error("usage: deno task invoke NAME --data '{...}' [--url http://127.0.0.1:8080]");
    Deno.exit(2);
  }
  const url = ((values.url as string | undefined) ?? "http://127.0.0.1:8080").replace(/\/$/, "");
  const res = await fetch(`${url}/functions/${encodeURIComponent(name)}/invoke`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: values.data as string,
  });
  const text = await res.text();
  console.log(text);
  if (!res.ok) {
    console.error(`HTTP ${res.status}`);
    Deno.exit(1);
  }
}
