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
 * Copies headers without hop-by-hop ones, and without the headers that `Connection`
 * names. The copy is made natively; one scan of the names finds what to drop.
 */
export function copyEndToEnd(source: Headers): Headers {
  const out = new Headers(source);
  let drop: string[] | null = null;
  for (const name of out.keys()) {
    if (isHopByHop(name)) (drop ??= []).push(name);
  }
  if (drop === null) return out;
  const connection = out.get("connection");
  if (connection !== null) {
    for (const part of connection.split(",")) {
      const token = part.trim().toLowerCase();
      if (token) out.delete(token);
    }
  }
  for (const name of drop) out.delete(name);
  return out;
}
