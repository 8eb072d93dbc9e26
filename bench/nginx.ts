/**
 * nginx in its two roles: the upstream (a fixed 48-byte JSON answer) and the reference
 * proxy (proxy_pass to that upstream with pooled keep-alive connections).
 *
 * Each role is its own nginx process with `master_process off; daemon off;
 * worker_processes 1`, so one PID holds all the CPU time of that role. Every path the
 * process writes (pid, logs, temp files) is inside the run's temp folder.
 */
import type { Subprocess } from "bun";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Processes } from "./processes.ts";
import { waitUntil } from "./wait.ts";

/** The upstream's answer: 48 bytes of JSON, for every path. */
export const UPSTREAM_BODY = '{"ok":true,"message":"hello from the upstream!"}';
/** Response header in which the upstream echoes the request header a policy sets. */
export const ECHO_HEADER = "x-upstream-saw-policy";
/** The request header both proxies set in the policy scenario. */
export const POLICY_REQUEST_HEADER = "x-bench-policy";

/** Settings shared by both roles: one process, no access log, files in `dir`. */
function common(dir: string, role: string): string {
  return `# Written by Turnpike's bench/run.ts (${role}); removed after the run.
master_process off;
daemon off;
worker_processes 1;
pid ${join(dir, `${role}.pid`)};
error_log ${join(dir, `${role}-error.log`)} warn;
events { worker_connections 4096; }
`;
}

function httpCommon(dir: string, role: string): string {
  const temp = join(dir, `${role}-temp`);
  return `  access_log off;
  server_tokens off;
  client_body_temp_path ${temp}/client-body;
  proxy_temp_path ${temp}/proxy;
  fastcgi_temp_path ${temp}/fastcgi;
  uwsgi_temp_path ${temp}/uwsgi;
  scgi_temp_path ${temp}/scgi;
  # Client connections stay open for the whole run (nginx closes them after 1000
  # requests by default, which Turnpike does not do).
  keepalive_requests 1000000000;
  keepalive_timeout 75s;
`;
}

/**
 * Config of the upstream role: answers every request with UPSTREAM_BODY, on `port` and on
 * each of `morePorts` (the targets of the balanced scenario: one process, several addresses).
 */
export function upstreamConfig(dir: string, port: number, morePorts: readonly number[] = []): string {
  const listens = [port, ...morePorts].map((p) => `    listen 127.0.0.1:${p};`).join("\n");
  return `${common(dir, "upstream")}http {
${httpCommon(dir, "upstream")}
  server {
${listens}
    location / {
      default_type application/json;
      # Lets the harness check that a proxy really sent the policy header.
      add_header ${ECHO_HEADER} $http_${POLICY_REQUEST_HEADER.replaceAll("-", "_")};
      return 200 '${UPSTREAM_BODY}';
    }
  }
}
`;
}

/** Access log of the reference proxy's `/observability` location, in the run's folder. */
export function nginxAccessLogPath(dir: string): string {
  return join(dir, "proxy-access.log");
}

/**
 * Config of the reference proxy: `/plain` is a bare proxy_pass; `/policies` adds what
 * Turnpike's policy scenario does (a request header, a body size limit, a response header);
 * `/observability` is `/plain` with an access log to a file (nginx's counterpart of
 * Turnpike with metrics and an access log); `/balanced` is `proxy_pass` to an upstream of
 * the targets `poolPorts` with `least_conn` (when given).
 */
export function proxyConfig(dir: string, port: number, upstreamPort: number, poolPorts: readonly number[] = [], tls: NginxTls | null = null): string {
  const pass = `proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";`;
  return `${common(dir, "proxy")}http {
${httpCommon(dir, "proxy")}
  limit_req_zone $binary_remote_addr zone=bench_rate:1m rate=1000000r/s;
  limit_conn_zone $server_name zone=bench_conn:1m;
  upstream backend {
    server 127.0.0.1:${upstreamPort};
    keepalive 64;
    keepalive_requests 1000000000;
  }
${
    poolPorts.length === 0
      ? ""
      : `  upstream pool {
    least_conn;
${poolPorts.map((p) => `    server 127.0.0.1:${p};`).join("\n")}
    keepalive 64;
    keepalive_requests 1000000000;
  }
`
  }  server {
    listen 127.0.0.1:${port};
    location = /plain {
      ${pass}
    }
    location = /policies {
      client_max_body_size 1m;
      ${pass}
      proxy_set_header ${POLICY_REQUEST_HEADER} on;
      add_header cache-control no-store;
    }
    location = /rate-limited {
      limit_req zone=bench_rate burst=1000000 nodelay;
      ${pass}
    }
    location = /concurrency-limited {
      limit_conn bench_conn 1000;
      ${pass}
    }
    location = /observability {
      access_log ${nginxAccessLogPath(dir)} combined;
      ${pass}
    }
    location = /balanced {
      ${poolPorts.length === 0 ? "return 404;" : pass.replace("http://backend", "http://pool")}
    }
  }
${
    tls
      ? `  server {
    listen 127.0.0.1:${tls.port} ssl;
    ssl_certificate ${tls.certPath};
    ssl_certificate_key ${tls.keyPath};
    ssl_protocols TLSv1.2 TLSv1.3;
    # The counterpart of Turnpike's mtls listener: ask for a client certificate, let routes decide.
    ssl_client_certificate ${tls.caPath};
    ssl_verify_client optional;
    location = /plain {
      ${pass}
    }
  }
`
      : ""
  }}
`;
}

/** The HTTPS listener of the reference proxy (the `tls` and `mtls` scenarios). */
export interface NginxTls {
  port: number;
  certPath: string;
  keyPath: string;
  caPath: string;
}

/** A started nginx role. */
export interface NginxProcess {
  role: string;
  child: Subprocess;
  pid: number;
  url: string;
  errorLog: string;
}

/** Writes `config` for `role` into `dir`, starts nginx on it and waits until `probePath` answers. */
export async function startNginx(
  nginxPath: string,
  processes: Processes,
  dir: string,
  role: string,
  port: number,
  config: string,
  probePath: string,
): Promise<NginxProcess> {
  const configPath = join(dir, `${role}.conf`);
  const errorLog = join(dir, `${role}-error.log`);
  writeFileSync(configPath, config);
  // nginx creates the last level of its temp paths, not the folder above them.
  mkdirSync(join(dir, `${role}-temp`), { recursive: true });
  const child = processes.spawn(`nginx ${role}`, [nginxPath, "-p", dir, "-c", configPath, "-e", errorLog], {
    stdout: Bun.file(join(dir, `${role}.out`)),
    stderr: Bun.file(join(dir, `${role}.err`)),
    // SIGQUIT is nginx's graceful stop; the harness stops it only when no load runs.
    stopSignal: "SIGQUIT",
  });
  const url = `http://127.0.0.1:${port}`;
  await waitUntil(`nginx ${role} on ${url}`, 10_000, child, errorLog, async () => {
    const response = await fetch(url + probePath);
    await response.arrayBuffer();
    return response.status === 200;
  });
  return { role, child, pid: child.pid, url, errorLog };
}
