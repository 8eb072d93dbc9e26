/**
 * Test helper: a real HTTP upstream on 127.0.0.1 with a handler per test.
 */
import type { Server } from "bun";

export interface TestUpstream {
  url: string;
  port: number;
  server: Server<unknown>;
  /** Requests seen so far (method, path with query, headers). */
  seen: { method: string; path: string; headers: Headers }[];
  stop(): void;
}

/** Starts an upstream; `handler` answers each request (default: 200 "ok"). */
export function startUpstream(handler?: (request: Request, server: Server<unknown>) => Response | Promise<Response>): TestUpstream {
  const seen: TestUpstream["seen"] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    maxRequestBodySize: Number.MAX_SAFE_INTEGER,
    fetch(request, srv) {
      const url = new URL(request.url);
      seen.push({ method: request.method, path: url.pathname + url.search, headers: request.headers });
      return handler ? handler(request, srv) : new Response("ok");
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}`,
    port: server.port!,
    server,
    seen,
    stop: () => server.stop(true),
  };
}

/** A target that answers with its name, and 200 or 503 on `/health` as `healthy` says. */
export type NamedTarget = TestUpstream & { healthy: boolean };

/** Starts a target that answers with `name` (health checks look at `/health`). */
export function startNamedTarget(name: string): NamedTarget {
  const upstream: NamedTarget = Object.assign(
    startUpstream((request) => {
      if (new URL(request.url).pathname === "/health") return new Response(upstream.healthy ? "ok" : "down", { status: upstream.healthy ? 200 : 503 });
      return new Response(name);
    }),
    { healthy: true },
  );
  return upstream;
}
