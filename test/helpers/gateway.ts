/**
 * Test helper: runs the built binary `dist/turnpike` on a config written to a temp
 * folder, waits until the admin API says it is ready, and collects its logs.
 */
import type { Subprocess } from "bun";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const BINARY = resolve(import.meta.dir, "../../dist/turnpike");

/** A free TCP port on 127.0.0.1 (bound and released). */
export function freePort(): number {
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = server.port;
  server.stop(true);
  return port;
}

/** Ports handed to a config template. */
export interface Ports {
  port: number;
  adminPort: number;
  /** A second free port, for configs with two listeners. */
  port2: number;
}

export interface GatewayOptions {
  workers?: number;
  env?: Record<string, string>;
  /** Extra files to write beside the config (name → content). */
  files?: Record<string, string>;
  /** Do not wait for readiness (for configs expected to fail). */
  noWait?: boolean;
}

/** A running gateway process. */
export interface Gateway {
  url: string;
  adminUrl: string;
  ports: Ports;
  dir: string;
  configPath: string;
  process: Subprocess<"ignore", "pipe", "pipe">;
  /** Everything the process wrote so far (stdout and stderr). */
  logs(): string;
  /** Replaces the config file text (does not signal). */
  writeConfig(text: string): void;
  /** Sends SIGHUP and waits for the reload outcome line in the logs. */
  reload(): Promise<"reloaded" | "failed">;
  /** Sends SIGTERM and waits for exit; returns the exit code. */
  stop(): Promise<number>;
}

/** Starts the binary on a config made by `template(ports)`. */
export async function startGateway(template: (ports: Ports) => string, options: GatewayOptions = {}): Promise<Gateway> {
  const dir = mkdtempSync(join(tmpdir(), "turnpike-test-"));
  const ports: Ports = { port: freePort(), adminPort: freePort(), port2: freePort() };
  const configPath = join(dir, "turnpike.yaml");
  for (const [name, content] of Object.entries(options.files ?? {})) writeFileSync(join(dir, name), content);
  writeFileSync(configPath, template(ports));
  const args = [BINARY, "run", configPath];
  if (options.workers !== undefined) args.push("--workers", String(options.workers));
  const proc = Bun.spawn(args, {
    cwd: dir,
    env: { ...inheritedEnv(), ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) output += decoder.decode(chunk, { stream: true });
  };
  void collect(proc.stdout);
  void collect(proc.stderr);

  const gateway: Gateway = {
    url: `http://127.0.0.1:${ports.port}`,
    adminUrl: `http://127.0.0.1:${ports.adminPort}`,
    ports,
    dir,
    configPath,
    process: proc,
    logs: () => output,
    writeConfig: (text) => writeFileSync(configPath, text),
    async reload() {
      const before = output.length;
      proc.kill("SIGHUP");
      const deadline = performance.now() + 20_000;
      while (performance.now() < deadline) {
        const fresh = output.slice(before);
        if (fresh.includes('"msg":"config reloaded"')) return "reloaded";
        if (fresh.includes('"msg":"reload failed')) return "failed";
        await Bun.sleep(20);
      }
      throw new Error(`no reload outcome within 20 s; logs:\n${output}`);
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode ?? -1;
      proc.kill("SIGTERM");
      const code = await Promise.race([proc.exited, Bun.sleep(40_000).then(() => null)]);
      if (code === null) {
        proc.kill("SIGKILL");
        throw new Error(`gateway did not stop within 40 s; logs:\n${output}`);
      }
      return code;
    },
  };
  if (!options.noWait) await waitReady(gateway);
  return gateway;
}

/**
 * The test process's environment without what the gateway sets for its own children: a
 * test that creates node shared memory in-process sets TURNPIKE_SHARED_MEMORY, and a
 * gateway inheriting it would map a file that belongs to nobody (or no longer exists).
 */
function inheritedEnv(): Record<string, string | undefined> {
  const env = { ...process.env };
  delete env.TURNPIKE_SHARED_MEMORY;
  return env;
}

/** Polls `GET /readyz` until 200; fails with the logs if the process exits or 20 s pass. */
export async function waitReady(gateway: Gateway): Promise<void> {
  const deadline = performance.now() + 20_000;
  while (performance.now() < deadline) {
    if (gateway.process.exitCode !== null) throw new Error(`gateway exited with ${gateway.process.exitCode}; logs:\n${gateway.logs()}`);
    try {
      const response = await fetch(`${gateway.adminUrl}/readyz`);
      if (response.status === 200) return;
    } catch {
      // not listening yet
    }
    await Bun.sleep(25);
  }
  throw new Error(`gateway not ready within 20 s; logs:\n${gateway.logs()}`);
}

/** The minimal listener/admin block for a template. */
export function basics(ports: Ports): string {
  return `listeners:
  - address: 127.0.0.1
    port: ${ports.port}
admin:
  port: ${ports.adminPort}
`;
}
