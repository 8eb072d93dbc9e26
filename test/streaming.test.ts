/**
 * Bodies stream through the gateway in both directions without being buffered:
 * a 512 MiB upload and a 512 MiB download keep the worker's memory bounded, and
 * server-sent events reach the client one by one, as the upstream sends them.
 */
import type { Socket } from "bun";
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { basics, startGateway, type Gateway } from "./helpers/gateway.ts";
import { startUpstream, type TestUpstream } from "./helpers/upstream.ts";

const MiB = 1024 * 1024;
const TRANSFER_BYTES = 512 * MiB;
const CHUNK_BYTES = MiB;
/** Peak resident memory a worker may reach while half a gigabyte passes through it. */
const RSS_LIMIT_BYTES = 200 * MiB;

let upstream: TestUpstream;
let declaredLengthUpstream: { url: string; stop(): void };
let gateway: Gateway;
/** Resolves when the SSE client has seen event `n` (index n - 1). */
let sseSeen: PromiseWithResolvers<void>[] = [];
/** For each SSE event: was it already seen by the client before the upstream sent the next? */
let sseOrder: boolean[] = [];
/** Bytes the client's generator had produced when the slow upstream began to read. */
let producedWhenUpstreamStarted = -1;
/** Resolves when the upstream's endless event stream was cancelled. */
let foreverCancelled = Promise.withResolvers<void>();
/** Bytes produced so far by the upload under way. */
let produced: () => number = () => 0;

beforeAll(async () => {
  upstream = startUpstream(async (request) => {
    const url = new URL(request.url);
    if (url.pathname === "/upload") {
      // Count and hash what arrives, never keeping it.
      const hasher = new Bun.CryptoHasher("sha256");
      let bytes = 0;
      for await (const chunk of request.body as unknown as AsyncIterable<Uint8Array>) {
        bytes += chunk.byteLength;
        hasher.update(chunk);
      }
      return Response.json({ bytes, sha256: hasher.digest("hex") });
    }
    if (url.pathname === "/slow-upload") {
      // Reads nothing for a while: the gateway must hold the client back meanwhile.
      await Bun.sleep(1_500);
      producedWhenUpstreamStarted = produced();
      let bytes = 0;
      for await (const chunk of request.body as unknown as AsyncIterable<Uint8Array>) bytes += chunk.byteLength;
      return Response.json({ bytes });
    }
    if (url.pathname === "/download") {
      const source = patternStream(Number(url.searchParams.get("bytes")));
      produced = source.sent;
      return new Response(source.stream);
    }
    if (url.pathname === "/events-forever") {
      const encoder = new TextEncoder();
      let n = 0;
      return new Response(
        new ReadableStream<Uint8Array>({
          async pull(controller) {
            await Bun.sleep(n === 0 ? 0 : 50);
            controller.enqueue(encoder.encode(`data: ${++n}\n\n`));
          },
          cancel() {
            foreverCancelled.resolve();
          },
        }),
        { headers: { "content-type": "text/event-stream" } },
      );
    }
    if (url.pathname === "/events") {
      return new Response(eventStream(), { headers: { "content-type": "text/event-stream", "cache-control": "no-cache" } });
    }
    return new Response("not found", { status: 404 });
  });
  declaredLengthUpstream = startDeclaredLengthUpstream(TRANSFER_BYTES);
  gateway = await startGateway(
    (ports) => `${basics(ports)}
server:
  workers: 1
upstreams:
  backend:
    targets: [${upstream.url}]
  declared-length:
    targets: [${declaredLengthUpstream.url}]
routes:
  - name: all
    upstream: backend
  - name: declared-length
    match: { paths: [/declared-length] }
    upstream: declared-length
  # Without idle and total timeouts the upstream body is handed to the client as is.
  - name: unwatched
    match: { paths: ["/unwatched/*"] }
    upstream: backend
    rewrite: { strip_prefix: /unwatched }
    timeouts: { idle: 0, total: 0 }
`,
  );
});

