/**
 * TLS termination in front of Bun.serve for listeners with client certificates (mTLS).
 *
 * Bun.serve neither shows the handler the client certificate nor the SNI name, and its
 * client-certificate setting cannot differ by host. So for these listeners `node:tls`
 * terminates TLS (SNI picks the certificate, the client certificate is verified against
 * the listener's CAs) and pipes the plaintext to an internal Bun.serve on a loopback
 * port of this worker. What the handshake established is recorded per connection, keyed
 * by the source port of the loopback leg, which the handler reads through
 * `server.requestIP(request).port`.
 *
 *     client ──TLS──▶ node:tls (public port, reusePort) ──plaintext──▶ Bun.serve 127.0.0.1:<ephemeral>
 *                      records { peer address, SNI, certificate } under the loopback source port
 *
 * Because the handler knows the verified SNI name, a request whose Host names another
 * host than the one the handshake was for is refused with 421 (a client cannot ask for
 * one name in TLS and another in HTTP). A client that sent no SNI got the default
 * (first) certificate, so it may only name a host that certificate serves, or an IP.
 */
import type { Server, Socket } from "bun";
import { X509Certificate } from "node:crypto";
import { createSecureContext, createServer, type SecureContext, type TLSSocket } from "node:tls";
import type { CompiledListener } from "../config/graph.ts";
import type { ClientCertificate, TlsInfo } from "../core/exchange.ts";
import { parseAddress } from "../core/net.ts";
import { problem } from "../core/problem.ts";
import type { ConnectionRegistry } from "./handler.ts";

/** Longest a TLS handshake may take, in milliseconds. */
const HANDSHAKE_TIMEOUT_MS = 10_000;

/** A running bridge: the public TLS server and the internal Bun.serve behind it. */
export interface TlsBridge {
  /** The internal server (its pending requests count for the drain). */
  readonly inner: Server<unknown>;
  /** Stops accepting new TLS connections; open ones go on. */
  stopAccepting(): void;
  /** Closes every connection. */
  closeAll(): void;
}

/** What the handshake of one connection established. */
interface ConnectionRecord {
  peerAddress: string;
  tls: TlsInfo;
}

/**
 * Starts the bridge for `listener` (which has `clientCertificates`). `serve` builds the
 * internal Bun.serve given the connection registry; it must listen on 127.0.0.1:0.
 */
