/**
 * Runs the JSON Schema over a parsed config and turns ajv's errors into
 * `ConfigError`s a person can act on: one per problem, with its path.
 */
import Ajv2020, { type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import type { ConfigError } from "./source.ts";

/** Compiles a schema once; the returned function lists every error of a value. */
export function createSchemaChecker(schema: Record<string, unknown>): (value: unknown) => ConfigError[] {
  const ajv = new Ajv2020({ allErrors: true, strict: false, verbose: true });
  addFormats.default ? addFormats.default(ajv) : (addFormats as unknown as (a: Ajv2020) => void)(ajv);
  const validate: ValidateFunction = ajv.compile(schema);
  return (value) => {
    if (validate(value)) return [];
    return translate(validate.errors ?? []);
  };
}

function toPath(instancePath: string): (string | number)[] {
  if (instancePath === "") return [];
  return instancePath
    .slice(1)
    .split("/")
    .map((part) => part.replace(/~1/g, "/").replace(/~0/g, "~"))
    .map((part) => (/^(0|[1-9][0-9]*)$/.test(part) ? Number(part) : part));
}

const TYPE_NAMES: Record<string, string> = {
  string: "a string",
  integer: "an integer",
  number: "a number",
  boolean: "true or false",
  object: "a mapping",
  array: "a list",
  null: "null",
};

function describe(error: ErrorObject): { path: (string | number)[]; message: string; atKey?: boolean } {
  const path = toPath(error.instancePath);
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case "additionalProperties":
      return { path: [...path, String(params.additionalProperty)], message: "unknown key", atKey: true };
    case "required":
      return { path, message: `missing required key "${params.missingProperty}"` };
    case "type":
      return { path, message: `must be ${TYPE_NAMES[String(params.type)] ?? params.type}` };
    case "enum":
      return { path, message: `must be one of: ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(", ")}` };
    case "const":
      return { path, message: `must be ${JSON.stringify(params.allowedValue)}` };
    case "pattern": {
      const parent = error.parentSchema as { description?: string; "x-secret"?: boolean } | undefined;
      const description = parent?.description;
      // A field that may hold a secret (a key pasted where its hash belongs) is not echoed.
      const shown = parent?.["x-secret"] ? "the value" : JSON.stringify(error.data);
      return { path, message: `${shown} is not valid${description ? `: ${description}` : ` (must match ${params.pattern})`}` };
    }
    case "propertyNames": {
      const name = String(params.propertyName);
      const pattern = (error.schema as { pattern?: string } | undefined)?.pattern;
      return {
        path: [...path, name],
        message: `${JSON.stringify(name)} is not a valid name${pattern ? ` (must match ${pattern})` : ""}`,
        atKey: true,
      };
    }
    case "format":
      return { path, message: `${JSON.stringify(error.data)} is not a valid ${params.format}` };
    case "minItems":
      return { path, message: `must have at least ${params.limit} item(s)` };
    case "minimum":
    case "maximum":
    case "exclusiveMinimum":
    case "exclusiveMaximum":
      return { path, message: `must be ${params.comparison} ${params.limit}` };
    case "anyOf": {
      const expects = (error.parentSchema as { "x-expects"?: string } | undefined)?.["x-expects"];
      return { path, message: expects ? `must be ${expects}` : "has an unsupported form" };
    }
    default:
      return { path, message: error.message ?? "is invalid" };
  }
}

interface SchemaNode {
  type?: string;
  required?: string[];
  anyOf?: SchemaNode[];
}

/** Whether `inner` is an error found while checking `outer`'s schema on the same value or below it. */
function within(outer: ErrorObject, inner: ErrorObject): boolean {
  if (!inner.schemaPath.startsWith(outer.schemaPath + "/")) return false;
  return inner.instancePath === outer.instancePath || inner.instancePath.startsWith(outer.instancePath + "/");
}

/**
 * The `anyOf` branch a mapping was evidently meant for: the only mapping branch, or the
 * only one whose required keys it has (`{regex: "("}` is meant as `{regex}`). Null if
 * the value is no mapping or the choice is unclear.
 */
function intendedBranch(error: ErrorObject): number | null {
  const data = error.data;
  if (data === null || typeof data !== "object" || Array.isArray(data)) return null;
  const branches = (error.schema as SchemaNode[]) ?? [];
  const objects = branches.map((branch, i) => (branch.type === "object" ? i : -1)).filter((i) => i >= 0);
  if (objects.length === 1) return objects[0]!;
  const fitting = objects.filter((i) => {
    const required = branches[i]!.required ?? [];
    return required.length > 0 && required.every((key) => Object.hasOwn(data, key));
  });
  return fitting.length === 1 ? fitting[0]! : null;
}

/**
 * ajv reports every failed branch of an `anyOf` and every `if/then` wrapper. Keep one
 * message per failed `anyOf`, except when the value is a mapping meant for one branch
 * (see `intendedBranch`): then that branch's own errors say more. A bad key name gets
 * one message at the key, not one from `propertyNames` and one from its inner check.
 */
function translate(errors: ErrorObject[]): ConfigError[] {
  const dropped = new Set<ErrorObject>();
  for (const error of errors) {
    if (error.keyword === "if") dropped.add(error);
    if (error.keyword === "propertyNames") {
      for (const other of errors) if (within(error, other)) dropped.add(other);
    }
    if (error.keyword !== "anyOf") continue;
    const inside = errors.filter((other) => within(error, other));
    const branch = intendedBranch(error);
    if (branch !== null) {
      const keep = `${error.schemaPath}/${branch}/`;
      for (const other of inside) if (!other.schemaPath.startsWith(keep)) dropped.add(other);
      dropped.add(error);
    } else {
      for (const other of inside) dropped.add(other);
    }
  }
  const seen = new Set<string>();
  const out: ConfigError[] = [];
  for (const error of errors) {
    if (dropped.has(error)) continue;
    const described = describe(error);
    const key = JSON.stringify([described.path, described.message]);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ path: described.path, message: described.message, ...(described.atKey ? { atKey: true } : {}) } as ConfigError);
  }
  return out;
}
