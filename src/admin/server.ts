/**
 * The admin listener (its own port, 127.0.0.1 by default), served by the supervisor:
 *
 * - `GET /healthz`: the supervisor is alive (200).
 * - `GET /readyz`: 200 when every worker of the current generation serves, else 503.
 * - `GET /config`: the effective config as JSON, secrets redacted.
 * - `GET /status`: version, uptime, workers, config generation, request counts, store availability.
 * - `POST /reload`: reload the config file now (same as SIGHUP); 200 or 422 with errors.
 * - `GET /metrics`: Prometheus text format, merged over every worker (404 when disabled).
 * - `GET /upstreams`: every http upstream's targets with their node-wide state (healthy,
 *   ejected, circuit breaker, requests in flight).
 */
import type { Server } from "bun";
import { problem } from "../core/problem.ts";
import type { AuditActor } from "../observability/audit-log.ts";
import { EXPOSITION_CONTENT_TYPE } from "../observability/metrics/exposition.ts";
import { redactConfig } from "./redact.ts";

/** What the admin API reads from the supervisor. */
export interface AdminSource {
  version: string;
  startedAt: number;
  ready(): boolean;
  status(): Record<string, unknown> | Promise<Record<string, unknown>>;
  config(): { value: unknown; secrets: ReadonlySet<string> };
  /** `actor` names the caller for the audit log. */
  reload(reason: string, actor?: AuditActor): Promise<{ ok: boolean; errors: string[]; generation: number }>;
  /** The node's metrics in the Prometheus text format; null when disabled. */
  metrics?(): Promise<string | null>;
  /** The upstreams and the node-wide state of their targets. */
  upstreams?(): unknown;
}

/** Starts the admin listener. */
export function startAdmin(address: string, port: number, source: AdminSource): Server<unknown> {
  return Bun.serve({
    hostname: address,
    port,
    async fetch(request, server) {
      const url = new URL(request.url);
      const requestId = crypto.randomUUID();
      const route = `${request.method} ${url.pathname}`;
      switch (route) {
        case "GET /healthz":
          return Response.json({ status: "ok" });
        case "GET /readyz":
          return source.ready() ? Response.json({ status: "ready" }) : Response.json({ status: "starting" }, { status: 503 });
        case "GET /config": {
          const { value, secrets } = source.config();
          return Response.json(redactConfig(value, secrets));
        }
        case "GET /status":
          return Response.json(await source.status());
        case "POST /reload": {
          const result = await source.reload("admin API", { type: "admin_api", address: server.requestIP(request)?.address ?? null });
          return Response.json(result, { status: result.ok ? 200 : 422 });
        }
        case "GET /metrics": {
          const text = source.metrics ? await source.metrics() : null;
          if (text === null) return problem({ status: 404, kind: "no-route", detail: "Metrics are disabled (observability.metrics.enabled).", requestId });
          return new Response(text, { headers: { "content-type": EXPOSITION_CONTENT_TYPE } });
        }
        case "GET /upstreams":
          return Response.json(source.upstreams ? source.upstreams() : { upstreams: {} });
        default:
          return problem({ status: 404, kind: "no-route", detail: `The admin API has no ${route}.`, requestId });
      }
    },
    error() {
      return problem({ status: 500, kind: "internal", detail: "The admin API failed.", requestId: crypto.randomUUID() });
    },
  });
}
