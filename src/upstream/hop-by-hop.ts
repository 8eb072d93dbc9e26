/**
 * RFC 9110 §7.6.1 / RFC 9112: headers that belong to one connection and must not be
 * forwarded, plus every header the Connection header names and any Proxy-* header.
 */

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "http2-settings",
]);

/** True when a (lower-case) header name must not cross the gateway. */
export function isHopByHop(name: string): boolean {
  return HOP_BY_HOP.has(name) || name.startsWith("proxy-");
}

/**
 * Copies headers without hop-by-hop ones. `connection` lists further names to drop.
 * Header names from a Headers object are already lower-case.
 */
export function copyEndToEnd(source: Headers): Headers {
  const out = new Headers();
  const connection = source.get("connection");
  const named = connection ? connectionTokens(connection) : null;
  for (const [name, value] of source) {
    if (isHopByHop(name) || named?.has(name)) continue;
    out.append(name, value);
  }
  return out;
}

function connectionTokens(value: string): Set<string> {
  const tokens = new Set<string>();
  for (const part of value.split(",")) {
    const token = part.trim().toLowerCase();
    if (token) tokens.add(token);
  }
  return tokens;
}
