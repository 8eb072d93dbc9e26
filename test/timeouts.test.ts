/**
 * Upstream failures and timeouts through the built binary: an unreachable or broken
 * upstream answers 502, a connect or response_headers timeout 504; an upstream that
 * stalls or breaks off mid-body ends the client's response with an error, never a
 * hang or a clean short body; a slow client is not mistaken for an idle upstream; a
 * client that leaves cancels the upstream call.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { connect, type Socket } from "node:net";
import { basics, freePort, startGateway, type Gateway } from "./helpers/gateway.ts";
import { startRawUpstream, type RawUpstream } from "./helpers/raw-upstream.ts";
import { startUpstream, type TestUpstream } from "./helpers/upstream.ts";
import { expectProblem } from "./helpers/problem.ts";

const MiB = 1024 * 1024;
/** Longest a test waits for something that must happen "soon"; far above every configured timeout. */
const DEADLINE_MS = 8_000;

let upstream: TestUpstream;
/** Writes exact bytes: Bun.serve would turn a streamed body with Content-Length into chunks. */
let rawUpstream: RawUpstream;
/** Upstream requests to /never whose client went away (their request signal aborted). */
let abandoned = 0;
let gateway: Gateway;
/** A port nothing listens on. */
let closedPort: number;
/** A listener that accepts nothing more: connects to it hang (see `startFullListener`). */
let fullListener: { port: number; stop(): void };
/** Released in afterAll so stalled upstream handlers finish. */
const release = Promise.withResolvers<void>();

const encoder = new TextEncoder();

/** A body that sends `first`, then nothing until the test ends. */
function stallingBody(first: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    async start(controller) {
      controller.enqueue(first);
      await release.promise;
      controller.close();
    },
  });
}

/** A body that sends a small chunk every `everyMs` until the test ends. */
function tricklingBody(everyMs: number): ReadableStream<Uint8Array> {
  let stopped = false;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (stopped) return;
      await Bun.sleep(everyMs);
      controller.enqueue(encoder.encode("tick\n"));
    },
    cancel() {
      stopped = true;
    },
  });
}

/**
 * A TCP port on loopback where a connect hangs, as a distant host that drops SYNs:
 * a child process listens and is then stopped (SIGSTOP), and this process fills its
 * accept queue; the kernel then drops further SYNs instead of refusing them.
 */
async function startFullListener(): Promise<{ port: number; stop(): void }> {
  const child = Bun.spawn(
    [process.execPath, "-e", `const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } }); console.log(s.port);`],
    { stdout: "pipe", stderr: "ignore" },
  );
  const first = await child.stdout.getReader().read();
  const port = Number(new TextDecoder().decode(first.value).trim());
  process.kill(child.pid, "SIGSTOP");
  const sockets: Socket[] = [];
  let opened = 0;
  // The queue holds backlog + 1 connections (513 with Bun's backlog of 512); open more.
  for (let i = 0; i < 1_000; i++) {
    const socket = connect(port, "127.0.0.1");
    socket.on("connect", () => opened++);
    socket.on("error", () => {});
    sockets.push(socket);
  }
  // Wait until no further connection completes for 200 ms (bounded to 5 s).
  let last = -1;
  for (let i = 0; i < 25 && opened !== last; i++) {
    last = opened;
    await Bun.sleep(200);
  }
  return {
    port,
    stop() {
      for (const socket of sockets) socket.destroy();
      child.kill("SIGKILL");
    },
  };
}

