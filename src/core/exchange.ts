/**
 * The exchange: everything the gateway knows about one request while it is handled.
 * Policies read and change it; the pipeline carries it from phase to phase.
 */
import type { Server } from "bun";
import type { CompiledRoute } from "../router/types.ts";
import type { Consumer } from "./consumer.ts";
import type { Policy } from "./policy.ts";

/** One request in flight through the gateway. */
export interface Exchange {
  /** The client's request as received (its body may already be wrapped by policies). */
  request: Request;
  /** Parsed request URL; parsed once per request. */
  url: URL;
  /** Value of X-Request-ID: the client's if sane, otherwise generated. */
  requestId: string;
  /** Client address as seen on the socket (before trusted-proxy handling). */
  clientIp: string;
  /**
   * The real client address: `clientIp`, or, when that peer is one of
   * `server.trusted_proxies`, the client named by its X-Forwarded-For. Policies, limits,
   * conditions and logs that speak of "the client address" use this one.
   */
  realClientIp: string;
  /** What the TLS handshake established; null on plain HTTP and on listeners without client certificates. */
  tls: TlsInfo | null;
  /** `http` or `https`, from the listener that accepted the request. */
  scheme: "http" | "https";
  /** The matched route, or null when none matched (pre-flow still runs). */
  route: CompiledRoute | null;
  /** Parameters captured by the route path, e.g. `{ id: "42" }` for `/users/:id`. */
  params: Record<string, string>;
  /** Headers that will be sent upstream; built lazily by the forwarder, editable by policies. */
  upstreamHeaders: Headers;
  /** Extra headers to add to the client response, collected by request-phase policies. */
  responseHeaders: Headers | null;
  /** The request body to forward; policies may wrap it (e.g. to count its size). */
  body: ReadableStream<Uint8Array> | null;
  /**
   * Set when a policy's body wrapper refused the body mid-stream (e.g. too large):
   * the gateway answers this instead of the upstream error it causes.
   */
  bodyFailure: Response | null;
  /** Start time in ms from `performance.now()`. */
  startedAt: number;
  /** Origin of the upstream target called (`http://10.0.0.5:3000`), null if none was. */
  upstreamTarget: string | null;
  /** `performance.now()` when the upstream call started and when its headers arrived (0: not yet). */
  upstreamStartedAt: number;
  upstreamHeadersAt: number;
  /** Retries made by the upstream pool (0 or absent: none). */
  retries?: number;
  /** Who is calling, once an authentication policy identified the caller; null when anonymous. */
  consumer: Consumer | null;
  /**
   * Policy decisions for the access log, as `<policy type>:<decision>` (e.g. `cors:preflight`,
   * `rate-limit:reject`); null until one is recorded. A policy that answers instead of the
   * upstream is recorded as `<type>:answered` unless it recorded a decision of its own.
   */
  decisions: string[] | null;
  /** The policy that answered instead of the upstream, null when none did. */
  answeredBy: Policy | null;
  /** The listener's server, which a WebSocket upgrade needs; absent outside a listener. */
  server?: Server<unknown>;
  /** Free-form per-request state for policies (keyed by policy name). */
  state: Map<string, unknown>;
}

/** A client certificate presented in the TLS handshake. */
export interface ClientCertificate {
  /** True when it chains to one of the listener's client CAs (and is within its dates). */
  verified: boolean;
  /** Why it did not verify (an OpenSSL code such as `CERT_HAS_EXPIRED`); null when verified. */
  error: string | null;
  /** Subject as one line, e.g. `CN=alice,O=Example`. */
  subject: string;
  /** The subject's common name, "" when it has none. */
  commonName: string;
  /** Subject alternative names as written by OpenSSL, e.g. `DNS:svc.example.com`, `URI:spiffe://x/y`. */
  subjectAltNames: string[];
  /** SHA-256 fingerprint, lower-case hex without colons. */
  fingerprint: string;
  /** Serial number, upper-case hex. */
  serial: string;
  issuer: string;
}

/** What the TLS handshake of the request's connection established. */
export interface TlsInfo {
  /** The SNI name the client sent, lower-case; null when it sent none. */
  serverName: string | null;
  /** The client certificate, null when none was presented. */
  clientCertificate: ClientCertificate | null;
}
