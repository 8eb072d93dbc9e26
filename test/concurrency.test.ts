/**
 * Concurrency limits through the built binary: at most `max` requests in flight on a
 * route or an upstream, an optional queue with a wait timeout, and a fast 503
 * problem+json with Retry-After beyond that; a slot is held until the response body
 * has been sent. Impossible settings are refused by `validate` with path and line.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { basics, startGateway, type Gateway } from "./helpers/gateway.ts";
import { expectProblem } from "./helpers/problem.ts";
import { eventually, lineOf, startGatedUpstream, validateConfig, type GatedUpstream } from "./helpers/traffic.ts";
import { startUpstream, type TestUpstream } from "./helpers/upstream.ts";

// Real processes on a busy machine: allow more than Bun's default 5 s per test.
setDefaultTimeout(60_000);

let noQueue: GatedUpstream;
let queued: GatedUpstream;
let queueTimeout: GatedUpstream;
let sharedUpstream: GatedUpstream;
let streaming: TestUpstream;
/** Ends the body of the streaming upstream's current response. */
let endStream = Promise.withResolvers<void>();
let gateway: Gateway;

beforeAll(async () => {
  noQueue = startGatedUpstream("no-queue");
  queued = startGatedUpstream("queued");
  queueTimeout = startGatedUpstream("queue-timeout");
  sharedUpstream = startGatedUpstream("shared");
  streaming = startUpstream(() => {
    const gate = endStream.promise;
    return new Response(
      new ReadableStream<Uint8Array>({
        async start(controller) {
          controller.enqueue(new TextEncoder().encode("first\n"));
          await gate;
          controller.enqueue(new TextEncoder().encode("last\n"));
          controller.close();
        },
      }),
    );
  });
  gateway = await startGateway(
    (ports) => `${basics(ports)}
server:
  workers: 1
upstreams:
  no-queue: { targets: ["${noQueue.url}"] }
  queued: { targets: ["${queued.url}"] }
  queue-timeout: { targets: ["${queueTimeout.url}"] }
  streaming: { targets: ["${streaming.url}"] }
  shared:
    targets: ["${sharedUpstream.url}"]
    concurrency: { max: 1 }
routes:
  - name: no-queue
    match: { paths: [/no-queue/*] }
    upstream: no-queue
    concurrency: { max: 2 }
  - name: queued
    match: { paths: [/queued/*] }
    upstream: queued
    concurrency: { max: 1, queue: { size: 1, timeout: 30s } }
  - name: queue-timeout
    match: { paths: [/queue-timeout/*] }
    upstream: queue-timeout
    concurrency: { max: 1, queue: { size: 5, timeout: 300ms }, retry_after: 7s }
  - name: first-route
    match: { paths: [/first/*] }
    upstream: shared
  - name: second-route
    match: { paths: [/second/*] }
    upstream: shared
  - name: streaming
    match: { paths: [/stream] }
    upstream: streaming
    concurrency: { max: 1 }
`,
  );
}, 60_000);

afterAll(async () => {
  for (const upstream of [noQueue, queued, queueTimeout, sharedUpstream]) upstream?.open();
  endStream.resolve();
  await gateway?.stop();
  for (const upstream of [noQueue, queued, queueTimeout, sharedUpstream, streaming]) upstream?.stop();
}, 60_000);

describe("route limit without a queue", () => {
  test("the request beyond max gets 503 problem+json with Retry-After at once; the others complete", async () => {
    const first = fetch(`${gateway.url}/no-queue/1`);
    const second = fetch(`${gateway.url}/no-queue/2`);
    await eventually(() => noQueue.waiting === 2, "two requests at the upstream");
    const refused = await fetch(`${gateway.url}/no-queue/3`);
    const body = await expectProblem(refused, 503);
    expect(body.type).toBe("urn:turnpike:problem:concurrency-limit");
    expect(String(body.detail)).toContain('route "no-queue"');
    expect(refused.headers.get("retry-after")).toBe("1");
    expect(noQueue.seen.length).toBe(2);

    noQueue.open();
    expect(await (await first).text()).toBe("no-queue");
    expect(await (await second).text()).toBe("no-queue");
    // Slots are back: a later request goes through.
    const later = await fetch(`${gateway.url}/no-queue/4`);
    expect(later.status).toBe(200);
    expect(await later.text()).toBe("no-queue");
  });
});

