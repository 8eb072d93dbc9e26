/**
 * `when` conditions and value matchers, compiled once at load into plain closures.
 *
 * A value matcher is a string (exact), or one of `{prefix}`, `{regex}`, `{present}`,
 * `{one_of}`. A condition ANDs its fields; `any`, `all` and `not` combine conditions:
 *
 *     when:
 *       methods: [POST, PUT]
 *       path: { prefix: /admin }
 *       headers: { x-debug: { present: true } }
 *       not: { client_ip: [10.0.0.0/8] }
 */
import type { Exchange } from "./exchange.ts";
import { compileCidrList } from "./net.ts";

/** A value matcher as written in config. */
export type ValueMatchConfig =
  | string
  | { prefix: string }
  | { regex: string }
  | { present: boolean }
  | { one_of: string[] };

/** A condition as written in config. */
export interface ConditionConfig {
  methods?: string[];
  path?: ValueMatchConfig;
  headers?: Record<string, ValueMatchConfig>;
  query?: Record<string, ValueMatchConfig>;
  client_ip?: string[];
  any?: ConditionConfig[];
  all?: ConditionConfig[];
  not?: ConditionConfig;
}

/** JSON Schema of a value matcher. */
export const valueMatchSchema = {
  anyOf: [
    { type: "string" },
    { type: "object", properties: { prefix: { type: "string" } }, required: ["prefix"], additionalProperties: false },
    { type: "object", properties: { regex: { type: "string", format: "regex" } }, required: ["regex"], additionalProperties: false },
    { type: "object", properties: { present: { type: "boolean" } }, required: ["present"], additionalProperties: false },
    { type: "object", properties: { one_of: { type: "array", items: { type: "string" } } }, required: ["one_of"], additionalProperties: false },
  ],
  "x-expects": "an exact string, or {prefix}, {regex}, {present: true|false} or {one_of: [...]}",
} as const;

/** JSON Schema of a condition (recursive through `$defs.condition`). */
export const conditionSchema = {
  type: "object",
  additionalProperties: false,
  properties: {
    methods: { type: "array", items: { type: "string", pattern: "^[A-Za-z]+$" }, minItems: 1 },
    path: { $ref: "#/$defs/valueMatch" },
    headers: { type: "object", additionalProperties: { $ref: "#/$defs/valueMatch" } },
    query: { type: "object", additionalProperties: { $ref: "#/$defs/valueMatch" } },
    client_ip: { type: "array", items: { type: "string" }, minItems: 1 },
    any: { type: "array", items: { $ref: "#/$defs/condition" }, minItems: 1 },
    all: { type: "array", items: { $ref: "#/$defs/condition" }, minItems: 1 },
    not: { $ref: "#/$defs/condition" },
  },
} as const;

/** A compiled value test; `undefined`/null means the value is absent. */
export type ValueTest = (value: string | null | undefined) => boolean;

/** Compiles a value matcher. Throws with a readable message on a bad regex. */
export function compileValueMatch(config: ValueMatchConfig): ValueTest {
  if (typeof config === "string") return (value) => value === config;
  if ("prefix" in config) {
    const prefix = config.prefix;
    return (value) => value != null && value.startsWith(prefix);
  }
  if ("regex" in config) {
    const regex = new RegExp(config.regex);
    return (value) => value != null && regex.test(value);
  }
  if ("present" in config) {
    const want = config.present;
    return (value) => (value != null) === want;
  }
  const allowed = new Set(config.one_of);
  return (value) => value != null && allowed.has(value);
}

/** A compiled condition over an exchange. */
export type Condition = (exchange: Exchange) => boolean;

/** Compiles a condition; header names are lower-cased here, not per request. */
export function compileCondition(config: ConditionConfig): Condition {
  const tests: Condition[] = [];
  if (config.methods) {
    const methods = new Set(config.methods.map((m) => m.toUpperCase()));
    tests.push((ex) => methods.has(ex.request.method));
  }
  if (config.path !== undefined) {
    const test = compileValueMatch(config.path);
    tests.push((ex) => test(ex.url.pathname));
  }
  for (const [name, match] of Object.entries(config.headers ?? {})) {
    const lower = name.toLowerCase();
    const test = compileValueMatch(match);
    tests.push((ex) => test(ex.request.headers.get(lower)));
  }
  for (const [name, match] of Object.entries(config.query ?? {})) {
    const test = compileValueMatch(match);
    tests.push((ex) => test(ex.url.searchParams.get(name)));
  }
  if (config.client_ip) {
    const inRanges = compileCidrList(config.client_ip);
    tests.push((ex) => inRanges(ex.realClientIp));
  }
  if (config.any) {
    const any = config.any.map(compileCondition);
    tests.push((ex) => any.some((test) => test(ex)));
  }
  if (config.all) {
    const all = config.all.map(compileCondition);
    tests.push((ex) => all.every((test) => test(ex)));
  }
  if (config.not) {
    const inner = compileCondition(config.not);
    tests.push((ex) => !inner(ex));
  }
  if (tests.length === 0) return () => true;
  if (tests.length === 1) return tests[0]!;
  return (ex) => {
    for (const test of tests) if (!test(ex)) return false;
    return true;
  };
}
