/**
 * A worker process: serves every listener of the current config with Bun.serve and
 * `reusePort`, swaps config generations in place, and drains on SIGTERM.
 */
import type { Server } from "bun";
import { constants as cryptoConstants } from "node:crypto";
import type { RuntimeGraph } from "../config/graph.ts";
import { ConfigLoader } from "../config/load.ts";
import { formatError } from "../config/source.ts";
import { problem } from "../core/problem.ts";
import { AccessLog } from "../observability/access-log.ts";
import { ErrorLogOutput } from "../observability/error-log.ts";
import { createLogger } from "../observability/logger.ts";
import { RequestMetrics } from "../observability/metrics/request-metrics.ts";
import { WorkerTelemetry } from "../observability/telemetry.ts";
import { Tracing } from "../observability/tracing/tracing.ts";
import { nodeTable } from "../shared/index.ts";
import { setUpstreamEventSink } from "../upstream/events.ts";
import { upstreamEventLogger } from "../upstream/status.ts";
import { deliverFromBus, setBusTransport } from "../store/embedded/bus.ts";
import { processStores } from "../store/index.ts";
import { startDiscovery } from "../upstream/dns/targets.ts";
import { webSocketHandler } from "../upstream/websocket.ts";
import { createRequestHandler, type ConnectionRegistry } from "./handler.ts";
import { startTlsBridge, type TlsBridge } from "./tls-bridge.ts";
import type { FromWorker, ToWorker } from "./messages.ts";

/** Largest body Bun itself accepts; the gateway's own limits apply below it. */
const UNLIMITED_BODY = Number.MAX_SAFE_INTEGER;

/**
 * TLS 1.0 and 1.1 are refused. Bun 1.4 already refuses them by default; saying so here
 * keeps the minimum at TLS 1.2 if that default ever changes (Bun.serve has no minVersion).
 */
const NO_TLS_BELOW_1_2 = cryptoConstants.SSL_OP_NO_TLSv1 | cryptoConstants.SSL_OP_NO_TLSv1_1;

/** After the listeners close, a drain waits at least this long for requests still arriving. */
const DRAIN_LINGER_MS = 100;