export async function startTlsBridge(
  listener: CompiledListener,
  serve: (connections: ConnectionRegistry) => Server<unknown>,
  onError: (message: string, error: unknown) => void,
): Promise<TlsBridge> {
  const entries = listener.tls!;
  const client = listener.clientCertificates!;
  const connections = new Map<number, ConnectionRecord>();
  const hostRules = compileHostRules(entries);
  const registry: ConnectionRegistry = {
    lookup: (port) => connections.get(port),
    checkHost(hostname, tls, requestId) {
      if (tls === null || hostRules(hostname.toLowerCase(), tls.serverName)) return undefined;
      return problem({
        status: 421,
        kind: "misdirected-request",
        detail:
          tls.serverName === null
            ? `This connection sent no TLS server name, so it may only ask for a host of the default certificate, not ${JSON.stringify(hostname)}.`
            : `This connection was set up for ${tls.serverName}, not ${JSON.stringify(hostname)}; open a new connection for that host.`,
        requestId,
      });
    },
  };
  const inner = serve(registry);
  const innerPort = inner.port!;

  // One secure context per SNI name; the default one also answers clients without SNI.
  const contexts = new Map<string, SecureContext>();
  const wildcards: [string, SecureContext][] = [];
  let fallback: SecureContext | null = null;
  for (const entry of entries) {
    const context = createSecureContext({ cert: entry.cert, key: entry.key, ca: client.ca, minVersion: "TLSv1.2" });
    fallback ??= context;
    if (entry.serverName === undefined) continue;
    if (entry.serverName.startsWith("*.")) wildcards.push([entry.serverName.slice(1), context]);
    else contexts.set(entry.serverName, context);
  }
  const first = entries[0]!;
  const server = createServer(
    {
      cert: first.cert,
      key: first.key,
      ca: client.ca,
      minVersion: "TLSv1.2",
      requestCert: true,
      rejectUnauthorized: client.mode === "require",
      // A client that opens a connection and never finishes the handshake is dropped.
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
      ALPNProtocols: ["http/1.1"],
      SNICallback(name, callback) {
        const lower = name.toLowerCase();
        let context = contexts.get(lower);
        if (!context) {
          const dot = lower.indexOf(".");
          const suffix = dot > 0 ? lower.slice(dot) : null;
          context = (suffix && wildcards.find(([s]) => s === suffix)?.[1]) || fallback!;
        }
        callback(null, context);
      },
    },
    (socket) => accept(socket),
  );
  // Handshake failures (no or bad client certificate in require mode, a scanner) are the
  // client's business: logged at debug level by the caller, never fatal.
  server.on("tlsClientError", (error) => onError("TLS handshake failed", error));

  /**
   * Joins a TLS connection to a new loopback connection to the inner server, both ways,
   * with backpressure: a side that cannot take more pauses the other.
   */
  function accept(socket: TLSSocket): void {
    socket.pause();
    const record: ConnectionRecord = {
      peerAddress: socket.remoteAddress ?? "",
      tls: {
        serverName: typeof socket.servername === "string" && socket.servername !== "" ? socket.servername.toLowerCase() : null,
        clientCertificate: describePeer(socket),
      },
    };
    let inner: Socket<undefined> | null = null;
    let localPort = -1;
    let closed = false;
    /** Bytes from the client that the loopback socket has not taken yet. */
    const backlog: Uint8Array[] = [];
    const close = () => {
      if (closed) return;
      closed = true;
      if (localPort >= 0) connections.delete(localPort);
      socket.destroy();
      inner?.terminate();
    };
    const flush = (target: Socket<undefined>): boolean => {
      while (backlog.length > 0) {
        const chunk = backlog[0]!;
        const written = target.write(chunk);
        if (written < chunk.byteLength) {
          backlog[0] = chunk.subarray(Math.max(written, 0));
          return false;
        }
        backlog.shift();
      }
      return true;
    };
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => {
      backlog.push(chunk);
      if (inner && !flush(inner)) socket.pause();
    });
    socket.on("end", () => inner?.end());
    socket.on("error", close);
    socket.on("close", close);
    Bun.connect({
      hostname: "127.0.0.1",
      port: innerPort,
      socket: {
        open(connection) {
          inner = connection;
          localPort = connection.localPort;
          connections.set(localPort, record);
          if (flush(connection)) socket.resume();
        },
        data(connection, data) {
          if (!socket.write(data)) {
            connection.pause();
            socket.once("drain", () => connection.resume());
          }
        },
        drain(connection) {
          if (flush(connection)) socket.resume();
        },
        end: () => void socket.end(),
        close,
        error: close,
        connectError: close,
      },
    }).catch(close);
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: listener.address, port: listener.port, reusePort: true } as never, () => {
      server.off("error", reject);
      resolve();
    });
  });

  return {
    inner,
    stopAccepting: () => server.close(),
    closeAll() {
      server.close();
      inner.stop(true);
    },
  };
}

/** The peer certificate of a TLS socket, described once per connection; null when none was sent. */
function describePeer(socket: TLSSocket): ClientCertificate | null {
  const peer = socket.getPeerCertificate(false);
  if (!peer || !peer.raw) return null;
  const x509 = new X509Certificate(peer.raw);
  const error = socket.authorized ? null : String(socket.authorizationError ?? "UNABLE_TO_VERIFY");
  const subjectParts = x509.subject.split("\n").filter(Boolean);
  return {
    verified: socket.authorized,
    error,
    subject: subjectParts.join(","),
    commonName: subjectParts.find((part) => part.startsWith("CN="))?.slice(3) ?? "",
    subjectAltNames: (x509.subjectAltName ?? "").split(", ").filter(Boolean),
    fingerprint: x509.fingerprint256.replaceAll(":", "").toLowerCase(),
    serial: x509.serialNumber.toUpperCase(),
    issuer: x509.issuer.split("\n").filter(Boolean).join(","),
  };
}

/**
 * The Host rule: with SNI, the Host must be that name; without, an IP address or a name
 * the default (first) certificate serves (exact or one-label wildcard).
 */
function compileHostRules(entries: NonNullable<CompiledListener["tls"]>): (host: string, serverName: string | null) => boolean {
  const first = entries[0]!;
  const defaultNames = entries.filter((entry) => entry.cert === first.cert).flatMap((entry) => (entry.serverName ? [entry.serverName] : []));
  return (host, serverName) => {
    if (serverName !== null) return host === serverName;
    const bare = host.startsWith("[") ? host.slice(1, -1) : host;
    if (parseAddress(bare) !== null) return true;
    for (const name of defaultNames) {
      if (name === host) return true;
      if (name.startsWith("*.")) {
        const dot = host.indexOf(".");
        if (dot > 0 && host.slice(dot) === name.slice(1)) return true;
      }
    }
    return false;
  };
}
