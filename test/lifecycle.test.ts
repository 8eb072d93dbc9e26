/**
 * Process lifecycle through the built binary: reload under load (SIGHUP, admin API,
 * file watch) with no failed request, failing reloads that keep the old config, a
 * worker killed under load and replaced, a rolling restart, and the drain on SIGTERM.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { basics, startGateway, type Gateway, type Ports } from "./helpers/gateway.ts";
import { startLoad, waitFor, type LoadSample } from "./helpers/load.ts";

interface Status {
  config_generation: number;
  workers: { pid: number; ready: boolean; generation: number }[];
  worker_restarts: number;
  draining_workers: number;
}

const running: Gateway[] = [];
afterEach(async () => {
  for (const gateway of running.splice(0)) {
    if (gateway.process.exitCode === null && gateway.process.signalCode === null) gateway.process.kill("SIGKILL");
  }
});

async function start(template: (ports: Ports) => string, workers = 2, env?: Record<string, string>): Promise<Gateway> {
  const gateway = await startGateway(template, { workers, env });
  running.push(gateway);
  return gateway;
}

/** Whether a process runs (a zombie waiting to be reaped does not count). */
function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

async function status(gateway: Gateway): Promise<Status> {
  return (await (await fetch(`${gateway.adminUrl}/status`)).json()) as Status;
}

/** A config whose /v route answers `version` in the body and the `x-version` header. */
function versioned(version: number, extra = "") {
  return (ports: Ports) => `${basics(ports)}${extra}
upstreams:
  versioned:
    type: mock
    mock: { status: 200, body: "v${version}", headers: { x-version: "${version}" } }
routes:
  - name: versioned
    match: { paths: [/v] }
    upstream: versioned
`;
}

/** Which version each sample saw; failed samples say so. */
function describeFailures(samples: LoadSample[]): string {
  return samples
    .filter((s) => s.status !== 200)
    .slice(0, 5)
    .map((s) => `${s.status} ${s.body.slice(0, 120)}`)
    .join("\n");
}

/**
 * Runs a load on /v while `change(i)` switches to version i for i = 2..rounds+1; checks
 * that no request failed and that every request sent after a reload was confirmed saw
 * that version or a later one.
 */
async function reloadUnderLoad(gateway: Gateway, rounds: number, change: (version: number) => Promise<void>) {
  const load = startLoad(`${gateway.url}/v`, { clients: 6, maxDurationMs: 10_000 });
  await waitFor("first responses", () => load.count() > 20);
  const confirmed: { version: number; at: number }[] = [];
  for (let version = 2; version <= rounds + 1; version++) {
    await change(version);
    confirmed.push({ version, at: performance.now() });
    // The new behaviour is visible to a fresh request at once.
    const fresh = await fetch(`${gateway.url}/v`);
    expect(await fresh.text()).toBe(`v${version}`);
    expect(fresh.headers.get("x-version")).toBe(String(version));
    const before = load.count();
    await waitFor("requests on the new config", () => load.count() > before + 20);
  }
  const samples = await load.stop();
  expect(describeFailures(samples)).toBe("");
  expect(samples.every((s) => s.status === 200)).toBe(true);
  for (const { version, at } of confirmed) {
    const after = samples.filter((s) => s.startedAt > at);
    const stale = after.filter((s) => Number(s.body.slice(1)) < version);
    expect(stale.map((s) => s.body)).toEqual([]);
  }
  // Header and body always come from the same generation.
  expect(samples.filter((s) => s.headers.get("x-version") !== s.body.slice(1))).toEqual([]);
  return samples.length;
}

