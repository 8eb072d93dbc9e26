/**
 * The real client address: the socket peer, or, when the peer is a trusted proxy, the
 * address its `X-Forwarded-For` header names.
 *
 * `X-Forwarded-For` is read from the right (the entry the nearest proxy appended) to the
 * left; every entry that is itself a trusted proxy is skipped, and the first one that is
 * not is the client. A header sent by a peer that is not trusted is never believed.
 *
 *     peer 10.0.0.2 (trusted), X-Forwarded-For: 203.0.113.9, 10.0.0.7 (trusted)
 *     → real client 203.0.113.9
 */
import { parseAddress } from "./net.ts";

/** Result of resolving the real client address. */
export type ClientAddressResult = { ok: true; address: string } | { ok: false; entry: string };

/** Longest `X-Forwarded-For` chain walked; longer chains count from their right end only. */
const MAX_HOPS = 32;

/**
 * Resolves the real client address. `isTrusted` tests an address against the trusted
 * proxies; `forwardedFor` is the header value (null when absent). A malformed entry
 * reached while walking the chain makes the result `{ ok: false, entry }`: a trusted
 * proxy passed on something that is not an address.
 */
export function resolveClientAddress(
  peer: string,
  forwardedFor: string | null,
  isTrusted: (address: string) => boolean,
): ClientAddressResult {
  if (forwardedFor === null || !isTrusted(peer)) return { ok: true, address: peer };
  const entries = forwardedFor.split(",");
  let client = peer;
  for (let i = entries.length - 1, hops = 0; i >= 0 && hops < MAX_HOPS; i--, hops++) {
    const raw = entries[i]!.trim();
    if (raw === "" && i === 0 && entries.length === 1) break;
    const address = stripPort(raw);
    if (address === null || parseAddress(address) === null) return { ok: false, entry: raw.slice(0, 64) };
    client = address;
    if (!isTrusted(address)) break;
  }
  return { ok: true, address: client };
}

/** `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]` or `[2001:db8::1]:80` → the address. */
function stripPort(entry: string): string | null {
  if (entry.startsWith("[")) {
    const close = entry.indexOf("]");
    if (close < 0) return null;
    const rest = entry.slice(close + 1);
    if (rest !== "" && !/^:[0-9]{1,5}$/.test(rest)) return null;
    return entry.slice(1, close);
  }
  const colon = entry.indexOf(":");
  // One colon: IPv4 with a port. More: a bare IPv6 address.
  if (colon >= 0 && colon === entry.lastIndexOf(":")) {
    if (!/^[0-9]{1,5}$/.test(entry.slice(colon + 1))) return null;
    return entry.slice(0, colon);
  }
  return entry;
}
