/**
 * The programs the benchmark needs: nginx and wrk from Debian's packages (installed
 * when missing) and the Turnpike binary (built when missing).
 */
import { existsSync, readdirSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** Paths of the tools a run uses. */
export interface Tools {
  nginx: string;
  wrk: string;
}

const APT_TIMEOUT_MS = 10 * 60_000;
/** Debian's way to keep package scripts from starting services (see invoke-rc.d(8)). */
const POLICY_RC_D = "/usr/sbin/policy-rc.d";

function locate(name: string): string | null {
  const found = Bun.which(name, { PATH: `${process.env.PATH ?? ""}:/usr/sbin:/usr/bin:/sbin:/bin` });
  return found ?? null;
}

/** Runs a command with output shown, killed after `timeoutMs`; throws unless it exits 0. */
async function runShown(argv: string[], timeoutMs: number, env?: Record<string, string | undefined>, cwd?: string): Promise<void> {
  console.log(`$ ${argv.join(" ")}`);
  const child = Bun.spawn(argv, { stdin: "ignore", stdout: "inherit", stderr: "inherit", env, cwd });
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const code = await child.exited;
  clearTimeout(timer);
  if (code !== 0) throw new Error(`${argv.join(" ")} failed (exit ${code ?? child.signalCode})`);
}

/**
 * Finds nginx and wrk, installing both with apt-get when either is missing
 * (`apt-get update` once, then `apt-get install -y nginx wrk`). The package scripts
 * are kept from starting the system nginx service, which would listen on port 80 of
 * every address: a temporary policy-rc.d refuses it when the machine has none.
 */
export async function ensureTools(): Promise<Tools> {
  let nginx = locate("nginx");
  let wrk = locate("wrk");
  if (nginx && wrk) return { nginx, wrk };

  console.log(`Installing ${[nginx ? null : "nginx", wrk ? null : "wrk"].filter(Boolean).join(" and ")} from Debian's packages`);
  if (process.getuid?.() !== 0) throw new Error("nginx and wrk are missing and installing them needs root (apt-get)");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  let madePolicy = false;
  if (!existsSync(POLICY_RC_D)) {
    writeFileSync(POLICY_RC_D, "#!/bin/sh\n# Written by Turnpike's bench/tools.ts while it installs nginx; removed after.\nexit 101\n", { mode: 0o755 });
    madePolicy = true;
  }
  try {
    await runShown(["apt-get", "update"], APT_TIMEOUT_MS, env);
    await runShown(["apt-get", "install", "-y", "--no-install-recommends", "nginx", "wrk"], APT_TIMEOUT_MS, env);
  } finally {
    if (madePolicy) unlinkSync(POLICY_RC_D);
  }
  nginx = locate("nginx");
  wrk = locate("wrk");
  if (!nginx || !wrk) throw new Error("apt-get install finished but nginx or wrk is still not on PATH");
  return { nginx, wrk };
}

/** First line a command prints on stdout or stderr (for version strings). */
export function firstLine(argv: string[]): string {
  const result = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
  const text = `${result.stdout.toString()}\n${result.stderr.toString()}`;
  return text.split("\n").map((line) => line.trim()).find(Boolean) ?? "";
}

/** Newest modification time (ms) of any file under `dir`. */
function newestUnder(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestUnder(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/**
 * Makes sure `binary` exists, running `bun run build` in `repo` when it is missing or
 * `rebuild` is set. Returns a warning when the binary is older than a file in src/.
 */
export async function ensureBinary(repo: string, binary: string, rebuild: boolean): Promise<string | null> {
  if (rebuild || !existsSync(binary)) {
    console.log(rebuild ? "Rebuilding dist/turnpike" : "dist/turnpike is missing: building it");
    await runShown([process.execPath, "run", "build"], 5 * 60_000, undefined, repo);
    if (!existsSync(binary)) throw new Error(`bun run build did not produce ${binary}`);
    return null;
  }
  const source = join(repo, "src");
  if (existsSync(source) && newestUnder(source) > statSync(binary).mtimeMs) {
    return "dist/turnpike is older than src/: these numbers are for the old build (use --rebuild)";
  }
  return null;
}
