/**
 * Reading the `Authorization` header: the scheme (case-insensitive) and its parameters.
 */

/** The credentials after `<scheme> ` when the header uses `scheme`, else null. */
export function credentialsFor(header: string | null, scheme: string): string | null {
  if (header === null || header.length <= scheme.length + 1) return null;
  if (header.charCodeAt(scheme.length) !== 32 /* space */) return null;
  if (header.slice(0, scheme.length).toLowerCase() !== scheme.toLowerCase()) return null;
  return header.slice(scheme.length + 1).trim();
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** `user:password` from Basic credentials, or null when malformed (RFC 7617: UTF-8). */
export function decodeBasic(encoded: string): { username: string; password: string } | null {
  if (encoded.length % 4 !== 0 || !BASE64.test(encoded)) return null;
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(Buffer.from(encoded, "base64"));
  } catch {
    return null;
  }
  const colon = text.indexOf(":");
  if (colon <= 0) return null;
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}
