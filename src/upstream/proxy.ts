/**
 * The upstream pool's side of a request: pick a target (balancer, priorities, health,
 * ejection, circuit breakers), forward, record the outcome in the node-wide state, and
 * retry when that is safe: the method may be repeated, nothing reached the client yet,
 * the failure is one the config retries, an attempt is left and the retry budget allows.
 * A retry goes to another target when one is available, after a jittered backoff.
 */
import type { Exchange } from "../core/exchange.ts";
import { problem } from "../core/problem.ts";
import type { CompiledRoute } from "../router/types.ts";
import { Admission } from "./circuit-breaker.ts";
import { now32 } from "./clock.ts";
import { forwardHttp, type Attempt } from "./forward.ts";
import { backoffDelay, type RetrySettings } from "./retry.ts";
import type { TargetRuntime } from "./target.ts";
import type { HttpUpstream } from "./upstream.ts";

/** Forwards `exchange` to one of `upstream`'s targets, with failover and retries. */
export async function proxyToUpstream(exchange: Exchange, route: CompiledRoute, upstream: HttpUpstream): Promise<Response> {
  const retry = upstream.retry;
  let retriesLeft = 0;
  let body: Uint8Array | null | undefined = undefined;
  if (retry !== null && retry.methods.has(exchange.request.method)) {
    upstream.budget!.request();
    retriesLeft = retry.attempts;
    if (exchange.body !== null) {
      const kept = await keepBody(exchange, retry);
      if (kept instanceof Response) return kept;
      if (kept === null) retriesLeft = 0;
      // An empty body is sent as none (fetch refuses any body on GET and HEAD).
      else body = kept.byteLength === 0 ? null : kept;
    }
  }

  let tried: TargetRuntime[] | null = null;
  for (;;) {
    const upstreamAdmission = upstream.breaker ? upstream.breaker.acquire(now32()) : Admission.normal;
    if (upstreamAdmission === Admission.refused) return circuitOpen(exchange, upstream, upstream.breaker!.retryAfterMs(now32()));

    const [target, admission] = pickAndAdmit(exchange, upstream, tried);
    if (target === null) {
      upstream.breaker?.record(upstreamAdmission, null, now32());
      return noTarget(exchange, upstream);
    }
    const attempt: Attempt = { body, failure: null, onEnd: () => target.end() };
    target.begin();
    const response = await forwardHttp(exchange, route, target, attempt);

    const clientGone = exchange.request.signal.aborted || exchange.bodyFailure !== null;
    const failed = clientGone ? null : attempt.failure !== null || upstream.failureStatuses.has(response.status);
    const now = now32();
    target.record(admission, failed, now);
    upstream.breaker?.record(upstreamAdmission, failed, now);

    if (!failed || retriesLeft === 0 || !retryable(retry!, attempt, response.status) || !upstream.budget!.tryRetry()) return response;
    retriesLeft--;
    exchange.retries = (exchange.retries ?? 0) + 1;
    // The failed answer is dropped: free its connection (its body may still be open).
    void response.body?.cancel().catch(() => {});
    (tried ??= []).push(target);
    const wait = backoffDelay(retry!, exchange.retries - 1);
    if (wait > 0) await Bun.sleep(wait);
    if (exchange.request.signal.aborted) return response;
  }
}

/** Picks an available target and takes its circuit admission; tries others while half-open circuits have no trial left. */
function pickAndAdmit(exchange: Exchange, upstream: HttpUpstream, tried: TargetRuntime[] | null): [TargetRuntime | null, number] {
  let refused: TargetRuntime[] | null = null;
  for (let round = 0; round <= upstream.targets.length; round++) {
    const avoid = refused === null ? tried : tried === null ? refused : [...tried, ...refused];
    const target = upstream.choose(exchange, avoid);
    if (target === null || (refused !== null && refused.includes(target))) return [null, Admission.refused];
    const admission = target.admit();
    if (admission !== Admission.refused) return [target, admission];
    (refused ??= []).push(target);
  }
  return [null, Admission.refused];
}

/** True when the config retries this failure. */
function retryable(retry: RetrySettings, attempt: Attempt, status: number): boolean {
  switch (attempt.failure) {
    case "connect_failure":
      return retry.onConnectFailure;
    case "reset":
      return retry.onReset;
    case "timeout":
      return retry.onTimeout;
    default:
      return retry.statuses.has(status);
  }
}

/**
 * Reads a request body up to the `buffer_body` cap so that it can be sent again. Returns
 * the bytes, null when the body is too large to keep (it then streams once, without
 * retries), or the answer to send when reading the body failed.
 */
async function keepBody(exchange: Exchange, retry: RetrySettings): Promise<Uint8Array | null | Response> {
  const stream = exchange.body!;
  const cap = retry.bufferBody;
  const declared = exchange.request.headers.get("content-length");
  if (cap <= 0 || (declared !== null && Number(declared) > cap)) return null;
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
      if (size > cap) {
        // Too large after all: send what was read, then the rest, once.
        exchange.body = replay(chunks, reader);
        return null;
      }
    }
  } catch (error) {
    if (exchange.bodyFailure) return exchange.bodyFailure;
    throw error;
  }
  exchange.body = null;
  return size === 0 ? new Uint8Array(0) : Buffer.concat(chunks, size);
}

/** A stream of `chunks` followed by what `reader` still has. */
function replay(chunks: Uint8Array[], reader: { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(reason?: unknown): Promise<void> }): ReadableStream<Uint8Array> {
  let index = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (index < chunks.length) {
        controller.enqueue(chunks[index++]!);
        return;
      }
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value!);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}

function noTarget(exchange: Exchange, upstream: HttpUpstream): Response {
  const wait = upstream.retryAfterMs();
  if (wait !== null) return circuitOpen(exchange, upstream, wait);
  return problem({
    status: 503,
    kind: "no-healthy-upstream",
    detail: `No target of upstream "${upstream.name}" is available (all unhealthy or ejected).`,
    requestId: exchange.requestId,
  });
}

function circuitOpen(exchange: Exchange, upstream: HttpUpstream, waitMs: number): Response {
  return problem({
    status: 503,
    kind: "circuit-open",
    detail: `The circuit breaker of upstream "${upstream.name}" is open; requests are refused until it lets a trial through.`,
    requestId: exchange.requestId,
    headers: { "retry-after": String(Math.max(1, Math.ceil(waitMs / 1000))) },
  });
}
