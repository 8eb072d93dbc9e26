/**
 * Hashing and comparing secrets: API keys are stored as SHA-256 digests (keys are
 * long random strings, so a fast unsalted hash is safe and lets a request find its
 * consumer with one map lookup); comparisons of secrets run in constant time.
 */
import { timingSafeEqual } from "node:crypto";

/** The stored form of an API key: `sha256:<64 hex digits>`. */
export function hashApiKey(key: string): string {
  return `sha256:${Bun.SHA256.hash(key, "hex") as unknown as string}`;
}

/** Hex SHA-256 of a text, e.g. as a cache key for a token (never the token itself). */
export function sha256Hex(text: string): string {
  return Bun.SHA256.hash(text, "hex") as unknown as string;
}

/** Compares two strings in time that depends only on their lengths. */
export function constantTimeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  if (left.length !== right.length) {
    // Still compare something of the same length, so a length mismatch costs the same.
    timingSafeEqual(left, left);
    return false;
  }
  return timingSafeEqual(left, right);
}
