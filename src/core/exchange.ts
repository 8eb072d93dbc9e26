/**
 * The exchange: everything the gateway knows about one request while it is handled.
 * Policies read and change it; the pipeline carries it from phase to phase.
 */
import type { CompiledRoute } from "../router/types.ts";

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
  /** Free-form per-request state for policies (keyed by policy name). */
  state: Map<string, unknown>;
}
