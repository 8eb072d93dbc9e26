/**
 * The pieces of HTTP Digest authentication (RFC 7616): parsing the Authorization
 * parameters, the hashes, and nonces that carry their own issue time and an HMAC, so
 * every worker can check a nonce it did not issue.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/** Supported algorithms and their hash names. */
export const DIGEST_ALGORITHMS = { "SHA-256": "sha256", MD5: "md5" } as const;
export type DigestAlgorithm = keyof typeof DIGEST_ALGORITHMS;

/** Hex digest of `text` with the algorithm's hash. */
export function digestHex(algorithm: DigestAlgorithm, text: string): string {
  return createHash(DIGEST_ALGORITHMS[algorithm]).update(text, "utf8").digest("hex");
}

/**
 * Parses `Digest a=b, c="d"` parameters; null when malformed. Names are lower-cased;
 * quoted values are unescaped. Repeated names make the header malformed.
 */
export function parseDigestParams(header: string): Map<string, string> | null {
  if (header.length < 7 || header.slice(0, 7).toLowerCase() !== "digest ") return null;
  const params = new Map<string, string>();
  let i = 7;
  const n = header.length;
  while (i < n) {
    while (i < n && (header[i] === " " || header[i] === "\t" || header[i] === ",")) i++;
    if (i >= n) break;
    const nameStart = i;
    while (i < n && /[A-Za-z0-9_*-]/.test(header[i]!)) i++;
    const name = header.slice(nameStart, i).toLowerCase();
    while (i < n && header[i] === " ") i++;
    if (name.length === 0 || header[i] !== "=") return null;
    i++;
    while (i < n && header[i] === " ") i++;
    let value = "";
    if (header[i] === '"') {
      i++;
      let closed = false;
      while (i < n) {
        const c = header[i]!;
        if (c === "\\" && i + 1 < n) {
          value += header[i + 1];
          i += 2;
        } else if (c === '"') {
          i++;
          closed = true;
          break;
        } else {
          value += c;
          i++;
        }
      }
      if (!closed) return null;
    } else {
      const start = i;
      while (i < n && header[i] !== "," && header[i] !== " ") i++;
      value = header.slice(start, i);
    }
    if (params.has(name)) return null;
    params.set(name, value);
    while (i < n && header[i] === " ") i++;
    if (i < n && header[i] !== ",") return null;
  }
  return params;
}

/** Issues and checks nonces: base64url(issued-at ms · 8 random bytes · 16 bytes of HMAC). */
export class NonceKeeper {
  constructor(
    readonly key: Buffer,
    readonly lifetimeMs: number,
    readonly now: () => number = Date.now,
  ) {}

  issue(): string {
    const body = Buffer.alloc(16);
    body.writeBigUInt64BE(BigInt(Math.floor(this.now())), 0);
    randomBytes(8).copy(body, 8);
    return Buffer.concat([body, this.#mac(body)]).toString("base64url");
  }

  /** "ok" with the ms left, "stale" for a genuine but expired nonce, "invalid" otherwise. */
  check(nonce: string): { result: "ok"; remainingMs: number } | { result: "stale" | "invalid" } {
    if (nonce.length !== 43 || !/^[A-Za-z0-9_-]+$/.test(nonce)) return { result: "invalid" };
    const bytes = Buffer.from(nonce, "base64url");
    // The last character carries two unused bits: only the canonical spelling is the
    // nonce, or one nonce would have four names (and four nonce-count histories).
    if (bytes.length !== 32 || bytes.toString("base64url") !== nonce) return { result: "invalid" };
    const body = bytes.subarray(0, 16);
    if (!timingSafeEqual(bytes.subarray(16), this.#mac(body))) return { result: "invalid" };
    const issuedAt = Number(body.readBigUInt64BE(0));
    const age = this.now() - issuedAt;
    if (age < -5_000) return { result: "invalid" };
    if (age > this.lifetimeMs) return { result: "stale" };
    return { result: "ok", remainingMs: this.lifetimeMs - Math.max(0, age) };
  }

  #mac(body: Buffer): Buffer {
    return createHmac("sha256", this.key).update(body).digest().subarray(0, 16);
  }
}
