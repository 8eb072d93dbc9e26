/**
 * Node-wide shared memory through the built binary: the supervisor creates one /dev/shm
 * file, every worker maps it (also a replacement for a worker that died), and the file
 * is removed when the gateway stops.
 */
import { afterEach, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { basics, startGateway, type Gateway } from "./helpers/gateway.ts";

const running: Gateway[] = [];
afterEach(() => {
  for (const gateway of running.splice(0)) if (gateway.process.exitCode === null) gateway.process.kill("SIGKILL");
});

async function workerPids(gateway: Gateway): Promise<number[]> {
  const status = (await (await fetch(`${gateway.adminUrl}/status`)).json()) as { workers: { pid: number; ready: boolean }[] };
  return status.workers.filter((w) => w.ready).map((w) => w.pid);
}

function mapsFile(pid: number, path: string): boolean {
  return readFileSync(`/proc/${pid}/maps`, "utf8").includes(path);
}

test("every worker maps the supervisor's shared memory, replacements too; stopping removes it", async () => {
  const gateway = await startGateway(
    (ports) => `${basics(ports)}
upstreams:
  fixed: { type: mock, mock: { status: 200, body: ok } }
routes:
  - name: all
    match: { paths: [/] }
    upstream: fixed
`,
    { workers: 2 },
  );
  running.push(gateway);
  const supervisor = gateway.process.pid;
  const files = readdirSync("/dev/shm").filter((name) => name.startsWith(`turnpike-${supervisor}-`));
  expect(files).toHaveLength(1);
  const path = `/dev/shm/${files[0]}`;
  const pids = await workerPids(gateway);
  expect(pids).toHaveLength(2);
  for (const pid of pids) expect(mapsFile(pid, path)).toBe(true);

  process.kill(pids[0]!, "SIGKILL");
  let replacement: number | undefined;
  for (let i = 0; i < 400 && replacement === undefined; i++) {
    await Bun.sleep(50);
    replacement = (await workerPids(gateway)).find((pid) => !pids.includes(pid));
  }
  expect(replacement).toBeDefined();
  expect(mapsFile(replacement!, path)).toBe(true);

  expect(await gateway.stop()).toBe(0);
  expect(existsSync(path)).toBe(false);
});