describe("reload under load", () => {
  test("SIGHUP several times: no failed request, and the new config serves once reloaded", async () => {
    const gateway = await start(versioned(1));
    const { workers } = await status(gateway);
    const total = await reloadUnderLoad(gateway, 4, async (version) => {
      gateway.writeConfig(versioned(version)(gateway.ports));
      expect(await gateway.reload()).toBe("reloaded");
    });
    expect(total).toBeGreaterThan(100);
    console.log(`reload via SIGHUP: ${total} requests, 4 reloads, 0 failures`);
    // In place: the same worker processes serve the new generation.
    const after = await status(gateway);
    expect(after.workers.map((w) => w.pid)).toEqual(workers.map((w) => w.pid));
    expect(after.config_generation).toBe(5);
    expect(after.workers.every((w) => w.generation === 5)).toBe(true);
    expect(await gateway.stop()).toBe(0);
  });

  test("POST /reload under load: no failed request; it answers with the new generation", async () => {
    const gateway = await start(versioned(1));
    const total = await reloadUnderLoad(gateway, 3, async (version) => {
      gateway.writeConfig(versioned(version)(gateway.ports));
      const response = await fetch(`${gateway.adminUrl}/reload`, { method: "POST" });
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ ok: true, errors: [], generation: version });
    });
    console.log(`reload via POST /reload: ${total} requests, 3 reloads, 0 failures`);
    expect(await gateway.stop()).toBe(0);
  });

  test("server.watch: saving the file reloads by itself, also when saved by rename", async () => {
    const watching = "server:\n  watch: true\n";
    const gateway = await start(versioned(1, watching));
    const total = await reloadUnderLoad(gateway, 2, async (version) => {
      const before = gateway.logs().length;
      const text = versioned(version, watching)(gateway.ports);
      if (version === 2) {
        gateway.writeConfig(text);
      } else {
        // The way many editors save: write a new file, rename it over the old one.
        writeFileSync(`${gateway.configPath}.tmp`, text);
        renameSync(`${gateway.configPath}.tmp`, gateway.configPath);
      }
      await waitFor("the watch reload", () => gateway.logs().slice(before).includes('"msg":"config reloaded"'), 5000);
      expect(gateway.logs().slice(before)).toContain('"reason":"config file changed"');
    });
    console.log(`reload via file watch: ${total} requests, 2 reloads, 0 failures`);
    expect(await gateway.stop()).toBe(0);
  });

  test("edits in quick succession: the last one wins", async () => {
    const gateway = await start(versioned(1));
    gateway.writeConfig(versioned(2)(gateway.ports));
    const first = fetch(`${gateway.adminUrl}/reload`, { method: "POST" });
    // The first reload has read the file; this edit must not be lost.
    await Bun.sleep(5);
    gateway.writeConfig(versioned(3)(gateway.ports));
    const second = fetch(`${gateway.adminUrl}/reload`, { method: "POST" });
    expect((await first).status).toBe(200);
    expect(await (await second).json()).toMatchObject({ ok: true });
    expect(await (await fetch(`${gateway.url}/v`)).text()).toBe("v3");
    expect(await gateway.stop()).toBe(0);
  });
});

describe("a failing reload keeps the old config serving", () => {
  /** [name, how the config is broken, the message expected, a text on the line it names]. */
  const broken: [string, (text: string) => string, string, string][] = [
    ["YAML syntax error", (text) => text.replace("routes:", "routes: [oops"), "(root): YAML syntax: ", "[oops"],
    [
      "unknown upstream",
      (text) => text.replace("upstream: versioned", "upstream: nowhere"),
      'routes[0].upstream: unknown upstream "nowhere"',
      "upstream: nowhere",
    ],
    [
      "missing environment variable",
      (text) => text.replace('body: "v2"', 'body: "${TURNPIKE_TEST_UNSET_VARIABLE}"'),
      "upstreams.versioned.mock.body: environment variable TURNPIKE_TEST_UNSET_VARIABLE is not set",
      "TURNPIKE_TEST_UNSET_VARIABLE",
    ],
  ];

  test.each(broken)("%s: SIGHUP logs why with path and line; /readyz stays 200", async (_name, breakIt, message, marker) => {
    const gateway = await start(versioned(1));
    const load = startLoad(`${gateway.url}/v`, { clients: 3, maxDurationMs: 5000 });
    const text = breakIt(versioned(2)(gateway.ports));
    const line = text.split("\n").findIndex((l) => l.includes(marker)) + 1;
    gateway.writeConfig(text);
    expect(await gateway.reload()).toBe("failed");
    const logLine = gateway.logs().split("\n").find((l) => l.includes("reload failed"))!;
    const logged = JSON.parse(logLine) as { msg: string; level: string; errors: string[] };
    expect(logged.level).toBe("error");
    expect(logged.msg).toContain("the current config keeps serving");
    const error = logged.errors.find((e) => e.includes(message));
    expect(error).toStartWith(`${gateway.configPath}: `);
    expect(error).toMatch(new RegExp(`\\(line ${line}, col \\d+\\)$`));
    expect((await fetch(`${gateway.adminUrl}/readyz`)).status).toBe(200);
    expect(await (await fetch(`${gateway.url}/v`)).text()).toBe("v1");
    expect((await status(gateway)).config_generation).toBe(1);

    // The admin API answers 422 with the same errors.
    const response = await fetch(`${gateway.adminUrl}/reload`, { method: "POST" });
    expect(response.status).toBe(422);
    expect(await response.json()).toEqual({ ok: false, errors: logged.errors, generation: 1 });

    const samples = await load.stop();
    expect(describeFailures(samples)).toBe("");
    expect(samples.every((s) => s.body === "v1")).toBe(true);

    // Fixing the file and reloading again works.
    gateway.writeConfig(versioned(2)(gateway.ports));
    expect(await gateway.reload()).toBe("reloaded");
    expect(await (await fetch(`${gateway.url}/v`)).text()).toBe("v2");
    expect(await gateway.stop()).toBe(0);
  });

  test("a listener change whose port is taken: nothing new starts, the old workers serve on", async () => {
    const blocker = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const gateway = await start(versioned(1));
      const { workers } = await status(gateway);
      gateway.writeConfig(
        versioned(2)(gateway.ports).replace("admin:", `  - address: 127.0.0.1\n    port: ${blocker.port}\nadmin:`),
      );
      expect(await gateway.reload()).toBe("failed");
      const logged = JSON.parse(gateway.logs().split("\n").find((l) => l.includes("reload failed"))!) as { errors: string[] };
      expect(logged.errors).toEqual([`${gateway.configPath}: listeners[1].port: 127.0.0.1:${blocker.port} is in use`]);
      // No worker of the new generation was started.
      expect(gateway.logs()).not.toContain("cannot listen");
      expect(await (await fetch(`${gateway.url}/v`)).text()).toBe("v1");
      const after = await status(gateway);
      expect(after.workers.map((w) => w.pid)).toEqual(workers.map((w) => w.pid));
      expect(after.worker_restarts).toBe(0);
      expect((await fetch(`${gateway.adminUrl}/readyz`)).status).toBe(200);
      expect(await gateway.stop()).toBe(0);
    } finally {
      blocker.stop(true);
    }
  });
});

