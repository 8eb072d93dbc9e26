/**
 * Test helper: a bounded load of concurrent keep-alive clients (Bun's fetch pools and
 * reuses connections) that records every request's start time, status and body, so a
 * test can say which requests failed and what each one saw.
 */

/** One request of a load run. */
export interface LoadSample {
  /** performance.now() when the request was sent. */
  startedAt: number;
  /** performance.now() when it completed or failed. */
  endedAt: number;
  /** HTTP status, or 0 when the request failed without a response. */
  status: number;
  /** The response body, or the error text. */
  body: string;
  /** The response headers, empty on failure. */
  headers: Headers;
}

export interface LoadOptions {
  /** Concurrent clients, each sending one request after another. */
  clients: number;
  /** Hard limit of the run in milliseconds, in case the test never calls stop(). */
  maxDurationMs: number;
  /** Hard limit of requests over all clients. */
  maxRequests?: number;
  /** Per-request timeout in milliseconds (default 5000). */
  requestTimeoutMs?: number;
  /** Open a new connection for every request (`Connection: close`) instead of keeping it. */
  closeEach?: boolean;
}

/** A running load. */
export interface Load {
  /** Requests completed so far. */
  count(): number;
  /** Stops sending and resolves with every sample once in-flight requests end. */
  stop(): Promise<LoadSample[]>;
}

/** Starts `options.clients` request loops against `url`. */
export function startLoad(url: string, options: LoadOptions): Load {
  const samples: LoadSample[] = [];
  const deadline = performance.now() + options.maxDurationMs;
  const maxRequests = options.maxRequests ?? Number.MAX_SAFE_INTEGER;
  let sent = 0;
  let stopped = false;

  const loop = async () => {
    while (!stopped && performance.now() < deadline && sent < maxRequests) {
      sent++;
      const startedAt = performance.now();
      try {
        const response = await fetch(url, {
          signal: AbortSignal.timeout(options.requestTimeoutMs ?? 5000),
          headers: options.closeEach ? { connection: "close" } : {},
        });
        const body = await response.text();
        samples.push({ startedAt, endedAt: performance.now(), status: response.status, body, headers: response.headers });
      } catch (error) {
        samples.push({ startedAt, endedAt: performance.now(), status: 0, body: String(error), headers: new Headers() });
      }
    }
  };
  const loops = Array.from({ length: options.clients }, loop);
  return {
    count: () => samples.length,
    async stop() {
      stopped = true;
      await Promise.all(loops);
      return samples.sort((a, b) => a.startedAt - b.startedAt);
    },
  };
}

/** Waits until `condition()` holds, polling every `stepMs`; throws after `timeoutMs`. */
export async function waitFor<T>(what: string, condition: () => T | Promise<T>, timeoutMs = 5000, stepMs = 10): Promise<NonNullable<T>> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value) return value as NonNullable<T>;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(stepMs);
  }
}
