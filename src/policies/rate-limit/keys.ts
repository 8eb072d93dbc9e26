/**
 * Key sources: what a rate limit counts by. A key is one or more sources joined; each is
 * compiled once into a function of the exchange.
 *
 *     route           the matched route's name
 *     consumer        the consumer an authentication policy identified (exchange.consumer)
 *     client_ip       the real client address (after server.trusted_proxies)
 *     header:<name>   a request header's value
 *     claim:<name>    a claim of the consumer's token (exchange.consumer.claims)
 *
 * A request without the value (no consumer, header absent) counts under an empty value:
 * all such requests share one counter.
 */
import type { Exchange } from "../../core/exchange.ts";

/** Reads one part of the key from a request. */
type KeyPart = (exchange: Exchange) => string;

/** The names a key source may have, for messages. */
export const KEY_SOURCES_TEXT = "route, consumer, client_ip, header:<name>, claim:<name>";

/** Compiles one source; an Error with a message for an unknown one. */
export function compileKeySource(source: string): KeyPart | Error {
  if (source === "route") return (exchange) => exchange.route?.name ?? "";
  if (source === "consumer") return (exchange) => exchange.consumer?.name ?? "";
  if (source === "client_ip") return (exchange) => exchange.realClientIp;
  if (source.startsWith("header:")) {
    const name = source.slice(7).trim().toLowerCase();
    if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(name)) return new Error(`"${source}": header:<name> needs a header name`);
    return (exchange) => exchange.request.headers.get(name) ?? "";
  }
  if (source.startsWith("claim:")) {
    const name = source.slice(6).trim();
    if (name === "") return new Error(`"${source}": claim:<name> needs a claim name`);
    return (exchange) => {
      const value = exchange.consumer?.claims[name];
      if (value === undefined || value === null) return "";
      return typeof value === "string" ? value : JSON.stringify(value);
    };
  }
  return new Error(`unknown key source "${source}" (expected one of: ${KEY_SOURCES_TEXT})`);
}

/** Joins compiled parts into one key function. */
export function compileKey(parts: KeyPart[]): (exchange: Exchange) => string {
  if (parts.length === 1) return parts[0]!;
  // A separator no header value can hold.
  return (exchange) => parts.map((part) => part(exchange)).join("\n");
}