describe("worker processes", () => {
  test("a worker killed under load is replaced at once; only its in-flight requests fail", async () => {
    const gateway = await start(versioned(1));
    const before = await status(gateway);
    expect(before.workers.length).toBe(2);
    const victim = before.workers[0]!.pid;
    const survivor = before.workers[1]!.pid;

    const load = startLoad(`${gateway.url}/v`, { clients: 8, maxDurationMs: 10_000 });
    await waitFor("load running", () => load.count() > 200);
    const killedAt = performance.now();
    process.kill(victim, "SIGKILL");
    // The replacement appears at once; it serves once it has started and compiled the config.
    const appeared = await waitFor(
      "a replacement worker",
      async () => {
        const now = await status(gateway);
        return now.workers.length === 2 && now.workers.every((w) => w.pid !== victim) ? now : null;
      },
      1000,
      5,
    );
    const appearedMs = performance.now() - killedAt;
    expect(appeared.worker_restarts).toBe(1);
    expect(appeared.workers.map((w) => w.pid)).toContain(survivor);
    // Starting takes 0.3 s on an idle machine; allow for a busy one.
    await waitFor("the replacement serving", async () => (await status(gateway)).workers.every((w) => w.ready), 5000, 10);
    const respawnMs = performance.now() - killedAt;
    const countAtRespawn = load.count();
    await waitFor("more requests", () => load.count() > countAtRespawn + 300);
    const samples = await load.stop();

    const failed = samples.filter((s) => s.status !== 200);
    // Only requests already under way on the dead worker's connections may fail: at most
    // one per client connection, and none sent after the replacement was up.
    expect(failed.length).toBeLessThanOrEqual(8);
    expect(failed.filter((s) => s.startedAt > killedAt + respawnMs)).toEqual([]);
    console.log(
      `worker kill: ${samples.length} requests, ${failed.length} failed (${failed.map((s) => s.body.slice(0, 60)).join("; ")}), replacement listed after ${Math.round(appearedMs)} ms, serving after ${Math.round(respawnMs)} ms`,
    );

    const exitLine = gateway.logs().split("\n").find((l) => l.includes("worker exited; starting a replacement"))!;
    expect(JSON.parse(exitLine)).toMatchObject({ level: "warn", pid: victim, signal: "SIGKILL", cause: "killed by SIGKILL" });
    expect(await gateway.stop()).toBe(0);
  });

  test("a worker that exits by itself is replaced and its exit code is logged", async () => {
    const gateway = await start(versioned(1), 1);
    const [worker] = (await status(gateway)).workers;
    // SIGTERM makes a worker drain and exit 0 by itself; the supervisor still replaces it.
    process.kill(worker!.pid, "SIGTERM");
    const replaced = await waitFor("a replacement", async () => {
      const now = await status(gateway);
      return now.workers[0]!.pid !== worker!.pid && now.workers[0]!.ready ? now : null;
    });
    expect(replaced.worker_restarts).toBe(1);
    expect(gateway.logs()).toMatch(/"msg":"worker exited; starting a replacement".*"cause":"exit code 0"/);
    expect(await (await fetch(`${gateway.url}/v`)).text()).toBe("v1");
    expect(await gateway.stop()).toBe(0);
  });

  test("a replacement started during a reload serves the new config", async () => {
    const gateway = await start(versioned(1));
    const { workers } = await status(gateway);
    gateway.writeConfig(versioned(2)(gateway.ports));
    process.kill(workers[0]!.pid, "SIGKILL");
    expect(await gateway.reload()).toBe("reloaded");
    const now = await waitFor("two ready workers", async () => {
      const s = await status(gateway);
      return s.workers.every((w) => w.ready && w.generation === 2) ? s : null;
    });
    expect(now.workers.map((w) => w.pid)).not.toContain(workers[0]!.pid);
    // Fresh connections spread over both workers; every one must see v2.
    for (let i = 0; i < 20; i++) {
      const response = await fetch(`${gateway.url}/v`, { headers: { connection: "close" } });
      expect(await response.text()).toBe("v2");
    }
    expect(await gateway.stop()).toBe(0);
  });

  test("server.workers changed by an in-place reload starts or drains workers", async () => {
    const workers = (n: number) => `server:\n  workers: ${n}\n`;
    const gateway = await startGateway(versioned(1, workers(1)));
    running.push(gateway);
    const [first] = (await status(gateway)).workers;
    gateway.writeConfig(versioned(2, workers(3))(gateway.ports));
    expect(await gateway.reload()).toBe("reloaded");
    const grown = await waitFor("three ready workers", async () => {
      const now = await status(gateway);
      return now.workers.length === 3 && now.workers.every((w) => w.ready && w.generation === 2) ? now : null;
    });
    expect(grown.workers[0]!.pid).toBe(first!.pid);
    gateway.writeConfig(versioned(3, workers(2))(gateway.ports));
    expect(await gateway.reload()).toBe("reloaded");
    const shrunk = await status(gateway);
    expect(shrunk.workers.map((w) => w.pid)).toEqual(grown.workers.slice(0, 2).map((w) => w.pid));
    await waitFor("the third worker gone", async () => (await status(gateway)).draining_workers === 0 && !isRunning(grown.workers[2]!.pid));
    for (let i = 0; i < 10; i++) expect(await (await fetch(`${gateway.url}/v`, { headers: { connection: "close" } })).text()).toBe("v3");
    expect(await gateway.stop()).toBe(0);
  });

  test("rolling restart (a listener is added) under load: keep-alive clients move over, old workers drain", async () => {
    const gateway = await start(versioned(1));
    const before = await status(gateway);
    // Keep-alive clients, and clients that open a new connection for every request.
    const keepAlive = startLoad(`${gateway.url}/v`, { clients: 4, maxDurationMs: 10_000 });
    const fresh = startLoad(`${gateway.url}/v`, { clients: 4, maxDurationMs: 10_000, closeEach: true });
    await waitFor("load running", () => keepAlive.count() > 100 && fresh.count() > 50);
    gateway.writeConfig(
      versioned(2)(gateway.ports).replace("admin:", `  - address: 127.0.0.1\n    port: ${gateway.ports.port2}\nadmin:`),
    );
    expect(await gateway.reload()).toBe("reloaded");
    expect(gateway.logs()).toContain('"mode":"rolling restart"');
    const after = await status(gateway);
    expect(after.workers.map((w) => w.pid).some((pid) => before.workers.some((w) => w.pid === pid))).toBe(false);
    expect(await (await fetch(`http://127.0.0.1:${gateway.ports.port2}/v`)).text()).toBe("v2");
    await waitFor("old workers gone", async () => (await status(gateway)).draining_workers === 0, 5000);
    const countNow = keepAlive.count();
    await waitFor("more requests", () => keepAlive.count() > countNow + 100);
    const keptSamples = await keepAlive.stop();
    const freshSamples = await fresh.stop();
    const keptFailed = keptSamples.filter((s) => s.status !== 200);
    const freshFailed = freshSamples.filter((s) => s.status !== 200);
    const migrate = readFileSync("/proc/sys/net/ipv4/tcp_migrate_req", "utf8").trim();
    console.log(
      `rolling restart (tcp_migrate_req=${migrate}): keep-alive ${keptSamples.length} requests, ${keptFailed.length} failed; ` +
        `new connection each ${freshSamples.length} requests, ${freshFailed.length} failed`,
    );
    // Old workers answer with Connection: close for a moment before closing, so a
    // keep-alive client never sends on a connection that is being closed.
    if (migrate === "1") {
      // The kernel hands connections queued on a closing listener to one that stays.
      expect(describeFailures([...keptSamples, ...freshSamples])).toBe("");
    } else {
      // Linux's default resets connections queued on the closing listener (measured: 3-4
      // per rolling restart at 7,000 new connections/s). Their clients see ECONNRESET.
      expect([...keptFailed, ...freshFailed].every((s) => s.status === 0 && s.body.includes("ECONNRESET"))).toBe(true);
      expect(keptFailed.length + freshFailed.length).toBeLessThanOrEqual(8);
      expect(gateway.logs()).toContain("net.ipv4.tcp_migrate_req=1");
    }
    expect(keptSamples.filter((s) => s.status === 200).at(-1)!.body).toBe("v2");
    expect(await gateway.stop()).toBe(0);
  });
});

