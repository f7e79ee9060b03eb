/**
 * `deno run -A scripts/setup.ts`: installs the system components the tests drive for real, when missing,
 * from Debian's apt (as root, or through `sudo -n`). `deno task test` runs it first, so the README's test
 * command works on a fresh Debian machine; `.ci/run` calls that same command.
 *
 * Each component is found first (an override variable, then its usual path or PATH), so a machine that
 * has them installs nothing. When one cannot be installed it says why and how, and exits 0: the tests
 * that need it then fail with the same message, and every other test still runs.
 */

/** A program some test needs, and the Debian package that provides it. */
interface Component {
  /** What it is for, in the progress lines. */
  what: string;
  /** Environment variable that points at another copy, if set. */
  env?: string;
  /** Executables to look for (absolute paths, or names on PATH). */
  candidates: string[];
  aptPackage: string;
}

export const COMPONENTS: Component[] = [
  {
    what: "Chromium (the dashboard's browser test)",
    env: "GPULET_CHROMIUM",
    candidates: ["/usr/bin/chromium", "chromium"],
    aptPackage: "chromium",
  },
  {
    what: "ImageMagick (the OCR tests render their own text images)",
    env: "GPULET_CONVERT",
    // Debian's own path: another `convert` earlier on PATH may not be ImageMagick.
    candidates: ["/usr/bin/convert-im6.q16", "/usr/bin/magick"],
    aptPackage: "imagemagick",
  },
  {
    what: "DejaVu fonts (the OCR tests' text: sans, serif, mono)",
    candidates: ["/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf"],
    aptPackage: "fonts-dejavu-core",
  },
  // The gRPC tests call the server from an independent client: Debian's Python grpcio (gRPC's C core).
  {
    what: "Python grpcio (the gRPC tests' client)",
    candidates: ["/usr/lib/python3/dist-packages/grpc/__init__.py"],
    aptPackage: "python3-grpcio",
  },
  {
    what: "Python protobuf (the gRPC tests' client messages)",
    candidates: ["/usr/lib/python3/dist-packages/google/protobuf/__init__.py"],
    aptPackage: "python3-protobuf",
  },
  {
    what: "protoc (generates the gRPC tests' client messages from the shipped .proto)",
    candidates: ["/usr/bin/protoc", "protoc"],
    aptPackage: "protobuf-compiler",
  },
  {
    what: "nats-server (the cluster tests' NATS JetStream servers)",
    env: "GPULET_NATS_SERVER",
    candidates: ["/usr/sbin/nats-server", "/usr/bin/nats-server", "nats-server"],
    aptPackage: "nats-server",
  },
];

/** True when `program` runs (an absolute path that exists, or a name found on PATH). */
async function exists(program: string): Promise<boolean> {
  if (program.startsWith("/")) {
    try {
      return (await Deno.stat(program)).isFile;
    } catch {
      return false;
    }
  }
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir && await exists(`${dir}/${program}`)) return true;
  }
  return false;
}

async function found(c: Component): Promise<boolean> {
  const override = c.env ? Deno.env.get(c.env) : undefined;
  if (override) return await exists(override);
  for (const p of c.candidates) if (await exists(p)) return true;
  return false;
}

/** Runs a command with its output shown only when it fails; returns whether it succeeded. */
async function run(cmd: string[]): Promise<{ ok: boolean; output: string }> {
  try {
    const out = await new Deno.Command(cmd[0], { args: cmd.slice(1), stdout: "piped", stderr: "piped" }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    return { ok: out.success, output: text.trim().split("\n").slice(-5).join("\n") };
  } catch (e) {
    return { ok: false, output: e instanceof Error ? e.message : String(e) };
  }
}

async function aptInstall(packages: string[]): Promise<string | null> {
  if (!(await exists("apt-get"))) return "this machine has no apt-get";
  const root = Deno.uid() === 0;
  if (!root && !(await exists("sudo"))) return "not root, and no sudo";
  // `sudo` resets the environment: `env` carries DEBIAN_FRONTEND through it (apt must never prompt).
  const prefix = root
    ? ["env", "DEBIAN_FRONTEND=noninteractive"]
    : ["sudo", "-n", "env", "DEBIAN_FRONTEND=noninteractive"];
  console.log(`setup: apt-get update`);
  const update = await run([...prefix, "apt-get", "update", "-qq"]);
  if (!update.ok) return `apt-get update failed: ${update.output}`;
  console.log(`setup: apt-get install ${packages.join(" ")} (a minute or two)`);
  const install = await run(
    [...prefix, "apt-get", "install", "-y", "-qq", "--no-install-recommends", ...packages],
  );
  return install.ok ? null : `apt-get install failed: ${install.output}`;
}

if (import.meta.main) {
  const missing: Component[] = [];
  for (const c of COMPONENTS) {
    if (await found(c)) continue;
    console.log(`setup: ${c.what} is missing`);
    missing.push(c);
  }
  if (missing.length > 0) {
    const t0 = performance.now();
    const failure = await aptInstall(missing.map((c) => c.aptPackage));
    for (const c of missing) {
      if (await found(c)) {
        console.log(`setup: installed ${c.aptPackage} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
      } else {
        console.log(
          `setup: could not install ${c.what}: ${failure ?? "not found after installing"}. ` +
            `Install it yourself (apt-get install ${c.aptPackage})${c.env ? ` or set ${c.env}` : ""}; ` +
            `the tests that need it will fail until then.`,
        );
      }
    }
  }
}