afterAll(async () => {
  await gateway?.stop();
  upstream?.stop();
  declaredLengthUpstream?.stop();
});

/** A pseudo-random block that every pattern chunk starts from. */
const BLOCK = (() => {
  const block = new Uint8Array(CHUNK_BYTES);
  let seed = 0x2545f491;
  for (let i = 0; i < block.length; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    block[i] = seed >>> 24;
  }
  return block;
})();

/**
 * A deterministic source of `size` bytes made on demand, with a running sha256 of what
 * it produced. Each chunk is a fresh copy of BLOCK stamped with its index, so no two
 * chunks are equal and nothing is kept.
 */
class PatternSource {
  sent = 0;
  #index = 0;
  readonly #hasher = new Bun.CryptoHasher("sha256");
  constructor(readonly size: number) {}

  /** The next chunk, or null at the end. */
  next(): Uint8Array | null {
    if (this.sent >= this.size) return null;
    const length = Math.min(CHUNK_BYTES, this.size - this.sent);
    const chunk = BLOCK.slice(0, length);
    new DataView(chunk.buffer).setUint32(0, this.#index++);
    this.#hasher.update(chunk);
    this.sent += length;
    return chunk;
  }

  digest(): string {
    return this.#hasher.digest("hex");
  }
}

/** A pattern of `size` bytes as a pull stream: one chunk per read, none ahead. */
function patternStream(size: number): { stream: ReadableStream<Uint8Array>; digest: () => string; sent: () => number } {
  const source = new PatternSource(size);
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        const chunk = source.next();
        if (chunk) controller.enqueue(chunk);
        else controller.close();
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, digest: () => source.digest(), sent: () => source.sent };
}

/** The sha256 of the pattern of `size` bytes. */
function patternDigest(size: number): string {
  const source = new PatternSource(size);
  while (source.next());
  return source.digest();
}

/**
 * An upstream that answers every request with the pattern of `size` bytes under a
 * Content-Length header, written as the socket drains. (Bun.serve drops a handler's
 * Content-Length from a streamed body, so a declared-length stream needs raw bytes.)
 */
function startDeclaredLengthUpstream(size: number): { url: string; stop(): void } {
  interface Connection {
    source: PatternSource | null;
    pending: Uint8Array | null;
  }
  const pump = (socket: Socket<Connection>) => {
    const state = socket.data;
    if (!state.source) return;
    for (;;) {
      const chunk = state.pending ?? state.source.next();
      if (!chunk) return void socket.end();
      const written = socket.write(chunk);
      state.pending = written < chunk.length ? chunk.subarray(Math.max(written, 0)) : null;
      if (state.pending) return;
    }
  };
  const server = Bun.listen<Connection>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(socket) {
        socket.data = { source: null, pending: null };
      },
      data(socket, chunk) {
        if (socket.data.source || !chunk.toString("latin1").includes("\r\n\r\n")) return;
        socket.data.source = new PatternSource(size);
        socket.write(`HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: ${size}\r\nconnection: close\r\n\r\n`);
        pump(socket);
      },
      drain: pump,
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, stop: () => server.stop(true) };
}

/** Four SSE events; each after the client has confirmed the one before (or 5 s passed). */
function eventStream(): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream<Uint8Array>({
    async start(controller) {
      for (let n = 1; n <= sseSeen.length; n++) {
        if (n > 1) {
          // Wait about 100 ms like a real event source, then record whether the client
          // already had the previous event before this one goes out.
          await Bun.sleep(100);
          const seen = await Promise.race([sseSeen[n - 2]!.promise.then(() => true), Bun.sleep(5_000).then(() => false)]);
          sseOrder.push(seen);
        }
        controller.enqueue(encoder.encode(`id: ${n}\nevent: tick\ndata: {"n":${n}}\n\n`));
      }
      controller.close();
    },
  });
}

