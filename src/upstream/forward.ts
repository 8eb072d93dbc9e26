/**
 * Forwarding to an http upstream with Bun's fetch: streaming both ways, no redirects
 * followed, no decompression, hop-by-hop headers removed, and four timeouts:
 *
 * - `connect`: only when the target is cold (no response from it in the last few
 *   seconds on this worker), a TCP connect probe bounded by this timeout runs first;
 *   Bun's fetch does not report when its connection opens, so a warm target relies
 *   on its pooled keep-alive connection.
 * - `response_headers`: from sending the request until the response headers arrive.
 * - `idle`: the longest wait for the upstream's next chunk of the response body
 *   (time a slow client holds the body back does not count).
 * - `total`: the whole exchange, body included.
 *
 * A client that disconnects aborts the upstream call at any stage.
 *
 * With an `Attempt` (the upstream pool's retry loop), the forwarder also says why no
 * response came (`failure`), sends a kept request body, and calls `onEnd` once when the
 * exchange with the target is over (body finished, failed or dropped), which ends the
 * target's in-flight count.
 */
import type { Exchange } from "../core/exchange.ts";
import { problem } from "../core/problem.ts";
import type { CompiledRoute } from "../router/types.ts";
import { probeConnect } from "./connect-probe.ts";
import { copyEndToEnd } from "./hop-by-hop.ts";
import type { UpstreamTls } from "../config/pem.ts";
import type { Target } from "./types.ts";

/** Responses up to this declared size are read whole under the timeouts; larger ones stream. */
export const BUFFER_LIMIT = 64 * 1024;
/** A target with no response for this long is probed before use when `connect` is set. */
const COLD_AFTER_MS = 5_000;

class UpstreamTimeout extends Error {
  constructor(readonly which: "connect" | "response_headers" | "idle" | "total", readonly ms: number) {
    super(`upstream ${which} timeout after ${ms} ms`);
  }
}

const lastResponseAt = new WeakMap<Target, number>();

/** Why an attempt got no response: the connection failed, broke, or a timer expired. */
export type AttemptFailure = "connect_failure" | "reset" | "timeout";

/** One call to a target, as the retry loop sees it. */
export interface Attempt {
  /** The request body to send instead of `exchange.body` (kept for retries); undefined: `exchange.body`. */
  body: Uint8Array | null | undefined;
  /** Set by the forwarder when the answer is the gateway's own 502/504. */
  failure: AttemptFailure | null;
  /** Called once when the exchange with the target is over. */
  onEnd: (() => void) | null;
}

/** Codes of a connection that could not be opened (nothing was sent). */
const CONNECT_FAILURES = new Set(["ECONNREFUSED", "ConnectionRefused", "FailedToOpenSocket", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "ConnectionTimedOut", "EAI_NONAME", "DNSResolutionFailed"]);

/** Abort reason when the client disconnected before the exchange ended. */
const CLIENT_GONE = new Error("the client went away");

/**
 * The `tls` option for `target`: the upstream's settings, and for a target found by DNS
 * discovery (connected by address) its host name as the server name to verify, unless
 * the upstream's `tls.server_name` says otherwise.
 */
function upstreamTls(route: CompiledRoute, target: Target): { tls?: UpstreamTls } {
  const tls = route.upstream.kind === "http" ? route.upstream.tls : null;
  if (target.serverName && !tls?.serverName) return { tls: { rejectUnauthorized: true, ...tls, serverName: target.serverName } };
  return tls ? { tls } : {};
}

/** Builds the upstream URL: target base path + (rewritten) request path + query. */
function upstreamUrl(exchange: Exchange, route: CompiledRoute, target: Target): string {
  const path = route.rewrite ? route.rewrite(exchange.url.pathname, exchange.params) : exchange.url.pathname;
  return target.origin + target.basePath + path + exchange.url.search;
}

/** Forwards the exchange to `target` and returns the response to send to the client. */
export async function forwardHttp(exchange: Exchange, route: CompiledRoute, target: Target, attempt: Attempt | null = null): Promise<Response> {
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    attempt?.onEnd?.();
  };
  try {
    const response = await forward(exchange, route, target, attempt, end);
    return response;
  } catch (error) {
    end();
    throw error;
  }
}

