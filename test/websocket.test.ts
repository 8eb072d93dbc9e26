/**
 * WebSocket proxying through the built binary, with real WebSocket clients and real
 * upstream WebSocket servers: text and binary messages both ways, close codes and
 * reasons passed on in both directions, subprotocols negotiated end to end, the
 * upstream's balancer and the route's rewrite applied, concurrency limits held for the
 * session, and failures before the upgrade answered as problem+json (502 refused or
 * not upgraded, 504 handshake timeout).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { Server, ServerWebSocket } from "bun";
import { basics, freePort, startGateway, type Gateway } from "./helpers/gateway.ts";
import { sendRaw } from "./helpers/raw-http.ts";
import { eventually } from "./helpers/traffic.ts";
import { startUpstream, type TestUpstream } from "./helpers/upstream.ts";

// Real processes on a busy machine: allow more than Bun's default 5 s per test.
setDefaultTimeout(60_000);

interface UpstreamSocketData {
  path: string;
  headers: Record<string, string>;
}

/** A WebSocket upstream: greets with what it saw, echoes, closes on request, records closes. */
function startWebSocketUpstream(name: string) {
  const closes: { code: number; reason: string }[] = [];
  const server: Server<UpstreamSocketData> = Bun.serve<UpstreamSocketData>({
    hostname: "127.0.0.1",
    port: 0,
    fetch(request, srv) {
      const url = new URL(request.url);
      const offered = request.headers.get("sec-websocket-protocol");
      const headers: Record<string, string> = {};
      if (offered) headers["sec-websocket-protocol"] = offered.split(",")[0]!.trim();
      const data = { path: url.pathname + url.search, headers: Object.fromEntries(request.headers) };
      if (srv.upgrade(request, { data, headers })) return undefined;
      return new Response("not a websocket", { status: 400 });
    },
    websocket: {
      open(ws: ServerWebSocket<UpstreamSocketData>) {
        ws.send(JSON.stringify({ name, path: ws.data.path, headers: ws.data.headers }));
      },
      message(ws, message) {
        if (typeof message === "string") {
          const close = /^close (\d+) (.*)$/.exec(message);
          if (close) ws.close(Number(close[1]), close[2]);
          else ws.send(`echo: ${message}`);
        } else {
          ws.send(new Uint8Array(message).reverse());
        }
      },
      close(_ws, code, reason) {
        closes.push({ code, reason });
      },
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, server, closes, stop: () => server.stop(true) };
}

type WebSocketUpstream = ReturnType<typeof startWebSocketUpstream>;

let first: WebSocketUpstream;
let second: WebSocketUpstream;
let forbidding: TestUpstream;
/** Accepts TCP connections and never answers: a handshake that hangs. */
let silent: { port: number; stop(closeActive?: boolean): void };
let closedPort: number;
let gateway: Gateway;

beforeAll(async () => {
  first = startWebSocketUpstream("first");
  second = startWebSocketUpstream("second");
  forbidding = startUpstream(() => new Response("go away", { status: 403 }));
  silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  closedPort = freePort();
  gateway = await startGateway(
    (ports) => `${basics(ports)}
server:
  workers: 1
upstreams:
  chat: { targets: ["${first.url}"] }
  pair: { targets: ["${first.url}", "${second.url}"] }
  least:
    targets: ["${first.url}", "${second.url}"]
    balancer: least_connections
  forbidding: { targets: ["${forbidding.url}"] }
  refusing: { targets: ["http://127.0.0.1:${closedPort}"] }
  silent:
    targets: ["http://127.0.0.1:${silent.port}"]
    timeouts: { response_headers: 300ms }
routes:
  - name: chat
    match: { paths: [/chat/*] }
    upstream: chat
    rewrite: { strip_prefix: /chat }
  - name: pair
    match: { paths: [/pair] }
    upstream: pair
  - name: least
    match: { paths: [/least] }
    upstream: least
  - name: limited
    match: { paths: [/limited] }
    upstream: chat
    concurrency: { max: 1 }
  - name: forbidding
    match: { paths: [/forbidding] }
    upstream: forbidding
  - name: refusing
    match: { paths: [/refusing] }
    upstream: refusing
  - name: silent
    match: { paths: [/silent] }
    upstream: silent
`,
  );
}, 60_000);

afterAll(async () => {
  await gateway?.stop();
  first?.stop();
  second?.stop();
  forbidding?.stop();
  silent?.stop(true);
}, 60_000);

/** A client WebSocket with its messages and close collected. */
async function openClient(path: string, protocols?: string[]) {
  const socket = new WebSocket(`${gateway.url.replace("http:", "ws:")}${path}`, protocols);
  socket.binaryType = "arraybuffer";
  const messages: (string | ArrayBuffer)[] = [];
  let closed: { code: number; reason: string } | null = null;
  socket.onmessage = (event) => messages.push(event.data as string | ArrayBuffer);
  const closedPromise = new Promise<{ code: number; reason: string }>((resolve) => {
    socket.onclose = (event) => {
      closed = { code: event.code, reason: event.reason };
      resolve(closed);
    };
  });
  await new Promise<void>((resolve, reject) => {
    socket.onopen = () => resolve();
    socket.onerror = () => reject(new Error(`WebSocket to ${path} failed`));
  });
  return {
    socket,
    messages,
    closed: closedPromise,
    get isClosed() {
      return closed !== null;
    },
    /** Waits for the nth message (0-based). */
    async message(n: number): Promise<string | ArrayBuffer> {
      await eventually(() => messages.length > n, `message ${n} on ${path}`);
      return messages[n]!;
    },
  };
}

/** The raw handshake a WebSocket client sends, for answers that are not upgrades. */
function handshake(path: string): string {
  return `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;
}

describe("messages and closes", () => {
  test("text and binary messages flow both ways, on the rewritten path with forwarded headers", async () => {
    const client = await openClient("/chat/room-1?user=ann");
    const greeting = JSON.parse((await client.message(0)) as string) as { name: string; path: string; headers: Record<string, string> };
    expect(greeting.name).toBe("first");
    expect(greeting.path).toBe("/room-1?user=ann");
    expect(greeting.headers["x-forwarded-for"]).toBe("127.0.0.1");
    expect(greeting.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
    expect(greeting.headers.host).toBe(new URL(first.url).host);

    client.socket.send("hello");
    expect(await client.message(1)).toBe("echo: hello");
    client.socket.send(new Uint8Array([1, 2, 3, 250]));
    const binary = await client.message(2);
    expect(binary).toBeInstanceOf(ArrayBuffer);
    expect([...new Uint8Array(binary as ArrayBuffer)]).toEqual([250, 3, 2, 1]);
    // A large text message arrives whole.
    const large = "x".repeat(200_000);
    client.socket.send(large);
    expect(await client.message(3)).toBe(`echo: ${large}`);
    client.socket.close(1000, "bye");
    await client.closed;
  });

  test("the client's close code and reason reach the upstream", async () => {
    const client = await openClient("/chat/x");
    await client.message(0);
    client.socket.close(4001, "client done");
    await eventually(() => first.closes.some((close) => close.code === 4001), "the upstream to see code 4001");
    expect(first.closes.find((close) => close.code === 4001)).toEqual({ code: 4001, reason: "client done" });
  });

  test("the upstream's close code and reason reach the client", async () => {
    const client = await openClient("/chat/x");
    await client.message(0);
    client.socket.send("close 4005 upstream done");
    expect(await client.closed).toEqual({ code: 4005, reason: "upstream done" });
  });

  test("a subprotocol is negotiated with the upstream", async () => {
    const client = await openClient("/chat/x", ["v2.chat", "v1.chat"]);
    expect(client.socket.protocol).toBe("v2.chat");
    const greeting = JSON.parse((await client.message(0)) as string) as { headers: Record<string, string> };
    expect(greeting.headers["sec-websocket-protocol"]).toBe("v2.chat, v1.chat");
    client.socket.close();
  });
});

describe("target selection and limits", () => {
  test("connections are spread over the upstream's targets by its balancer", async () => {
    const names: string[] = [];
    for (let i = 0; i < 4; i++) {
      const client = await openClient("/pair");
      names.push((JSON.parse((await client.message(0)) as string) as { name: string }).name);
      client.socket.close();
      await client.closed;
    }
    expect(names.sort()).toEqual(["first", "first", "second", "second"]);
  });

  test("open sessions count as connections for least_connections", async () => {
    const nameOf = async (client: Awaited<ReturnType<typeof openClient>>) => (JSON.parse((await client.message(0)) as string) as { name: string }).name;
    const a = await openClient("/least");
    const aName = await nameOf(a);
    const b = await openClient("/least");
    const bName = await nameOf(b);
    expect(bName).not.toBe(aName);
    b.socket.close();
    await b.closed;
    await Bun.sleep(300);
    // a's target still has its open session, b's has none: the next session goes to b's
    // (taking turns, as with no sessions counted, would send it to a's).
    const c = await openClient("/least");
    expect(await nameOf(c)).toBe(bName);
    a.socket.close();
    c.socket.close();
  });

  test("an open session holds its concurrency slot until it closes", async () => {
    const holder = await openClient("/limited");
    await holder.message(0);
    const refused = await sendRaw(gateway.ports.port, handshake("/limited"));
    expect(refused.status).toBe(503);
    expect(refused.headers["content-type"]).toBe("application/problem+json");
    expect(refused.headers["retry-after"]).toBe("1");
    holder.socket.close();
    await holder.closed;
    let admitted: Awaited<ReturnType<typeof openClient>> | null = null;
    const deadline = performance.now() + 10_000;
    while (admitted === null && performance.now() < deadline) {
      admitted = await openClient("/limited").catch(() => null);
      if (admitted === null) await Bun.sleep(50);
    }
    expect(admitted).not.toBeNull();
    admitted!.socket.close();
  });
});

describe("failures before the upgrade", () => {
  test("an upstream that refuses connections gives 502 problem+json, no upgrade", async () => {
    const result = await sendRaw(gateway.ports.port, handshake("/refusing"));
    expect(result.status).toBe(502);
    expect(result.headers["content-type"]).toBe("application/problem+json");
    const body = JSON.parse(result.body) as { type: string; detail: string };
    expect(body.type).toBe("urn:turnpike:problem:upstream-unreachable");
    expect(body.detail).toContain("refused");
  });

  test("an upstream that answers the handshake without 101 gives 502 naming its status", async () => {
    const result = await sendRaw(gateway.ports.port, handshake("/forbidding"));
    expect(result.status).toBe(502);
    const body = JSON.parse(result.body) as { detail: string };
    expect(body.detail).toContain("403");
  });

  test("an upstream that never finishes the handshake gives 504 after response_headers", async () => {
    const result = await sendRaw(gateway.ports.port, handshake("/silent"), { waitMs: 8_000 });
    expect(result.status).toBe(504);
    const body = JSON.parse(result.body) as { type: string };
    expect(body.type).toBe("urn:turnpike:problem:upstream-timeout");
  });

  test("an upgrade request without a valid key or version gets 400 problem+json and no upstream call", async () => {
    const before = first.closes.length;
    const noKey = await sendRaw(gateway.ports.port, handshake("/chat/x").replace(/Sec-WebSocket-Key: [^\r]*\r\n/, ""));
    expect(noKey.status).toBe(400);
    expect(noKey.headers["content-type"]).toBe("application/problem+json");
    expect(JSON.parse(noKey.body).type).toBe("urn:turnpike:problem:bad-upgrade");
    const oldVersion = await sendRaw(gateway.ports.port, handshake("/chat/x").replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"));
    expect(oldVersion.status).toBe(400);
    await Bun.sleep(100);
    expect(first.closes.length).toBe(before);
  });

  test("a browser-style client sees the failure as a failed connection, and the gateway keeps serving", async () => {
    await expect(openClient("/refusing")).rejects.toThrow("failed");
    const client = await openClient("/chat/after");
    expect(JSON.parse((await client.message(0)) as string).name).toBe("first");
    client.socket.close();
  });
});

test("no proxied session left an error in the gateway's log", () => {
  expect(gateway.logs()).not.toContain('"level":"error"');
});
