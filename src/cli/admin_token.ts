/**
 * The admin token: `deno task start` makes one when it listens beyond loopback and none was given (an open
 * admin API on a network would let anyone deploy code), and the CLI tasks find it again.
 */

/** Where `start` keeps the token it made, inside the state directory. */
export function tokenFile(stateDir: string): string {
  return `${stateDir}/admin-token`;
}

/** True for addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** A fresh random token (32 bytes, base64url). */
export function newToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * The token `start` should require: the given one; else, beyond loopback, the one saved in the state
 * directory or a new one saved there (mode 600); else none.
 */
export async function startToken(
  given: string | undefined,
  host: string,
  stateDir: string,
): Promise<{ token?: string; madeAt?: string }> {
  if (given) return { token: given };
  if (isLoopback(host)) return {};
  const file = tokenFile(stateDir);
  try {
    const saved = (await Deno.readTextFile(file)).trim();
    if (saved) return { token: saved, madeAt: file };
  } catch { /* none yet */ }
  await Deno.mkdir(stateDir, { recursive: true });
  const token = newToken();
  await Deno.writeTextFile(file, `${token}\n`, { mode: 0o600 });
  return { token, madeAt: file };
}

/** The token a CLI task sends: `--token`, else GPULET_ADMIN_TOKEN, else the one `start` saved in `.gpulet/`. */
export function clientToken(flag: string | undefined, stateDir = ".gpulet"): string | undefined {
  if (flag) return flag;
  const env = Deno.env.get("GPULET_ADMIN_TOKEN");
  if (env) return env;
  try {
    return Deno.readTextFileSync(tokenFile(stateDir)).trim() || undefined;
  } catch {
    return undefined;
  }
}
