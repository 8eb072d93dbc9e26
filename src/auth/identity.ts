/**
 * Setting the caller's identity on an exchange. When several authentication methods
 * run on one request (`auth` with `all_of`), each must name the same consumer; their
 * roles, scopes and claims are merged.
 */
import type { Consumer } from "../core/consumer.ts";
import type { Exchange } from "../core/exchange.ts";

/** Sets or merges `exchange.consumer`; false when another method already named someone else. */
export function identify(exchange: Exchange, consumer: Consumer): boolean {
  const current = exchange.consumer;
  if (current === null) {
    exchange.consumer = consumer;
    return true;
  }
  if (current.name !== consumer.name) return false;
  exchange.consumer = {
    name: current.name,
    roles: union(current.roles, consumer.roles),
    groups: union(current.groups, consumer.groups),
    scopes: union(current.scopes, consumer.scopes),
    claims: { ...current.claims, ...consumer.claims },
    metadata: { ...current.metadata, ...consumer.metadata },
    methods: union(current.methods, consumer.methods),
  };
  return true;
}

function union(a: readonly string[], b: readonly string[]): readonly string[] {
  if (b.length === 0) return a;
  if (a.length === 0) return b;
  return [...new Set([...a, ...b])];
}