async function forward(exchange: Exchange, route: CompiledRoute, target: Target, attempt: Attempt | null, end: () => void): Promise<Response> {
  // Set before the connect probe, so that a target refused there counts as called.
  exchange.upstreamTarget = target.origin;
  const timeouts = route.timeouts;
  const headers = exchange.upstreamHeaders;
  if (route.hostHeader === "upstream") headers.set("host", target.host);
  else if (route.hostHeader !== "preserve") headers.set("host", route.hostHeader.set);

  if (timeouts.connect > 0) {
    const last = lastResponseAt.get(target);
    if (last === undefined || exchange.startedAt - last > COLD_AFTER_MS) {
      const failure = await probeConnect(target, timeouts.connect);
      if (failure !== null) {
        if (attempt) attempt.failure = "connect_failure";
        end();
        if (failure === "timeout") return timeoutProblem(exchange, new UpstreamTimeout("connect", timeouts.connect));
        return unreachable(exchange, failure);
      }
    }
  }

  const controller = new AbortController();
  // The timeout error is built only when a timer fires: an Error captures a stack,
  // too costly to make on every request for timers that almost never fire.
  const abort = (which: UpstreamTimeout["which"], ms: number) => controller.abort(new UpstreamTimeout(which, ms));
  // A client that goes away cancels the upstream call (and so its body, both ways).
  exchange.request.signal.addEventListener("abort", () => controller.abort(CLIENT_GONE), { once: true });
  const totalTimer = timeouts.total > 0 ? setTimeout(abort, timeouts.total, "total", timeouts.total) : null;
  const headersTimer =
    timeouts.responseHeaders > 0
      ? setTimeout(abort, timeouts.responseHeaders, "response_headers", timeouts.responseHeaders)
      : null;

  exchange.upstreamStartedAt = performance.now();
  let upstream: Response;
  try {
    upstream = await fetch(upstreamUrl(exchange, route, target), {
      method: exchange.request.method,
      headers,
      body: attempt?.body !== undefined ? attempt.body : exchange.body,
      redirect: "manual",
      decompress: false,
      ...upstreamTls(route, target),
      signal: controller.signal,
      duplex: "half",
    });
  } catch (error) {
    if (headersTimer) clearTimeout(headersTimer);
    if (totalTimer) clearTimeout(totalTimer);
    end();
    if (exchange.bodyFailure) return exchange.bodyFailure;
    const reason = controller.signal.reason;
    if (reason instanceof UpstreamTimeout) {
      if (attempt) attempt.failure = "timeout";
      return timeoutProblem(exchange, reason);
    }
    const code = describeFetchError(error);
    if (attempt && reason !== CLIENT_GONE) attempt.failure = CONNECT_FAILURES.has(code) ? "connect_failure" : "reset";
    return unreachable(exchange, code);
  }
  if (headersTimer) clearTimeout(headersTimer);
  exchange.upstreamHeadersAt = performance.now();
  lastResponseAt.set(target, exchange.upstreamHeadersAt);

  const responseHeaders = copyEndToEnd(upstream.headers);
  const init = { status: upstream.status, statusText: upstream.statusText, headers: responseHeaders };
  const body = upstream.body;
  if (body === null) {
    if (totalTimer) clearTimeout(totalTimer);
    end();
    return new Response(null, init);
  }

  const declared = upstream.headers.get("content-length");
  if (declared !== null && Number(declared) <= BUFFER_LIMIT) {
    // Small bodies are read whole while the timers run: simple and cheap, and a
    // stalled small body still ends in a 504 instead of a hung client. The idle
    // timeout bounds the whole read here (a small body has no reason to pause).
    const idleTimer = timeouts.idle > 0 ? setTimeout(abort, timeouts.idle, "idle", timeouts.idle) : null;
    try {
      const bytes = await upstream.arrayBuffer();
      return new Response(bytes, init);
    } catch (error) {
      const reason = controller.signal.reason;
      if (reason instanceof UpstreamTimeout) {
        if (attempt) attempt.failure = "timeout";
        return timeoutProblem(exchange, reason);
      }
      if (attempt && reason !== CLIENT_GONE) attempt.failure = "reset";
      return unreachable(exchange, `upstream body failed: ${describeFetchError(error)}`);
    } finally {
      if (idleTimer) clearTimeout(idleTimer);
      if (totalTimer) clearTimeout(totalTimer);
      end();
    }
  }

  if (timeouts.idle <= 0 && totalTimer === null && attempt?.onEnd == null) return new Response(body, init);
  return new Response(watchBody(body, controller, timeouts.idle, totalTimer, end), init);
}

/**
 * Passes body chunks through while an idle timeout watches the upstream; ends the
 * total timer with the body. A timeout aborts the upstream fetch, which errors the
 * stream and so closes the client connection mid-body (the status is already sent).
 *
 * Only time spent waiting on the upstream counts as idle: while a slow client holds
 * the body back, no read is pending and the clock does not run. One timer serves the
 * whole body; it is re-armed lazily instead of once per chunk.
 */
function watchBody(
  body: ReadableStream<Uint8Array>,
  controller: AbortController,
  idleMs: number,
  totalTimer: ReturnType<typeof setTimeout> | null,
  onEnd: () => void,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let idleTimer: ReturnType<typeof setTimeout> | null = null;
  /** When the pending upstream read started (performance.now()), or -1 with none pending. */
  let readingSince = -1;
  const checkIdle = () => {
    idleTimer = null;
    if (readingSince < 0) return;
    const waited = performance.now() - readingSince;
    if (waited >= idleMs) controller.abort(new UpstreamTimeout("idle", idleMs));
    else idleTimer = setTimeout(checkIdle, idleMs - waited);
  };
  const stopTimers = () => {
    readingSince = -1;
    if (idleTimer) clearTimeout(idleTimer);
    if (totalTimer) clearTimeout(totalTimer);
    onEnd();
  };
  return new ReadableStream<Uint8Array>({
    async pull(out) {
      if (idleMs > 0) {
        readingSince = performance.now();
        idleTimer ??= setTimeout(checkIdle, idleMs);
      }
      try {
        const { done, value } = await reader.read();
        readingSince = -1;
        if (done) {
          stopTimers();
          out.close();
          return;
        }
        out.enqueue(value);
      } catch (error) {
        stopTimers();
        out.error(error);
      }
    },
    cancel(reason) {
      stopTimers();
      controller.abort();
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

function timeoutProblem(exchange: Exchange, timeout: UpstreamTimeout): Response {
  return problem({
    status: 504,
    kind: "upstream-timeout",
    detail: `The upstream did not answer in time (${timeout.which} timeout of ${timeout.ms} ms).`,
    requestId: exchange.requestId,
  });
}

function unreachable(exchange: Exchange, reason: string): Response {
  return problem({
    status: 502,
    kind: "upstream-unreachable",
    detail: `The upstream could not be reached: ${reason}.`,
    requestId: exchange.requestId,
  });
}

function describeFetchError(error: unknown): string {
  const code = (error as { code?: string }).code;
  if (code) return code;
  return error instanceof Error ? error.message : String(error);
}