/** Worker pids of the gateway, from the admin API. */
async function workerPids(): Promise<number[]> {
  const status = (await (await fetch(`${gateway.adminUrl}/status`)).json()) as { workers: { pid: number }[] };
  return status.workers.map((worker) => worker.pid);
}

/** Resident set size of a process in bytes, from /proc. */
function residentBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!kib) throw new Error(`no VmRSS for ${pid}`);
  return Number(kib[1]) * 1024;
}

/** Samples the peak RSS of `pids` every 20 ms until `stop` is called. */
function sampleRss(pids: number[]): { stop: () => { peak: number; samples: number } } {
  let peak = 0;
  let samples = 0;
  const take = () => {
    for (const pid of pids) peak = Math.max(peak, residentBytes(pid));
    samples++;
  };
  take();
  const timer = setInterval(take, 20);
  return {
    stop() {
      clearInterval(timer);
      take();
      return { peak, samples };
    },
  };
}

test("a 512 MiB upload streams to the upstream while the worker's memory stays bounded", async () => {
  const pids = await workerPids();
  expect(pids.length).toBe(1);
  const before = residentBytes(pids[0]!);
  const source = patternStream(TRANSFER_BYTES);
  const sampler = sampleRss(pids);
  const started = performance.now();
  const response = await fetch(`${gateway.url}/upload`, {
    method: "POST",
    body: source.stream,
    headers: { "content-type": "application/octet-stream" },
    duplex: "half",
  });
  const result = (await response.json()) as { bytes: number; sha256: string };
  const seconds = (performance.now() - started) / 1000;
  const { peak, samples } = sampler.stop();
  console.log(
    `upload: ${TRANSFER_BYTES / MiB} MiB in ${seconds.toFixed(2)} s (${(TRANSFER_BYTES / MiB / seconds).toFixed(0)} MiB/s), ` +
      `worker RSS ${(before / MiB).toFixed(0)} MiB before, peak ${(peak / MiB).toFixed(0)} MiB over ${samples} samples`,
  );
  expect(response.status).toBe(200);
  expect(result.bytes).toBe(TRANSFER_BYTES);
  expect(result.sha256).toBe(source.digest());
  expect(samples).toBeGreaterThan(5);
  expect(peak).toBeLessThan(RSS_LIMIT_BYTES);
}, 30_000);

test("an upstream that reads slowly holds the client back instead of filling the worker's memory", async () => {
  const pids = await workerPids();
  const source = patternStream(TRANSFER_BYTES);
  produced = source.sent;
  const sampler = sampleRss(pids);
  const response = await fetch(`${gateway.url}/slow-upload`, {
    method: "POST",
    body: source.stream,
    duplex: "half",
  });
  const result = (await response.json()) as { bytes: number };
  const { peak } = sampler.stop();
  console.log(
    `slow upstream: client had produced ${(producedWhenUpstreamStarted / MiB).toFixed(0)} MiB when the upstream began reading; ` +
      `worker RSS peak ${(peak / MiB).toFixed(0)} MiB`,
  );
  expect(result.bytes).toBe(TRANSFER_BYTES);
  // Only what socket buffers on the way hold, not the 1.5 s the client could have sent.
  expect(producedWhenUpstreamStarted).toBeGreaterThan(0);
  expect(producedWhenUpstreamStarted).toBeLessThan(128 * MiB);
  expect(peak).toBeLessThan(RSS_LIMIT_BYTES);
}, 30_000);