describe("route limit with a queue", () => {
  test("one request waits for the slot, the next finds the queue full and gets 503 at once", async () => {
    const holder = fetch(`${gateway.url}/queued/1`);
    await eventually(() => queued.waiting === 1, "the first request at the upstream");
    let waiterDone = false;
    const waiter = fetch(`${gateway.url}/queued/2`).then((response) => {
      waiterDone = true;
      return response;
    });
    await Bun.sleep(100);
    // The waiter is held in the gateway's queue, not at the upstream.
    expect(queued.seen.length).toBe(1);
    expect(waiterDone).toBe(false);
    const full = await fetch(`${gateway.url}/queued/3`);
    await expectProblem(full, 503);
    expect(full.headers.get("retry-after")).toBe("1");

    queued.open();
    expect((await holder).status).toBe(200);
    const waited = await waiter;
    expect(waited.status).toBe(200);
    expect(await waited.text()).toBe("queued");
    expect(queued.seen.length).toBe(2);
  });

  test("a request that waits longer than the queue timeout gets 503 with the configured Retry-After", async () => {
    const holder = fetch(`${gateway.url}/queue-timeout/1`);
    await eventually(() => queueTimeout.waiting === 1, "the first request at the upstream");
    const timedOut = await fetch(`${gateway.url}/queue-timeout/2`);
    const body = await expectProblem(timedOut, 503);
    expect(body.type).toBe("urn:turnpike:problem:concurrency-limit");
    expect(timedOut.headers.get("retry-after")).toBe("7");
    expect(queueTimeout.seen.length).toBe(1);
    queueTimeout.open();
    expect((await holder).status).toBe(200);
  });
});

describe("upstream limit", () => {
  test("two routes to one limited upstream share its slots", async () => {
    const holder = fetch(`${gateway.url}/first/x`);
    await eventually(() => sharedUpstream.waiting === 1, "the first request at the upstream");
    const refused = await fetch(`${gateway.url}/second/y`);
    const body = await expectProblem(refused, 503);
    expect(String(body.detail)).toContain('upstream "shared"');
    sharedUpstream.open();
    expect(await (await holder).text()).toBe("shared");
    expect((await fetch(`${gateway.url}/second/z`)).status).toBe(200);
  });
});

describe("slots and streaming bodies", () => {
  test("a response still streaming holds its slot; the slot frees when the body ends", async () => {
    const first = await fetch(`${gateway.url}/stream`);
    expect(first.status).toBe(200);
    const reader = first.body!.getReader();
    const chunk = await reader.read();
    expect(new TextDecoder().decode(chunk.value)).toBe("first\n");
    // Headers are sent but the body is not over: the route is still full.
    await expectProblem(await fetch(`${gateway.url}/stream`), 503);
    endStream.resolve();
    let rest = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    expect(rest).toBe("last\n");
    // The gateway frees the slot when it reads the body's end, before the client sees it.
    const again = await fetch(`${gateway.url}/stream`);
    expect(again.status).toBe(200);
    expect(await again.text()).toBe("first\nlast\n");
  });

  test("a client that leaves mid-body gives its slot back", async () => {
    endStream = Promise.withResolvers<void>();
    const controller = new AbortController();
    const first = await fetch(`${gateway.url}/stream`, { signal: controller.signal });
    expect(first.status).toBe(200);
    controller.abort();
    await first.body?.cancel().catch(() => {});
    // The upstream body of the abandoned response never ends (its gate stays shut), so
    // only the gateway noticing the closed connection can free the slot.
    let admitted: Response | null = null;
    const deadline = performance.now() + 10_000;
    while (admitted === null && performance.now() < deadline) {
      const response = await fetch(`${gateway.url}/stream`);
      if (response.status === 200) admitted = response;
      else {
        await expectProblem(response, 503);
        await Bun.sleep(50);
      }
    }
    expect(admitted?.status).toBe(200);
    endStream.resolve();
    expect(await admitted!.text()).toBe("first\nlast\n");
  });
});