beforeAll(async () => {
  closedPort = freePort();
  fullListener = await startFullListener();
  upstream = startUpstream(async (request) => {
    const path = new URL(request.url).pathname;
    switch (path) {
      case "/never":
        request.signal.addEventListener("abort", () => abandoned++);
        await release.promise;
        return new Response("too late");
      case "/late-headers":
        await Bun.sleep(3_000);
        return new Response("too late");
      case "/stall-unknown-length":
        return new Response(stallingBody(encoder.encode("first chunk\n")));
      case "/trickle":
        return new Response(tricklingBody(50));
      case "/fast-large": {
        let sent = 0;
        const total = 64 * MiB;
        return new Response(
          new ReadableStream<Uint8Array>({
            pull(controller) {
              if (sent >= total) return controller.close();
              controller.enqueue(new Uint8Array(MiB).fill(sent / MiB));
              sent += MiB;
            },
          }, { highWaterMark: 0 }),
        );
      }
      default:
        return new Response("ok");
    }
  });
  rawUpstream = startRawUpstream((request, reply) => {
    switch (request.target) {
      case "/stall-small":
        // Declares 1000 bytes, sends 10, then stalls until the test ends.
        reply.write("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 1000\r\n\r\n0123456789");
        return;
      case "/stall-declared-length":
        // Declares 10 MiB, sends 256 KiB, then stalls until the test ends.
        reply.write(`HTTP/1.1 200 OK\r\ncontent-length: ${10 * MiB}\r\n\r\n`);
        reply.write(new Uint8Array(256 * 1024).fill(98));
        return;
      case "/truncated-small":
        reply.write("HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n0123456789");
        return reply.end();
      case "/truncated-large":
        reply.write(`HTTP/1.1 200 OK\r\ncontent-length: ${MiB}\r\n\r\n`);
        reply.write(new Uint8Array(200 * 1024).fill(97));
        return reply.end();
      case "/truncated-chunked":
        // The last chunk (0) never comes.
        reply.write("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n");
        return reply.end();
      default:
        reply.write("this is not HTTP at all\r\n\r\n");
        return reply.end();
    }
  });
  gateway = await startGateway(
    (ports) => `${basics(ports)}
server:
  workers: 1
upstreams:
  backend:
    targets: [${upstream.url}]
  raw:
    targets: [${rawUpstream.url}]
  nowhere:
    targets: [http://127.0.0.1:${closedPort}]
    timeouts: { connect: 2s }
  black-hole:
    targets: [http://127.0.0.1:${fullListener.port}]
    timeouts: { connect: 400ms, response_headers: 20s }
  nowhere-no-probe:
    targets: [http://127.0.0.1:${closedPort}]
    timeouts: { connect: 0 }
routes:
  - name: refused
    match: { paths: [/refused] }
    upstream: nowhere
  - name: connect-timeout
    match: { paths: [/black-hole] }
    upstream: black-hole
  - name: refused-no-probe
    match: { paths: [/refused-no-probe] }
    upstream: nowhere-no-probe
  - name: headers-timeout
    match: { paths: [/never] }
    upstream: backend
    timeouts: { response_headers: 300ms }
  - name: total-before-headers
    match: { paths: [/late-headers] }
    upstream: backend
    timeouts: { total: 300ms }
  - name: idle
    match: { paths: [/stall-unknown-length, /fast-large] }
    upstream: backend
    timeouts: { idle: 300ms }
  - name: idle-large-body
    match: { paths: [/stall-declared-length] }
    upstream: raw
    timeouts: { idle: 300ms }
  - name: truncated
    match: { paths: [/truncated-small, /truncated-large, /truncated-chunked, /garbage] }
    upstream: raw
  - name: idle-small-body
    match: { paths: [/stall-small] }
    upstream: raw
    timeouts: { idle: 300ms, total: 30s }
  - name: total-mid-body
    match: { paths: [/trickle] }
    upstream: backend
    timeouts: { total: 500ms, idle: 5s }
`,
  );
});

afterAll(async () => {
  release.resolve();
  await gateway?.stop();
  upstream?.stop();
  rawUpstream?.stop();
  fullListener?.stop();
});

/** Fails the test if `promise` does not settle within DEADLINE_MS. */
function withinDeadline<T>(promise: Promise<T>, what: string): Promise<T> {
  return Promise.race([
    promise,
    Bun.sleep(DEADLINE_MS).then(() => {
      throw new Error(`${what} did not settle within ${DEADLINE_MS} ms`);
    }),
  ]);
}

/** Reads a body to its end; resolves with what arrived and how the body ended. */
async function drain(response: Response): Promise<{ bytes: number; text: string; error: unknown }> {
  const decoder = new TextDecoder();
  let bytes = 0;
  let text = "";
  try {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      bytes += chunk.byteLength;
      if (text.length < 4096) text += decoder.decode(chunk, { stream: true });
    }
    return { bytes, text, error: null };
  } catch (error) {
    return { bytes, text, error };
  }
}

test("an upstream on a closed port answers 502 problem+json, quickly", async () => {
  for (const path of ["/refused", "/refused-no-probe"]) {
    const started = performance.now();
    const response = await withinDeadline(fetch(`${gateway.url}${path}`, { headers: { "x-request-id": "refused-1" } }), path);
    const elapsed = performance.now() - started;
    const body = await expectProblem(response, 502);
    expect(body.request_id).toBe("refused-1");
    expect(body.type).toBe("urn:turnpike:problem:upstream-unreachable");
    // A refused connection is known at once: nowhere near the 2 s connect timeout.
    expect(elapsed).toBeLessThan(1_000);
  }
});

test("an upstream whose connect hangs answers 504 after the connect timeout", async () => {
  const started = performance.now();
  const response = await withinDeadline(fetch(`${gateway.url}/black-hole`), "/black-hole");
  const elapsed = performance.now() - started;
  const body = await expectProblem(response, 504);
  expect(body.detail).toContain("connect");
  // Well before the 20 s response_headers timeout.
  expect(elapsed).toBeLessThan(5_000);
});

test("an upstream that answers with something other than HTTP answers 502", async () => {
  const response = await withinDeadline(fetch(`${gateway.url}/garbage`), "/garbage");
  await expectProblem(response, 502);
});

