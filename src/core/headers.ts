/**
 * Header changes (`set`, `add`, `remove`) compiled once and applied to a Headers object.
 */

const HEADER_NAME = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";

/** JSON Schema of header changes. */
export const headerOpsSchema = {
  type: "object",
  additionalProperties: false,
  description: "Header changes: remove deletes, set replaces, add appends (applied in that order).",
  properties: {
    set: { type: "object", propertyNames: { pattern: HEADER_NAME }, additionalProperties: { type: "string" } },
    add: {
      type: "object",
      propertyNames: { pattern: HEADER_NAME },
      additionalProperties: { anyOf: [{ type: "string" }, { type: "array", items: { type: "string" } }] },
    },
    remove: { type: "array", items: { type: "string", pattern: HEADER_NAME } },
  },
} as const;

/** Header changes as written in config. */
export interface HeaderOpsConfig {
  set?: Record<string, string>;
  add?: Record<string, string | string[]>;
  remove?: string[];
}

/** Header changes compiled from `{set, add, remove}`; names already lower-cased. */
export interface HeaderOps {
  set: [string, string][];
  add: [string, string][];
  remove: string[];
}

/** Compiles header changes; returns null when there is nothing to do. */
export function compileHeaderOps(config: HeaderOpsConfig | undefined): HeaderOps | null {
  if (!config) return null;
  const ops: HeaderOps = {
    remove: (config.remove ?? []).map((name) => name.toLowerCase()),
    set: Object.entries(config.set ?? {}).map(([name, value]) => [name.toLowerCase(), value]),
    add: Object.entries(config.add ?? {}).flatMap(([name, value]) =>
      (Array.isArray(value) ? value : [value]).map((v) => [name.toLowerCase(), v] as [string, string]),
    ),
  };
  return ops.remove.length || ops.set.length || ops.add.length ? ops : null;
}

/** Applies changes in the order remove, set, add. */
export function applyHeaderOps(headers: Headers, ops: HeaderOps): void {
  for (const name of ops.remove) headers.delete(name);
  for (const [name, value] of ops.set) headers.set(name, value);
  for (const [name, value] of ops.add) headers.append(name, value);
}
