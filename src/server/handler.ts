/**
 * The request handler of a worker: request id, limits, route match, the policy
 * pipeline around the proxy, and the one place that catches the unexpected.
 */
import type { Server } from "bun";
import type { ConsumerHeaders } from "../auth/consumer-headers.ts";
import type { RuntimeGraph } from "../config/graph.ts";
import { limitRequestBody } from "../core/body-limit.ts";
import { resolveClientAddress } from "../core/client-address.ts";
import type { Exchange, TlsInfo } from "../core/exchange.ts";
import { applyHeaderOps } from "../core/headers.ts";
import { answerMock } from "../core/mock.ts";
import { runCompletion, runPipeline, type Step } from "../core/pipeline.ts";
import type { Policy } from "../core/policy.ts";
import { problem } from "../core/problem.ts";
import type { Logger } from "../observability/logger.ts";
import type { WorkerTelemetry } from "../observability/telemetry.ts";
import type { CompiledRoute } from "../router/types.ts";
import { acquireAll, releaseAfterBody } from "../upstream/concurrency.ts";
import { BUFFER_LIMIT } from "../upstream/forward.ts";
import { proxyToUpstream } from "../upstream/proxy.ts";
import { isWebSocketUpgrade, proxyWebSocket, upgradedSession, whenSessionEnds } from "../upstream/websocket.ts";
import { copyEndToEnd } from "../upstream/hop-by-hop.ts";
import { parseRequestTarget } from "./request-target.ts";

const NO_STEPS: readonly Step[] = [];

/** A client's X-Request-ID is kept only if it is a short, printable token. */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:+=@\/-]{1,128}$/;

/** Creates the fetch handler for one listener. `current` returns the live config generation. */
export function createRequestHandler(
  scheme: "http" | "https",
  current: () => RuntimeGraph,
  log: Logger,
  telemetry: WorkerTelemetry | null = null,
  connections: ConnectionRegistry | null = null,
): (request: Request, server: Server<unknown>) => Promise<Response> {
  const onCompleteError = (error: unknown, policy: Policy, exchange: Exchange) =>
    log.error("policy completion hook failed", { policy: policy.type, request_id: exchange.requestId, error });

  return async function handle(request, server) {
    const startedAt = performance.now();
    const given = request.headers.get("x-request-id");
    const requestId = given !== null && SANE_REQUEST_ID.test(given) ? given : crypto.randomUUID();
    const state: HandleState = { exchange: null, clientIp: "" };
    const response = await serve(request, server, requestId, state);
    if (telemetry) telemetry.end({ request, exchange: state.exchange, requestId, clientIp: state.clientIp, response, startedAt });
    return response;
  };

  async function serve(request: Request, server: Server<unknown>, requestId: string, state: HandleState): Promise<Response> {
    const graph = current();
    try {
      let peer: string;
      let tls: TlsInfo | null = null;
      if (connections) {
        const connection = connections.lookup(server.requestIP(request)?.port ?? -1);
        if (!connection) {
          return problem({ status: 400, kind: "connection-unknown", detail: "The connection is not known to the TLS listener.", requestId });
        }
        peer = connection.peerAddress;
        tls = connection.tls;
      } else {
        peer = server.requestIP(request)?.address ?? "";
      }
      state.clientIp = peer;
      const early = checkLimits(request, graph, requestId);
      if (early) return early;
      let realClientIp = peer;
      if (graph.trustedProxies) {
        const resolved = resolveClientAddress(peer, request.headers.get("x-forwarded-for"), graph.trustedProxies);
        if (!resolved.ok) {
          return problem({
            status: 400,
            kind: "bad-forwarded-for",
            detail: `X-Forwarded-For holds ${JSON.stringify(resolved.entry)}, which is not an IP address.`,
            requestId,
          });
        }
        realClientIp = state.clientIp = resolved.address;
      }
      const url = parseRequestTarget(request, scheme, authorityOf(server), requestId);
      if (url instanceof Response) return url;
      if (connections) {
        const misdirected = connections.checkHost(url.hostname, tls, requestId);
        if (misdirected) return misdirected;
      }
      const match = graph.router.match(request, url);
      const clientIp = peer;
      const exchange: Exchange = (state.exchange = {
        request,
        url,
        requestId,
        clientIp,
        realClientIp,
        tls,
        scheme,
        route: match?.route ?? null,
        params: match?.params ?? {},
        upstreamHeaders: upstreamHeaders(request, url, clientIp, scheme, requestId, graph),
        responseHeaders: null,
        body: request.body,
        bodyFailure: null,
        startedAt: performance.now(),
        decisions: null,
        answeredBy: null,
        state: new Map(),
        upstreamTarget: null,
        upstreamStartedAt: 0,
        upstreamHeadersAt: 0,
        consumer: null,
        server,
      });
      // A split route hands the request to the variant of its chosen upstream.
      if (exchange.route?.split) exchange.route = exchange.route.split.choose(exchange);
      if (telemetry) telemetry.start(exchange);
      const route = exchange.route;
      if (route) {
        const refused = limitRequestBody(exchange, route.limits.maxBodySize);
        if (refused) return refused;
      }
      const participants: Policy[] = [];
      const routeSteps = route?.policies ?? NO_STEPS;
      // With no policy anywhere, the pipeline is just the proxy: skip its bookkeeping.
      let response =
        graph.preFlow.length === 0 && routeSteps.length === 0 && graph.postFlow.length === 0
          ? await proxy(exchange)
          : await runPipeline(exchange, graph.preFlow, routeSteps, graph.postFlow, graph.consumerHeaders ? proxyWithConsumer(graph.consumerHeaders) : proxy, participants);
      response = finish(response, exchange);
      if (participants.length > 0) runCompletion(exchange, response, participants, onCompleteError);
      return response;
    } catch (error) {
      if (request.signal.aborted) {
        // The client went away (e.g. a broken upload); nobody is left to answer.
        log.debug("client aborted the request", { request_id: requestId, route: state.exchange?.route?.name });
        return problem({ status: 400, kind: "client-aborted", detail: "The client aborted the request.", requestId });
      }
      log.error("unexpected error while handling a request", {
        request_id: requestId,
        route: state.exchange?.route?.name,
        error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
        stack: error instanceof Error ? error.stack : undefined,
      });
      return problem({ status: 500, kind: "internal", detail: "The gateway failed to handle this request.", requestId });
    }
  }
}