test("an upstream that closes before the end of a small declared body answers 502", async () => {
  const response = await withinDeadline(fetch(`${gateway.url}/truncated-small`), "/truncated-small");
  await expectProblem(response, 502);
});

for (const kind of ["large", "chunked"] as const) {
  test(`an upstream that closes in the middle of a ${kind} body ends the client's response with an error, not a clean end`, async () => {
    // Either the client's body fails, or (when the upstream failed before the gateway
    // had written its whole head) the response itself does; never a clean, short body.
    const outcome = await withinDeadline(
      fetch(`${gateway.url}/truncated-${kind}`).then(drain, (error: unknown) => ({ bytes: 0, text: "", error })),
      "the truncated response",
    );
    expect(outcome.error).not.toBeNull();
  });
}

test("an upstream that never sends its headers answers 504 after response_headers", async () => {
  const response = await withinDeadline(fetch(`${gateway.url}/never`), "/never");
  const body = await expectProblem(response, 504);
  expect(body.type).toBe("urn:turnpike:problem:upstream-timeout");
  expect(body.detail).toContain("response_headers");
});

test("the total timeout answers 504 when it expires before the headers", async () => {
  const response = await withinDeadline(fetch(`${gateway.url}/late-headers`), "/late-headers");
  const body = await expectProblem(response, 504);
  expect(body.detail).toContain("total");
});

test("an upstream that stalls after the first chunk of a body of unknown length ends the client's body with an error", async () => {
  const response = await withinDeadline(fetch(`${gateway.url}/stall-unknown-length`), "headers");
  expect(response.status).toBe(200);
  const outcome = await withinDeadline(drain(response), "the stalled body");
  expect(outcome.text).toBe("first chunk\n");
  expect(outcome.error).not.toBeNull();
});

test("an upstream that stalls in a large declared-length body ends the client's body with an error", async () => {
  const response = await withinDeadline(fetch(`${gateway.url}/stall-declared-length`), "headers");
  expect(response.status).toBe(200);
  const outcome = await withinDeadline(drain(response), "the stalled body");
  expect(outcome.bytes).toBeLessThan(10 * MiB);
  expect(outcome.error).not.toBeNull();
});

test("an upstream that stalls in a small declared-length body answers 504", async () => {
  const response = await withinDeadline(fetch(`${gateway.url}/stall-small`), "/stall-small");
  const body = await expectProblem(response, 504);
  expect(body.detail).toContain("idle");
});

test("the total timeout cuts a body that keeps trickling", async () => {
  const response = await withinDeadline(fetch(`${gateway.url}/trickle`), "headers");
  expect(response.status).toBe(200);
  const outcome = await withinDeadline(drain(response), "the trickling body");
  expect(outcome.text.startsWith("tick\n")).toBe(true);
  expect(outcome.error).not.toBeNull();
});

test("a client that reads slowly is not cut off by the upstream idle timeout", async () => {
  // The upstream can send 64 MiB at once; the client stops reading for three idle
  // periods after the first MiB. The upstream was never idle: the client was.
  const socket = connect(gateway.ports.port, "127.0.0.1");
  let received = 0;
  let paused = false;
  const ended = new Promise<string>((resolve) => {
    let head = "";
    socket.on("data", (data: Buffer) => {
      if (head.length < 200) head += data.toString("latin1", 0, Math.min(data.length, 200));
      received += data.length;
      if (!paused && received > MiB) {
        paused = true;
        socket.pause();
        setTimeout(() => socket.resume(), 1_000);
      }
    });
    socket.on("error", () => resolve(head));
    socket.on("close", () => resolve(head));
  });
  socket.write(`GET /fast-large HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
  const head = await withinDeadline(ended, "the slow read");
  expect(head.startsWith("HTTP/1.1 200")).toBe(true);
  expect(paused).toBe(true);
  // Body bytes plus the status line, headers and chunk framing.
  expect(received).toBeGreaterThan(64 * MiB);
  expect(received).toBeLessThan(64 * MiB + 64 * 1024);
  const chunked = head.toLowerCase().includes("transfer-encoding: chunked");
  expect(chunked).toBe(true);
});

test("a client that goes away while the upstream thinks cancels the upstream request", async () => {
  const before = abandoned;
  const client = new AbortController();
  const pending = fetch(`${gateway.url}/never`, { signal: client.signal }).catch((error: unknown) => error);
  // Wait until the upstream has the request, then leave.
  const seenBefore = upstream.seen.length;
  for (let i = 0; i < 200 && upstream.seen.length === seenBefore; i++) await Bun.sleep(5);
  expect(upstream.seen.length).toBe(seenBefore + 1);
  client.abort();
  await pending;
  for (let i = 0; i < 200 && abandoned === before; i++) await Bun.sleep(5);
  expect(abandoned).toBe(before + 1);
});
