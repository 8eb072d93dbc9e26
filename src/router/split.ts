/**
 * Traffic splitting: a route whose requests go to one of several upstreams.
 *
 * - A/B rules: the first rule whose header or cookie matches picks its upstream.
 * - Weighted canary: otherwise the weights decide (95/5 sends 5 % to the second).
 * - Sticky assignment: with `sticky`, a client key (client IP, a header or a cookie)
 *   is hashed to a point in [0, 1) that always falls on the same side for the same
 *   weights; sides own consecutive stretches in the order listed, so raising the
 *   weight of the last side (a canary) only moves clients onto it, never off it.
 *   With `set_cookie`, a client without the cookie gets a random id in it.
 *   Without a key (no header, no cookie and no `set_cookie`), smooth weighted round
 *   robin decides.
 *
 * The choice is made right after the route matched, so policies, limits, timeouts and
 * logs see the chosen upstream: each side is a variant of the route with its own
 * upstream (and that upstream's timeouts and concurrency limit).
 */
import { compileValueMatch, type ValueMatchConfig } from "../core/condition.ts";
import type { Exchange } from "../core/exchange.ts";
import type { CompiledRoute } from "./types.ts";

/** `split` as written on a route. */
export interface SplitConfig {
  upstreams: { upstream: string; weight: number }[];
  rules?: SplitRuleConfig[];
  sticky?: StickyConfig;
}

/** An A/B rule: a header or a cookie whose value matches sends the request to `upstream`. */
export interface SplitRuleConfig {
  header?: string;
  cookie?: string;
  value: ValueMatchConfig;
  upstream: string;
}

/** What keeps a client on one side. */
export interface StickyConfig {
  by: "client_ip" | "header" | "cookie";
  /** Header or cookie name (not with client_ip). */
  name?: string;
  /** With `by: cookie`: the gateway sets the cookie to a random id when the client has none. */
  set_cookie?: boolean;
  /** Max-Age of the cookie the gateway sets (a duration; default 24h). */
  max_age?: number | string;
}

/** A compiled split: picks the route variant for a request. */
export interface Split {
  choose(exchange: Exchange): CompiledRoute;
}

/** A compiled sticky setting; `maxAgeSeconds` applies to a cookie the gateway sets. */
export interface CompiledSticky {
  by: StickyConfig["by"];
  /** Lower-case header name, or the cookie name. */
  name: string;
  setCookie: boolean;
  maxAgeSeconds: number;
}

/**
 * Builds the chooser. `variants[i]` is the route variant of `weights[i]`'s upstream;
 * `rules` name variants by index too (`variantOf`).
 */
export function createSplit(options: {
  sides: { variant: CompiledRoute; weight: number }[];
  rules: { header: string | null; cookie: string | null; value: ValueMatchConfig; variant: CompiledRoute }[];
  sticky: CompiledSticky | null;
}): Split {
  const sides = options.sides;
  const total = sides.reduce((sum, side) => sum + side.weight, 0);
  if (total <= 0) throw new Error("the weights of a split must add up to more than 0");
  const rules = options.rules.map((rule) => ({ ...rule, header: rule.header?.toLowerCase() ?? null, test: compileValueMatch(rule.value) }));
  const sticky = options.sticky;

  // Smooth weighted round robin for requests without a sticky key.
  const current = sides.map(() => 0);
  const roundRobin = (): CompiledRoute => {
    let best = 0;
    for (let i = 0; i < sides.length; i++) {
      current[i]! += sides[i]!.weight;
      if (current[i]! > current[best]!) best = i;
    }
    current[best]! -= total;
    return sides[best]!.variant;
  };
  const byPoint = (key: string): CompiledRoute => {
    const point = (hash32(key) / 2 ** 32) * total;
    let upTo = 0;
    for (const side of sides) {
      upTo += side.weight;
      if (point < upTo) return side.variant;
    }
    return sides[sides.length - 1]!.variant;
  };

  return {
    choose(exchange) {
      const headers = exchange.request.headers;
      for (const rule of rules) {
        const value = rule.header !== null ? headers.get(rule.header) : cookieValue(headers.get("cookie"), rule.cookie!);
        if (rule.test(value)) return rule.variant;
      }
      if (sticky === null) return roundRobin();
      let key: string | null;
      if (sticky.by === "client_ip") key = exchange.realClientIp || null;
      else if (sticky.by === "header") key = headers.get(sticky.name);
      else key = cookieValue(headers.get("cookie"), sticky.name);
      if (key === null && sticky.setCookie) {
        key = crypto.randomUUID();
        const secure = exchange.scheme === "https" ? "; Secure" : "";
        (exchange.responseHeaders ??= new Headers()).append(
          "set-cookie",
          `${sticky.name}=${key}; Path=/; Max-Age=${sticky.maxAgeSeconds}; HttpOnly; SameSite=Lax${secure}`,
        );
      }
      return key === null ? roundRobin() : byPoint(key);
    },
  };
}

/** The value of cookie `name` in a Cookie header, or null. */
export function cookieValue(header: string | null, name: string): string | null {
  if (header === null) return null;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

/** FNV-1a, 32 bits, over UTF-16 code units: cheap and well spread for short keys. */
export function hash32(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  // FNV alone spreads keys that differ in their last character poorly; mix the bits.
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  return hash >>> 0;
}
