/**
 * WebSocket proxying: a client's `Upgrade: websocket` request is opened upstream first
 * (same target selection, Host handling, rewrite and forwarded headers as HTTP), and
 * only when the upstream accepted is the client upgraded; then messages flow both ways
 * unchanged (text stays text, binary stays binary) and a close on either side closes
 * the other with the same code and reason.
 *
 * Failures before the upgrade are ordinary problem responses: an upstream that refuses
 * or answers without 101 gives 502, one that does not finish its handshake within the
 * `response_headers` timeout gives 504. `total`, when set, ends the session after that
 * long (close code 1001 to both sides).
 */
import type { Server, ServerWebSocket, WebSocketHandler } from "bun";
import type { Exchange } from "../core/exchange.ts";
import { problem } from "../core/problem.ts";
import type { CompiledRoute } from "../router/types.ts";
import type { Target } from "./types.ts";

/** True for a request that asks to become a WebSocket. */
export function isWebSocketUpgrade(request: Request): boolean {
  const upgrade = request.headers.get("upgrade");
  return upgrade !== null && upgrade.toLowerCase() === "websocket" && request.method === "GET";
}

/** One proxied session: the upstream socket and what waits for the client side. */
export interface WebSocketSession {
  upstream: WebSocket;
  /** The client side, once open. */
  client: ServerWebSocket<WebSocketSession> | null;
  /** Upstream messages that arrived before the client side opened. */
  pending: (string | ArrayBuffer)[];
  /** Set when either side has closed; the other is then closed once. */
  closed: boolean;
  totalTimer: ReturnType<typeof setTimeout> | null;
  /** How the upstream closed, when it did before the client side opened. */
  upstreamClose: { code: number; reason: string } | null;
  /** Called once when the session ends (concurrency slots). */
  onEnd: (() => void)[];
}

/** Sessions behind the placeholder responses `proxyWebSocket` returns after an upgrade. */
const sessions = new WeakMap<Response, WebSocketSession>();

/** The session of a response returned after a successful upgrade, else undefined. */
export function upgradedSession(response: Response): WebSocketSession | undefined {
  return sessions.get(response);
}

/** Runs `callback` once the session has ended (at once if it already has). */
export function whenSessionEnds(session: WebSocketSession, callback: () => void): void {
  if (session.closed) callback();
  else session.onEnd.push(callback);
}

/** Request headers that belong to the client's handshake, not to the upstream's. */
const HANDSHAKE_HEADERS = ["sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol"];

/**
 * Opens the upstream WebSocket for `exchange`, then upgrades the client. Returns the
 * problem to answer on failure, or a placeholder (status 101) after the upgrade.
 */