describe("drain on SIGTERM", () => {
  const slow = (drain: string, delay: string) => (ports: Ports) => `${basics(ports)}
server:
  drain_timeout: ${drain}
upstreams:
  slow:
    type: mock
    mock: { status: 200, body: "finished", delay: ${delay} }
  fast:
    type: mock
    mock: { status: 200, body: "fast" }
routes:
  - name: slow
    match: { paths: [/slow] }
    upstream: slow
  - name: fast
    match: { paths: [/fast] }
    upstream: fast
`;

  test("a request in flight completes, new connections are refused, the process exits 0", async () => {
    const gateway = await start(slow("10s", "1s"));
    const inFlight = fetch(`${gateway.url}/slow`);
    await Bun.sleep(200);
    const signalledAt = performance.now();
    gateway.process.kill("SIGTERM");
    await waitFor("drain started", () => gateway.logs().includes('"msg":"draining"'), 2000);
    await Bun.sleep(50);
    const refused = await fetch(`${gateway.url}/fast`, { headers: { connection: "close" } }).then(
      (r) => `status ${r.status}`,
      (error: Error) => `error ${error.message}`,
    );
    expect(refused).toMatch(/^error /);
    const response = await inFlight;
    expect(response.status).toBe(200);
    expect(await response.text()).toBe("finished");
    const code = await gateway.process.exited;
    const tookMs = performance.now() - signalledAt;
    expect(code).toBe(0);
    expect(tookMs).toBeLessThan(3000);
    expect(gateway.logs()).toContain('"msg":"stopped"');
  });

  test("a request longer than server.drain_timeout is cut and the process still exits 0 in time", async () => {
    const gateway = await start(slow("300ms", "5s"));
    const inFlight = fetch(`${gateway.url}/slow`).then(
      (r) => `status ${r.status}`,
      (error: Error) => `error ${error.message}`,
    );
    await Bun.sleep(200);
    const signalledAt = performance.now();
    gateway.process.kill("SIGTERM");
    const code = await gateway.process.exited;
    const tookMs = performance.now() - signalledAt;
    expect(code).toBe(0);
    expect(tookMs).toBeGreaterThan(250);
    expect(tookMs).toBeLessThan(2000);
    expect(await inFlight).toMatch(/^error /);
    expect(gateway.logs()).toContain("grace period over; closing remaining requests");
  });

  test("SIGTERM while idle exits 0 at once and leaves no worker behind", async () => {
    const gateway = await start(slow("30s", "1s"));
    const { workers } = await status(gateway);
    const signalledAt = performance.now();
    gateway.process.kill("SIGTERM");
    expect(await gateway.process.exited).toBe(0);
    expect(performance.now() - signalledAt).toBeLessThan(1500);
    await waitFor("workers gone", () => workers.every((w) => !isRunning(w.pid)), 1000);
  });

  test("workers exit by themselves when the supervisor is killed", async () => {
    const gateway = await start(slow("30s", "1s"));
    const { workers } = await status(gateway);
    gateway.process.kill("SIGKILL");
    await gateway.process.exited;
    await waitFor("orphan workers gone", () => workers.every((w) => !isRunning(w.pid)), 2000);
  });
});