/** What `serve` learned that the telemetry needs even when it answered early. */
interface HandleState {
  exchange: Exchange | null;
  /** The real client address once known (the socket peer until then). */
  clientIp: string;
}

/**
 * Connections of a listener whose TLS is terminated in front of its Bun.serve (client
 * certificates): the handler finds a request's connection by the source port it came from.
 */
export interface ConnectionRegistry {
  lookup(localPort: number): { peerAddress: string; tls: TlsInfo } | undefined;
  /** A 421 problem when the request's host is not the server name the handshake verified. */
  checkHost(hostname: string, tls: TlsInfo | null, requestId: string): Response | undefined;
}

/** The listener's own address, the authority of a request that has no Host (HTTP/1.0). */
function authorityOf(server: Server<unknown>): string {
  const host = server.hostname ?? "localhost";
  return `${host.includes(":") ? `[${host}]` : host}:${server.port}`;
}

/** Server-wide limits that apply before routing: URL length (414) and header size (431). */
function checkLimits(request: Request, graph: RuntimeGraph, requestId: string): Response | undefined {
  const limits = graph.limits;
  // request.url is absolute; the request target is what follows the authority.
  const target = request.url.length - request.url.indexOf("/", 8);
  if (target > limits.maxUrlLength) {
    return problem({ status: 414, kind: "uri-too-long", detail: `The request target exceeds ${limits.maxUrlLength} characters.`, requestId });
  }
  if (limits.maxHeaderSize > 0) {
    let size = 0;
    for (const [name, value] of request.headers) size += name.length + value.length + 4;
    if (size > limits.maxHeaderSize) {
      return problem({ status: 431, kind: "headers-too-large", detail: `The request headers exceed ${limits.maxHeaderSize} bytes.`, requestId });
    }
  }
  return undefined;
}

/** Headers for the upstream: end-to-end headers of the client plus X-Forwarded-* and the request id. */
function upstreamHeaders(request: Request, url: URL, clientIp: string, scheme: string, requestId: string, graph: RuntimeGraph): Headers {
  const headers = copyEndToEnd(request.headers);
  // Consumer headers come from the gateway only: a client's copies could forge an identity.
  graph.consumerHeaders?.strip(headers);
  const forwardedFor = headers.get("x-forwarded-for");
  headers.set("x-forwarded-for", forwardedFor ? `${forwardedFor}, ${clientIp}` : clientIp);
  headers.set("x-forwarded-proto", scheme);
  headers.set("x-forwarded-host", request.headers.get("host") ?? url.host);
  headers.set("x-request-id", requestId);
  return headers;
}

