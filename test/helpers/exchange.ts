/** Test helper: an exchange for a request, for unit tests of policies. */
import { NO_CONSUMERS, type ConsumerDirectory } from "../../src/core/consumer.ts";
import type { Exchange } from "../../src/core/exchange.ts";
import type { PolicyContext } from "../../src/core/policy.ts";

/** A policy context for `factory.create` in unit tests. */
export function policyContext(consumers: ConsumerDirectory = NO_CONSUMERS): PolicyContext {
  return { path: "test", consumers, createPolicy: () => null };
}

/** Options of `exchangeFor`. */
export interface ExchangeInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  clientIp?: string;
  realClientIp?: string;
  tls?: Exchange["tls"];
}

/** An exchange as the handler builds it, with no route. */
export function exchangeFor(url: string, init: ExchangeInit = {}): Exchange {
  const request = new Request(url, { method: init.method ?? "GET", headers: init.headers, body: init.body });
  const clientIp = init.clientIp ?? "127.0.0.1";
  return {
    request,
    url: new URL(url),
    requestId: "test-id",
    clientIp,
    realClientIp: init.realClientIp ?? clientIp,
    tls: init.tls ?? null,
    scheme: "http",
    route: null,
    params: {},
    upstreamHeaders: new Headers(request.headers),
    upstreamTarget: null,
    upstreamStartedAt: 0,
    upstreamHeadersAt: 0,
    responseHeaders: null,
    body: request.body,
    bodyFailure: null,
    startedAt: 0,
    decisions: null,
    consumer: null,
    state: new Map(),
  };
}