/** Runs a worker until it is told to drain or is killed. */
export function runWorker(): void {
  // Log rotation: SIGUSR1 (forwarded by the supervisor) reopens the access log. Installed
  // first, since an unhandled SIGUSR1 would end the process.
  let reopenLogs = () => {};
  process.on("SIGUSR1", () => reopenLogs());
  const errorLog = new ErrorLogOutput();
  const log = createLogger({ role: "worker", pid: process.pid }, errorLog.level, errorLog.write);
  setUpstreamEventSink(upstreamEventLogger(log));
  processStores.setLog(log);
  const send = (message: FromWorker) => process.send?.(message);
  const loader = new ConfigLoader(undefined, log);
  // Telemetry parts (metrics, access log, tracing) are listed here once each.
  // The final metrics snapshot of a draining worker; an IPC message sent just before exit
  // can be lost (bun issue 37849), so the exit waits a moment after it.
  const metrics = new RequestMetrics(async (snapshot) => {
    send({ type: "metrics", id: null, snapshot });
    await Bun.sleep(50);
  });
  const accessLog = new AccessLog(log);
  reopenLogs = () => accessLog.reopen();
  const telemetry = new WorkerTelemetry([metrics, new Tracing(log), accessLog], log);
  let graph: RuntimeGraph | null = null;
  let generation = 0;
  let servers: Server<unknown>[] = [];
  /** TLS bridges in front of listeners with client certificates (their inner servers are in `servers`). */
  let bridges: TlsBridge[] = [];
  let started = false;
  let draining = false;
  /** Responses carry `Connection: close` so keep-alive clients leave before the listener closes. */
  let closingConnections = false;

  process.on("message", (message: ToWorker) => {
    if (message.type === "config") applyConfig(message);
    else if (message.type === "drain") void drain("told by the supervisor", message.handoffMs ?? 0);
    else if (message.type === "metrics") send({ type: "metrics", id: message.id, snapshot: metrics.snapshot() });
    else if (message.type === "published") deliverFromBus(message.channel, message.message);
  });
  process.on("SIGTERM", () => void drain("SIGTERM"));
  process.on("SIGINT", () => void drain("SIGINT"));
  // A lost supervisor must not leave orphan workers holding the ports.
  process.on("disconnect", () => void drain("supervisor went away"));

  function applyConfig(message: Extract<ToWorker, { type: "config" }>): void {
    if (draining) return;
    const result = loader.loadText(message.text, message.file);
    if (!result.ok) {
      const errors = result.errors.map((e) => formatError(message.file, e));
      log.error("config rejected by worker", { generation: message.generation, errors });
      send({ type: "failed", generation: message.generation, errors });
      return;
    }
    const previous = graph;
    graph = result.loaded.graph;
    generation = message.generation;
    errorLog.configure(graph.observability.error_log);
    processStores.retainOnly(graph.store, graph.drainTimeoutMs);
    // A cluster store connects (and says whether it can) when the config is taken, not at
    // the first request that needs it.
    if (graph.store.type !== "embedded") processStores.get(graph.store);
    telemetry.configure(graph);
    startDiscovery(graph.upstreams, log, { quiet: true, previous: previous?.upstreams });
    if (!started) {
      started = true;
      const first = graph;
      startListeners(first).then(
        (list) => {
          servers = list;
          send({
            type: "ready",
            generation,
            listeners: first.listeners.map((l) => ({ name: l.name, url: `${l.scheme}://${l.address}:${l.port}` })),
          });
        },
        (error: unknown) => {
          const text = `cannot listen: ${(error as Error).message}`;
          log.error(text, { generation });
          send({ type: "failed", generation, errors: [text] });
          // An IPC message sent just before exit can be lost (bun issue 37849): give it time.
          setTimeout(() => process.exit(3), 50);
        },
      );
    } else {
      // Routes, upstreams and policies change in place; listeners are the supervisor's
      // business (it starts a new generation of workers when they change).
      send({ type: "reloaded", generation });
    }
    if (previous) retireGraph(previous);
  }

  /**
   * Requests that started on the previous graph may still use its policies, so it is
   * disposed only after the drain grace, the longest a request is waited for anyway.
   */
  function retireGraph(previous: RuntimeGraph): void {
    const timer = setTimeout(() => previous.dispose(), previous.drainTimeoutMs);
    timer.unref?.();
  }

  /**
   * Starts every listener: Bun.serve directly, or, for listeners with client
   * certificates, Bun.serve on loopback behind a TLS bridge. If one fails, those already
   * started are closed.
   */
  async function startListeners(first: RuntimeGraph): Promise<Server<unknown>[]> {
    const current = () => graph ?? first;
    const started: Server<unknown>[] = [];
    try {
      for (const listener of first.listeners) {
        const listenerLog = log.child({ listener: listener.name });
        const serve = (connections: ConnectionRegistry | null, hostname: string, port: number, tls: boolean) =>
          Bun.serve({
            hostname,
            port,
            reusePort: !connections,
            idleTimeout: first.clientIdleTimeoutSeconds,
            maxRequestBodySize: UNLIMITED_BODY,
            tls:
              tls && listener.tls
                ? listener.tls.map((entry) => ({
                    cert: entry.cert,
                    key: entry.key,
                    serverName: entry.serverName,
                    lowMemoryMode: false,
                    secureOptions: NO_TLS_BELOW_1_2,
                  }))
                : undefined,
            fetch: closeWhenDraining(createRequestHandler(listener.scheme, current, listenerLog, telemetry, connections)),
            websocket: webSocketHandler,
            error(error) {
              const requestId = crypto.randomUUID();
              log.error("unhandled server error", { request_id: requestId, error: error.message });
              return problem({ status: 500, kind: "internal", detail: "The gateway failed to handle this request.", requestId });
            },
          });
        if (listener.clientCertificates) {
          const bridge = await startTlsBridge(
            listener,
            (connections) => serve(connections, "127.0.0.1", 0, false),
            (message, error) => listenerLog.debug(message, { error: (error as Error).message }),
          );
          bridges.push(bridge);
          started.push(bridge.inner);
        } else {
          started.push(serve(null, listener.address, listener.port, true));
        }
      }
    } catch (error) {
      for (const bridge of bridges) bridge.closeAll();
      for (const server of started) server.stop(true);
      bridges = [];
      throw error;
    }
    return started;
  }

  /**
   * Wraps a handler so that, once draining, every response says `Connection: close`: the
   * client then opens its next request on a new connection (to another worker) instead
   * of racing the close of an idle keep-alive connection.
   */
  function closeWhenDraining(
    handler: (request: Request, server: Server<unknown>) => Promise<Response>,
  ): (request: Request, server: Server<unknown>) => Promise<Response> {
    const markClose = (response: Response) => {
      try {
        response.headers.set("connection", "close");
        return response;
      } catch {
        const headers = new Headers(response.headers);
        headers.set("connection", "close");
        return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
      }
    };
    return (request, server) => {
      const response = handler(request, server);
      return closingConnections ? response.then(markClose) : response;
    };
  }

  /**
   * Stops serving: for `handoffMs` the listeners stay open while responses close their
   * connections (a worker being replaced while others serve hands its keep-alive clients
   * over this way), then the listeners close, idle connections close, and in-flight
   * requests get up to `server.drain_timeout` to finish.
   */
  async function drain(reason: string, handoffMs = 0): Promise<void> {
    if (draining) return;
    draining = true;
    closingConnections = true;
    const graceMs = graph?.drainTimeoutMs ?? 30_000;
    log.info("draining", { reason, grace_ms: graceMs, handoff_ms: handoffMs });
    if (handoffMs > 0) await Bun.sleep(Math.min(handoffMs, graceMs));
    for (const bridge of bridges) bridge.stopAccepting();
    for (const server of servers) server.stop(false);
    send({ type: "closed" });
    // A request whose head was still arriving when the listeners closed is not pending
    // yet, but Bun serves it: wait a moment before deciding that nothing is left.
    const lingerUntil = performance.now() + Math.min(DRAIN_LINGER_MS, graceMs);
    const deadline = performance.now() + graceMs;
    const busy = () => servers.some((s) => s.pendingRequests > 0 || s.pendingWebSockets > 0);
    while (performance.now() < deadline && (performance.now() < lingerUntil || busy())) {
      await Bun.sleep(20);
    }
    const left = servers.reduce((n, s) => n + s.pendingRequests, 0);
    if (left > 0) log.warn("grace period over; closing remaining requests", { pending: left });
    for (const server of servers) server.stop(true);
    for (const bridge of bridges) bridge.closeAll();
    await telemetry.close();
    graph?.dispose();
    // Durable counters (quotas) are written before the worker goes.
    await processStores.closeAll();
    process.exit(0);
  }

  // Map the node's shared memory now, so that a worker that cannot does not serve.
  try {
    nodeTable();
  } catch (error) {
    const text = `cannot map the node's shared memory: ${(error as Error).message}`;
    log.error(text);
    send({ type: "failed", generation: 0, errors: [text] });
    setTimeout(() => process.exit(3), 50);
    return;
  }
  setBusTransport((channel, message) => send({ type: "publish", channel, message }));
  send({ type: "hello" });
}
