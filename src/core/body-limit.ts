/**
 * Request body size limits: a declared Content-Length over the limit is refused at
 * once; a body without one is counted as it streams and cut off at the limit.
 */
import type { Exchange } from "./exchange.ts";
import { problem } from "./problem.ts";

function tooLarge(exchange: Exchange, maxBytes: number): Response {
  return problem({
    status: 413,
    kind: "body-too-large",
    detail: `The request body exceeds the limit of ${maxBytes} bytes.`,
    requestId: exchange.requestId,
    headers: { connection: "close" },
  });
}

/**
 * Enforces `maxBytes` on the exchange's body. Returns a 413 response when the declared
 * length is too large; otherwise wraps a body of unknown length so that it fails once
 * it passes the limit (the gateway then answers 413 if no response has started).
 */
export function limitRequestBody(exchange: Exchange, maxBytes: number): Response | undefined {
  if (maxBytes <= 0 || exchange.body === null) return undefined;
  const declared = exchange.request.headers.get("content-length");
  if (declared !== null) {
    return Number(declared) > maxBytes ? tooLarge(exchange, maxBytes) : undefined;
  }
  let seen = 0;
  exchange.body = exchange.body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        seen += chunk.byteLength;
        if (seen > maxBytes) {
          exchange.bodyFailure ??= tooLarge(exchange, maxBytes);
          controller.error(new Error("request body too large"));
          return;
        }
        controller.enqueue(chunk);
      },
    }),
  );
  return undefined;
}