/** The proxy, first telling the upstream who is calling when a policy identified the caller. */
function proxyWithConsumer(consumerHeaders: ConsumerHeaders): (exchange: Exchange) => Promise<Response> {
  return (exchange) => {
    if (exchange.consumer) consumerHeaders.write(exchange.upstreamHeaders, exchange.consumer);
    return proxy(exchange);
  };
}

/** The proxy at the centre of the pipeline. */
async function proxy(exchange: Exchange): Promise<Response> {
  const route = exchange.route;
  if (!route) {
    return problem({
      status: 404,
      kind: "no-route",
      detail: `No route matches ${exchange.request.method} ${exchange.url.pathname}.`,
      requestId: exchange.requestId,
    });
  }
  if (route.limiters.length === 0) return callUpstream(exchange, route);
  let refusedBy = acquireAll(route.limiters, exchange.request.signal);
  if (refusedBy instanceof Promise) refusedBy = await refusedBy;
  if (refusedBy) return refusedBy.refusal(exchange);
  const release = () => {
    for (const limiter of route.limiters) limiter.release();
  };
  let response: Response;
  try {
    response = await callUpstream(exchange, route);
  } catch (error) {
    release();
    throw error;
  }
  const session = upgradedSession(response);
  if (session) {
    // A WebSocket holds its slots for as long as the session lasts.
    whenSessionEnds(session, release);
    return response;
  }
  // A mock's answer, and an upstream answer small enough to have been read whole, hold
  // nothing upstream any more; only a streamed body keeps its slot while it flows.
  const declared = response.headers.get("content-length");
  if (route.upstream.kind === "mock" || (declared !== null && Number(declared) <= BUFFER_LIMIT)) {
    release();
    return response;
  }
  return releaseAfterBody(response, release);
}

/** The upstream call (or mock answer) of a route, with its header actions. */
async function callUpstream(exchange: Exchange, route: CompiledRoute): Promise<Response> {
  if (route.requestHeaders) applyHeaderOps(exchange.upstreamHeaders, route.requestHeaders);
  const upstream = route.upstream;
  let response: Response;
  if (upstream.kind === "mock") {
    const path = route.rewrite ? route.rewrite(exchange.url.pathname, exchange.params) : exchange.url.pathname;
    response = await answerMock(upstream.mock, exchange, path + exchange.url.search, exchange.upstreamHeaders);
  } else {
    // Right after a (re)load, a DNS-discovered upstream may still be resolving its names.
    const resolving = upstream.discovery?.starting;
    if (resolving) await resolving;
    if (exchange.server && isWebSocketUpgrade(exchange.request)) {
      const target = upstream.choose(exchange, null) ?? upstream.targets[0] ?? null;
      response = target
        ? await proxyWebSocket(exchange, route, target, exchange.server)
        : problem({ status: 503, kind: "no-healthy-upstream", detail: `Upstream "${upstream.name}" has no target.`, requestId: exchange.requestId });
      const session = target ? upgradedSession(response) : undefined;
      if (session) {
        // An open session is a request in flight to its target (least connections sees it).
        target!.begin();
        whenSessionEnds(session, () => target!.end());
      }
    } else {
      response = await proxyToUpstream(exchange, route, upstream);
    }
  }
  if (route.responseHeaders) applyHeaderOps(response.headers, route.responseHeaders);
  return response;
}

/** Adds the request id and headers collected by policies to the final response. */
function finish(response: Response, exchange: Exchange): Response {
  let headers = response.headers;
  try {
    headers.set("x-request-id", exchange.requestId);
  } catch {
    // Immutable headers (a fetch Response returned by a policy): copy once.
    response = new Response(response.body, { status: response.status, statusText: response.statusText, headers: new Headers(headers) });
    headers = response.headers;
    headers.set("x-request-id", exchange.requestId);
  }
  if (exchange.responseHeaders) {
    for (const [name, value] of exchange.responseHeaders) headers.append(name, value);
  }
  return response;
}