export async function proxyWebSocket(exchange: Exchange, route: CompiledRoute, target: Target, server: Server<unknown>): Promise<Response> {
  // A handshake the client side cannot complete is refused before any upstream work.
  const key = exchange.request.headers.get("sec-websocket-key");
  if (key === null || !/^[A-Za-z0-9+/]{22}==$/.test(key) || exchange.request.headers.get("sec-websocket-version") !== "13") {
    return problem({
      status: 400,
      kind: "bad-upgrade",
      detail: "A WebSocket upgrade needs a Sec-WebSocket-Key (16 bytes in base64) and Sec-WebSocket-Version: 13.",
      requestId: exchange.requestId,
    });
  }
  exchange.upstreamTarget = target.origin;
  const path = route.rewrite ? route.rewrite(exchange.url.pathname, exchange.params) : exchange.url.pathname;
  const url = (target.origin.startsWith("https:") ? "wss:" : "ws:") + target.origin.slice(target.origin.indexOf("//")) + target.basePath + path + exchange.url.search;
  const headers = exchange.upstreamHeaders;
  for (const name of HANDSHAKE_HEADERS) headers.delete(name);
  if (route.hostHeader === "upstream") headers.set("host", target.host);
  else if (route.hostHeader !== "preserve") headers.set("host", route.hostHeader.set);
  else headers.set("host", exchange.request.headers.get("host") ?? exchange.url.host);
  const protocols = (exchange.request.headers.get("sec-websocket-protocol") ?? "")
    .split(",")
    .map((p) => p.trim())
    .filter((p) => p !== "");

  exchange.upstreamStartedAt = performance.now();
  const upstream = new WebSocket(url, { headers, protocols } as unknown as string[]);
  upstream.binaryType = "arraybuffer";
  const session: WebSocketSession = { upstream, client: null, pending: [], closed: false, totalTimer: null, upstreamClose: null, onEnd: [] };
  const handshakeMs = route.timeouts.responseHeaders;
  const opened = await new Promise<true | { timeout: number } | { error: string }>((resolve) => {
    const timer = handshakeMs > 0 ? setTimeout(() => resolve({ timeout: handshakeMs }), handshakeMs) : null;
    upstream.onopen = () => {
      if (timer) clearTimeout(timer);
      resolve(true);
    };
    upstream.onerror = (event) => {
      if (timer) clearTimeout(timer);
      resolve({ error: describeError(event) });
    };
    upstream.onclose = () => {
      if (timer) clearTimeout(timer);
      resolve({ error: "the upstream closed the connection during the handshake" });
    };
  });
  if (opened !== true) {
    upstream.onopen = upstream.onerror = upstream.onclose = null;
    closeQuietly(upstream);
    if ("timeout" in opened) {
      return problem({
        status: 504,
        kind: "upstream-timeout",
        detail: `The upstream did not accept the WebSocket in time (response_headers timeout of ${opened.timeout} ms).`,
        requestId: exchange.requestId,
      });
    }
    return problem({
      status: 502,
      kind: "upstream-unreachable",
      detail: `The upstream refused the WebSocket: ${opened.error}.`,
      requestId: exchange.requestId,
    });
  }
  exchange.upstreamHeadersAt = performance.now();

  upstream.onmessage = (event) => {
    const data = event.data as string | ArrayBuffer;
    if (session.client) session.client.send(data);
    else session.pending.push(data);
  };
  upstream.onclose = (event) => {
    if (session.client) closeSide(session.client, event.code, event.reason);
    else session.upstreamClose = { code: event.code, reason: event.reason };
    endSession(session);
  };
  upstream.onerror = null;

  const responseHeaders: Record<string, string> = { "x-request-id": exchange.requestId };
  if (upstream.protocol) responseHeaders["sec-websocket-protocol"] = upstream.protocol;
  if (!server.upgrade(exchange.request, { data: session, headers: responseHeaders })) {
    session.closed = true;
    upstream.onclose = null;
    closeQuietly(upstream);
    return problem({ status: 400, kind: "bad-upgrade", detail: "The WebSocket handshake of the request is not valid.", requestId: exchange.requestId });
  }
  const total = route.timeouts.total;
  if (total > 0) {
    session.totalTimer = setTimeout(() => {
      if (session.client) closeSide(session.client, 1001, "session time limit reached");
      closeQuietly(upstream, 1001, "session time limit reached");
    }, total);
  }
  // Bun ignores what the handler returns after an upgrade; this placeholder tells the
  // gateway's logs and metrics that the connection switched protocols.
  const placeholder = new Response(null, { headers: responseHeaders });
  Object.defineProperty(placeholder, "status", { value: 101 });
  sessions.set(placeholder, session);
  return placeholder;
}

/** The `websocket` handler of a listener: the client side of proxied sessions. */
export const webSocketHandler: WebSocketHandler<WebSocketSession> = {
  // Clients are pinged when quiet; one silent for this many seconds is closed.
  idleTimeout: 120,
  sendPings: true,
  open(client) {
    const session = client.data;
    if (session.closed) {
      // The upstream sent its messages and closed before this side opened.
      for (const data of session.pending) client.send(data);
      const how = session.upstreamClose;
      if (how) closeSide(client, how.code, how.reason);
      else client.close(1011, "the upstream went away");
      return;
    }
    session.client = client;
    for (const data of session.pending) client.send(data);
    session.pending = [];
  },
  message(client, message) {
    const upstream = client.data.upstream;
    if (upstream.readyState === WebSocket.OPEN) upstream.send(message);
  },
  close(client, code, reason) {
    const session = client.data;
    if (!session.closed) {
      session.upstream.onclose = null;
      if (code === 1006) terminate(session.upstream);
      else closeQuietly(session.upstream, code === 1005 ? undefined : code, reason);
    }
    endSession(session);
  },
};

function endSession(session: WebSocketSession): void {
  if (session.closed) return;
  session.closed = true;
  if (session.totalTimer) clearTimeout(session.totalTimer);
  for (const callback of session.onEnd) callback();
  session.onEnd = [];
}

/** Closes the client side with the upstream's code; 1006 (no close frame) is an abrupt end, as upstream. */
function closeSide(client: ServerWebSocket<WebSocketSession>, code: number, reason: string): void {
  if (code === 1006) client.terminate();
  else if (code === 1005) client.close();
  else client.close(code, reason);
}

function closeQuietly(socket: WebSocket, code?: number, reason?: string): void {
  try {
    socket.close(code, reason);
  } catch {
    terminate(socket);
  }
}

function terminate(socket: WebSocket): void {
  try {
    const withTerminate = socket as WebSocket & { terminate?: () => void };
    if (typeof withTerminate.terminate === "function") withTerminate.terminate();
    else socket.close();
  } catch {
    // already closed
  }
}

function describeError(event: Event): string {
  const message = (event as Event & { message?: string }).message;
  if (!message) return "connection failed";
  // "WebSocket connection to 'ws://…' failed: Expected 101 status code: 403" → the reason.
  const failed = message.indexOf("failed: ");
  return failed >= 0 ? message.slice(failed + 8) : message;
}
