/**
 * Durations and sizes as written in config: `250ms`, `30s`, `2m`, `1h` (or a number of
 * milliseconds); `512`, `64KiB`, `10MiB`, `1GiB`, `10MB` (or a number of bytes).
 */

/** JSON Schema for a duration value. */
export const durationSchema = {
  anyOf: [
    { type: "integer", minimum: 0 },
    { type: "string", pattern: "^[0-9]+(\\.[0-9]+)?(ms|s|m|h)$" },
  ],
  "x-expects": "a duration: a number of milliseconds or a string like 250ms, 30s, 2m, 1h",
} as const;

/** JSON Schema for a byte size value. */
export const sizeSchema = {
  anyOf: [
    { type: "integer", minimum: 0 },
    { type: "string", pattern: "^[0-9]+(\\.[0-9]+)?\\s*(B|KB|MB|GB|KiB|MiB|GiB|k|K|m|M|g|G)?$" },
  ],
  "x-expects": "a size: a number of bytes or a string like 64KiB, 10MiB, 1GiB, 10MB",
} as const;

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const SIZE_UNITS: Record<string, number> = {
  "": 1, B: 1,
  KB: 1000, MB: 1000 ** 2, GB: 1000 ** 3,
  KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3,
  k: 1024, K: 1024, m: 1024 ** 2, M: 1024 ** 2, g: 1024 ** 3, G: 1024 ** 3,
};

/** Milliseconds of a validated duration value. */
export function parseDuration(value: number | string): number {
  if (typeof value === "number") return value;
  const match = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)$/.exec(value);
  if (!match) throw new Error(`not a duration: ${value}`);
  return Math.round(Number(match[1]) * DURATION_UNITS[match[2]!]!);
}

/** Bytes of a validated size value. */
export function parseSize(value: number | string): number {
  if (typeof value === "number") return value;
  const match = /^([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)$/.exec(value);
  if (!match || !Object.hasOwn(SIZE_UNITS, match[2]!)) throw new Error(`not a size: ${value}`);
  return Math.floor(Number(match[1]) * SIZE_UNITS[match[2]!]!);
}
