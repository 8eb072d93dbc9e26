/** Test helper: an exchange for a request, for unit tests of policies. */
import { NO_CONSUMERS, type ConsumerDirectory } from "../../src/core/consumer.ts";
import type { Exchange } from "../../src/core/exchange.ts";
import type { PolicyContext } from "../../src/core/policy.ts";
import { createLogger } from "../../src/observability/logger.ts";
import { MemoryStore } from "./memory-store.ts";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { privateTable } from "../../src/shared/index.ts";
import { compileEmbeddedSettings, EmbeddedStore } from "../../src/store/embedded/index.ts";
import type { Store } from "../../src/store/types.ts";

/** A policy context for `factory.create` in unit tests; its store is private to the context. */
export function policyContext(consumers: ConsumerDirectory = NO_CONSUMERS, store?: Store): PolicyContext {
  let own: Store | undefined = store;
  const makeStore = () =>
    (own ??= new EmbeddedStore(compileEmbeddedSettings({ state_dir: mkdtempSync(join(tmpdir(), "turnpike-policy-")) }, "/"), privateTable(4096)));
  return { path: "test", baseDir: process.cwd(), log: createLogger({ policy: "test" }, "error"), consumers, createPolicy: () => null, store: makeStore };
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
    answeredBy: null,
    consumer: null,
    state: new Map(),
  };
}
