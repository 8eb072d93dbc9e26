/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): reading `traceparent`,
 * writing it for the upstream, bounding `tracestate`, and making random ids.
 *
 * `traceparent` looks like `00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01`:
 * version, 32-hex trace id, 16-hex parent span id, 2-hex flags (bit 0: sampled).
 */

/** A valid parent read from a client's `traceparent`. */
export interface ParentContext {
  /** 32 lower-case hex digits, not all zero. */
  traceId: string;
  /** 16 lower-case hex digits, not all zero. */
  parentSpanId: string;
  /** The sampled flag (bit 0 of the trace flags). */
  sampled: boolean;
}

/** Length of a version-00 `traceparent`. */
const TRACEPARENT_LENGTH = 55;

/**
 * Parses a `traceparent` header value; null when it is missing or invalid (then the
 * gateway starts a new trace). Version 00 must be exactly 55 characters. A higher
 * version (not `ff`) is read as version 00 when its first 55 characters have that
 * shape and anything after them starts with `-`, as the specification asks so that
 * future versions keep their traces. Upper-case hex is invalid.
 *
 * @example parseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
 *   // { traceId: "4bf9…4736", parentSpanId: "00f0…02b7", sampled: true }
 */
export function parseTraceparent(value: string | null): ParentContext | null {
  if (value === null || value.length < TRACEPARENT_LENGTH) return null;
  const version = hexByte(value, 0);
  if (version < 0 || version === 0xff) return null;
  if (version === 0 ? value.length !== TRACEPARENT_LENGTH : value.length > TRACEPARENT_LENGTH && value.charCodeAt(55) !== DASH) {
    return null;
  }
  if (value.charCodeAt(2) !== DASH || value.charCodeAt(35) !== DASH || value.charCodeAt(52) !== DASH) return null;
  if (!isHexNotZero(value, 3, 35) || !isHexNotZero(value, 36, 52)) return null;
  const flags = hexByte(value, 53);
  if (flags < 0) return null;
  return { traceId: value.slice(3, 35), parentSpanId: value.slice(36, 52), sampled: (flags & 1) === 1 };
}

/** The `traceparent` the gateway sends upstream: its own span as the parent. */
export function formatTraceparent(traceId: string, spanId: string, sampled: boolean): string {
  return `00-${traceId}-${spanId}-${sampled ? "01" : "00"}`;
}

/** Longest `tracestate` passed on unchanged; the specification asks for at least 512. */
export const TRACESTATE_MAX_LENGTH = 512;
/** Members longer than this are the first to go when a `tracestate` is too long. */
const LONG_MEMBER = 128;

/**
 * The `tracestate` to pass upstream: unchanged up to 512 characters; a longer one is cut
 * as the specification suggests (members over 128 characters first, then members from
 * the end) so that what is left fits. Null when nothing is left.
 */
export function boundTracestate(value: string | null): string | null {
  if (value === null || value.length === 0) return null;
  if (value.length <= TRACESTATE_MAX_LENGTH) return value;
  let members = value.split(",").map((member) => member.trim()).filter((member) => member.length > 0);
  let length = joinedLength(members);
  if (length > TRACESTATE_MAX_LENGTH) {
    members = members.filter((member) => member.length <= LONG_MEMBER);
    length = joinedLength(members);
  }
  while (members.length > 0 && length > TRACESTATE_MAX_LENGTH) {
    const last = members.pop()!;
    length -= last.length + (members.length > 0 ? 1 : 0);
  }
  return members.length > 0 ? members.join(",") : null;
}

function joinedLength(members: string[]): number {
  let length = members.length > 0 ? members.length - 1 : 0;
  for (const member of members) length += member.length;
  return length;
}

const DASH = 0x2d;

/** Value of the two lower-case hex digits at `at`, or -1. */
function hexByte(value: string, at: number): number {
  const high = hexDigit(value.charCodeAt(at));
  const low = hexDigit(value.charCodeAt(at + 1));
  return high < 0 || low < 0 ? -1 : high * 16 + low;
}

/** True when `value[from, to)` is lower-case hex and not all zeros. */
function isHexNotZero(value: string, from: number, to: number): boolean {
  let nonZero = false;
  for (let i = from; i < to; i++) {
    const digit = hexDigit(value.charCodeAt(i));
    if (digit < 0) return false;
    if (digit !== 0) nonZero = true;
  }
  return nonZero;
}

function hexDigit(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x61 && code <= 0x66) return code - 0x61 + 10;
  return -1;
}

const HEX_BYTES: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
/** Random bytes are drawn in blocks: one `crypto.getRandomValues` call per 256 span ids. */
const POOL_SIZE = 2048;

/**
 * Random trace and span ids from `crypto.getRandomValues`, drawn in blocks so a request
 * costs a few string concatenations rather than a call into the crypto library.
 */
export class IdGenerator {
  readonly #pool = new Uint8Array(POOL_SIZE);
  #used = POOL_SIZE;

  /** 16 random hex digits, never all zero. */
  spanId(): string {
    for (;;) {
      const id = this.#hex(8);
      if (id !== "0000000000000000") return id;
    }
  }

  /** 32 random hex digits, never all zero. */
  traceId(): string {
    for (;;) {
      const id = this.#hex(16);
      if (id !== "00000000000000000000000000000000") return id;
    }
  }

  #hex(bytes: number): string {
    if (this.#used + bytes > POOL_SIZE) {
      crypto.getRandomValues(this.#pool);
      this.#used = 0;
    }
    const pool = this.#pool;
    let out = "";
    for (let i = this.#used, end = this.#used + bytes; i < end; i++) out += HEX_BYTES[pool[i]!];
    this.#used += bytes;
    return out;
  }
}

/**
 * Whether a new trace is sampled at `ratio` (0..1), decided from its trace id so that
 * every process reaches the same answer for one trace: the last 8 hex digits, read as
 * a fraction of 2^32, must be below the ratio.
 */
export function sampledByRatio(traceId: string, ratio: number): boolean {
  if (ratio >= 1) return true;
  if (ratio <= 0) return false;
  return parseInt(traceId.slice(24), 16) / 0x1_0000_0000 < ratio;
}