describe("impossible settings are refused by validate with path and line", () => {
  test("zero max, a queue without max, negative sizes", () => {
    const text = `listeners: [{ port: 8080 }]
upstreams:
  api:
    targets: ["http://127.0.0.1:1"]
    concurrency: { max: 0 }
routes:
  - name: a
    upstream: api
    concurrency:
      queue: { size: 10 }
  - name: b
    upstream: api
    concurrency: { max: 5, queue: { size: -1 } }
  - name: c
    upstream: api
    concurrency: { max: 5, queue: { size: 2, timeout: -5 } }
`;
    const out = validateConfig(text);
    expect(out.code).toBe(1);
    const expected: [string, string, number][] = [
      ["upstreams.api.concurrency.max", "", lineOf(text, "max: 0")],
      ["routes[0].concurrency", "max", lineOf(text, "queue: { size: 10 }")],
      ["routes[1].concurrency.queue.size", "", lineOf(text, "size: -1")],
      ["routes[2].concurrency.queue.timeout", "duration", lineOf(text, "timeout: -5")],
    ];
    for (const [where, words, line] of expected) {
      const found = out.lines.find((l) => l.startsWith(`${out.path}: ${where}: `));
      expect(found, `an error at ${where} in:\n${out.lines.join("\n")}`).toBeDefined();
      expect(found!).toContain(words);
      expect(found!).toMatch(new RegExp(`\\(line ${line}, col \\d+\\)$`));
    }
  });
});

describe("node-wide limits across worker processes", () => {
  let held: GatedUpstream;
  let node: Gateway;

  beforeAll(async () => {
    held = startGatedUpstream("held");
    node = await startGateway(
      (ports) => `${basics(ports)}
upstreams:
  held: { targets: ["${held.url}"] }
routes:
  - name: node-wide
    match: { paths: [/node/*] }
    upstream: held
    concurrency: { max: 2 }
`,
      { workers: 2 },
    );
  }, 60_000);

  afterAll(async () => {
    held?.open();
    await node?.stop();
    held?.stop();
  }, 60_000);

  test("max counts the requests in flight on all workers together", async () => {
    // Six requests at once, each on its own connection, so both workers get some.
    const responses = Array.from({ length: 6 }, (_, i) => fetch(`${node.url}/node/${i}`));
    const refused: Response[] = [];
    for (const pending of responses) void pending.then((response) => response.status === 503 && refused.push(response));
    await eventually(() => refused.length === 4, "four refusals");
    await eventually(() => held.waiting === 2, "two requests at the upstream");
    // Nothing else gets through while both slots are held.
    await Bun.sleep(100);
    expect(held.waiting).toBe(2);
    for (const response of refused) await expectProblem(response, 503);
    held.open();
    const statuses = (await Promise.all(responses)).map((response) => response.status).sort();
    expect(statuses).toEqual([200, 200, 503, 503, 503, 503]);
    held.close();
  });

  test("slots held by a worker that was killed come back when the supervisor replaces it", async () => {
    const first = fetch(`${node.url}/node/a`).catch(() => null);
    const second = fetch(`${node.url}/node/b`).catch(() => null);
    await eventually(() => held.waiting === 2, "two requests at the upstream");
    await expectProblem(await fetch(`${node.url}/node/full`), 503);
    const status = (await (await fetch(`${node.adminUrl}/status`)).json()) as { workers: { pid: number }[] };
    const killed = status.workers.map((worker) => worker.pid);
    for (const pid of killed) process.kill(pid, "SIGKILL");
    await first;
    await second;
    // Wait for two replacement workers, then both slots are free again.
    const deadline = performance.now() + 20_000;
    let replaced = false;
    while (!replaced && performance.now() < deadline) {
      const now = (await (await fetch(`${node.adminUrl}/status`)).json()) as { workers: { pid: number; state?: string }[] };
      replaced = now.workers.length === 2 && now.workers.every((worker) => !killed.includes(worker.pid));
      if (!replaced) await Bun.sleep(100);
    }
    expect(replaced).toBe(true);
    held.open();
    let statuses: number[] = [];
    const until = performance.now() + 10_000;
    do {
      // A replacement may not listen yet (connection refused counts as 0).
      statuses = await Promise.all([`${node.url}/node/c`, `${node.url}/node/d`].map((url) => fetch(url).then((r) => r.status, () => 0)));
      if (statuses.every((s) => s === 200)) break;
      await Bun.sleep(100);
    } while (performance.now() < until);
    expect(statuses).toEqual([200, 200]);
  });
});