for (const declared of [false, true]) {
  test(`a 512 MiB download ${declared ? "with Content-Length" : "of unknown length"} streams to the client while the worker's memory stays bounded`, async () => {
    const pids = await workerPids();
    const sampler = sampleRss(pids);
    const started = performance.now();
    const response = await fetch(`${gateway.url}${declared ? "/declared-length" : `/download?bytes=${TRANSFER_BYTES}`}`);
    expect(response.status).toBe(200);
    // Bun.serve sends a streamed body chunked, without the upstream's Content-Length
    // (Bun issue 10507); what matters here is that every byte arrives, in order.
    const hasher = new Bun.CryptoHasher("sha256");
    let bytes = 0;
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      bytes += chunk.byteLength;
      hasher.update(chunk);
    }
    const seconds = (performance.now() - started) / 1000;
    const { peak, samples } = sampler.stop();
    console.log(
      `download (${declared ? "declared length" : "unknown length"}): ${TRANSFER_BYTES / MiB} MiB in ${seconds.toFixed(2)} s ` +
        `(${(TRANSFER_BYTES / MiB / seconds).toFixed(0)} MiB/s), worker RSS peak ${(peak / MiB).toFixed(0)} MiB over ${samples} samples`,
    );
    expect(bytes).toBe(TRANSFER_BYTES);
    expect(hasher.digest("hex")).toBe(patternDigest(TRANSFER_BYTES));
    expect(peak).toBeLessThan(RSS_LIMIT_BYTES);
  }, 30_000);
}

test("a client that reads slowly holds the upstream back instead of filling the worker's memory", async () => {
  const pids = await workerPids();
  produced = () => 0;
  const sampler = sampleRss(pids);
  // A raw socket, so that not reading really leaves the bytes in the kernel.
  const socket = connect(gateway.ports.port, "127.0.0.1");
  let received = 0;
  let producedAtResume = -1;
  const closed = new Promise<void>((resolve) => {
    socket.on("data", (data: Buffer) => {
      received += data.length;
      if (producedAtResume < 0 && received > MiB && !socket.isPaused()) {
        socket.pause();
        setTimeout(() => {
          producedAtResume = produced();
          socket.resume();
        }, 1_500);
      }
    });
    socket.on("close", () => resolve());
    socket.on("error", () => resolve());
  });
  socket.write(`GET /download?bytes=${TRANSFER_BYTES} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
  await closed;
  const { peak } = sampler.stop();
  console.log(
    `slow client: upstream had produced ${(producedAtResume / MiB).toFixed(0)} MiB when the client resumed; ` +
      `worker RSS peak ${(peak / MiB).toFixed(0)} MiB`,
  );
  expect(received).toBeGreaterThan(TRANSFER_BYTES);
  expect(producedAtResume).toBeGreaterThan(MiB);
  expect(producedAtResume).toBeLessThan(128 * MiB);
  expect(peak).toBeLessThan(RSS_LIMIT_BYTES);
}, 30_000);

for (const prefix of ["", "/unwatched"]) {
  test(`server-sent events reach the client one at a time, as the upstream sends them${prefix ? " (no body timeouts)" : ""}`, async () => {
    sseSeen = Array.from({ length: 4 }, () => Promise.withResolvers<void>());
    sseOrder = [];
    const response = await fetch(`${gateway.url}${prefix}/events`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/event-stream");
    expect(response.headers.get("content-length")).toBeNull();
    const decoder = new TextDecoder();
    let buffer = "";
    const received: number[] = [];
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const n = Number(/^data: \{"n":(\d+)\}$/m.exec(event)?.[1]);
        received.push(n);
        sseSeen[n - 1]!.resolve();
      }
    }
    expect(received).toEqual([1, 2, 3, 4]);
    // Every event after the first went out only after the client had the one before it.
    expect(sseOrder).toEqual([true, true, true]);
  }, 30_000);
}

for (const prefix of ["", "/unwatched"]) {
  test(`a client that leaves an endless event stream closes the upstream's stream${prefix ? " (no body timeouts)" : ""}`, async () => {
    foreverCancelled = Promise.withResolvers<void>();
    const client = new AbortController();
    const response = await fetch(`${gateway.url}${prefix}/events-forever`, { signal: client.signal });
    const reader = response.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toStartWith("data: 1");
    client.abort();
    const cancelled = await Promise.race([foreverCancelled.promise.then(() => true), Bun.sleep(5_000).then(() => false)]);
    expect(cancelled).toBe(true);
  });
}
