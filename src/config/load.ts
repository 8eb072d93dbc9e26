/**
 * Loading a config: YAML with positions → `${ENV}` substitution → JSON Schema →
 * compile. Every error of every stage that could run is returned at once, each with
 * its path and line.
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { PolicyRegistry } from "../core/registry.ts";
import type { Logger } from "../observability/logger.ts";
import { parsePathPattern } from "../router/path-pattern.ts";
import { builtinPolicies } from "../policies/index.ts";
import { compileConfig } from "./compile.ts";
import type { RuntimeGraph } from "./graph.ts";
import { createSchemaChecker } from "./schema-check.ts";
import { buildConfigSchema } from "./schema.ts";
import { parseSource, type ConfigError, type ConfigPath, type TypedReference } from "./source.ts";
import type { TurnpikeConfig } from "./types.ts";

/** A loaded, compiled config and what is needed to show it safely. */
export interface LoadedConfig {
  file: string;
  config: TurnpikeConfig;
  graph: RuntimeGraph;
  /** Values that came from the environment; redacted by `GET /config`. */
  secrets: Set<string>;
}

export type LoadResult = { ok: true; loaded: LoadedConfig } | { ok: false; errors: ConfigError[] };

/** Loads config files; holds the compiled schema so repeated reloads do not recompile it. */
export class ConfigLoader {
  readonly registry: PolicyRegistry;
  readonly #check: (value: unknown) => ConfigError[];

  readonly #log: Logger | undefined;

  /** `log` is handed to policies (see PolicyContext.log). */
  constructor(registry: PolicyRegistry = builtinPolicies(), log?: Logger) {
    this.registry = registry;
    this.#log = log;
    this.#check = createSchemaChecker(buildConfigSchema(registry));
  }

  /** Reads and loads a file; a read failure is one error at the root. */
  loadFile(file: string, env: Record<string, string | undefined> = process.env): LoadResult {
    const full = resolve(file);
    let text: string;
    try {
      text = readFileSync(full, "utf8");
    } catch (error) {
      return { ok: false, errors: [{ path: [], message: `cannot read config file: ${(error as NodeJS.ErrnoException).code ?? error}` }] };
    }
    return this.loadText(text, full, env);
  }

  /** Loads config text; `file` names it in messages and anchors relative paths. */
  loadText(text: string, file: string, env: Record<string, string | undefined> = process.env): LoadResult {
    const source = parseSource(text, env);
    const located = (errors: ConfigError[]): ConfigError[] =>
      errors.map((error) => ({ ...error, ...(error.line ? {} : source.locate(error.path, error.atKey)) }));
    if (source.errors.some((e) => e.message.startsWith("YAML syntax"))) return { ok: false, errors: sortErrors(source.errors) };

    const schemaErrors = located(this.#checkTyped(source.value, source.typedReferences));
    const errors = [...source.errors, ...schemaErrors];
    if (schemaErrors.length > 0) {
      errors.push(...located(referenceErrors(source.value)));
      return { ok: false, errors: sortErrors(errors) };
    }
    const config = source.value as TurnpikeConfig;
    const compiled = compileConfig(config, { baseDir: dirname(file), registry: this.registry, log: this.#log });
    if (!compiled.ok) errors.push(...located(compiled.errors));
    if (errors.length > 0 || !compiled.ok) {
      if (compiled.ok) compiled.graph.dispose();
      return { ok: false, errors: sortErrors(errors) };
    }
    return { ok: true, loaded: { file, config, graph: compiled.graph, secrets: source.secrets } };
  }

  /**
   * Runs the schema; a `${VAR}` value read as a number or boolean that the schema
   * refuses is put back as the text it was (an API key of digits is still a string).
   */
  #checkTyped(value: unknown, typed: readonly TypedReference[]): ConfigError[] {
    const errors = this.#check(value);
    const refused = typed.filter((ref) => errors.some((error) => startsWith(error.path, ref.path)));
    if (refused.length === 0) return errors;
    for (const ref of refused) setAt(value, ref.path, ref.text);
    return this.#check(value);
  }
}

function startsWith(path: ConfigPath, prefix: ConfigPath): boolean {
  return prefix.length <= path.length && prefix.every((part, i) => path[i] === part);
}

function setAt(root: unknown, path: ConfigPath, replacement: unknown): void {
  let node = root as Record<string | number, unknown>;
  for (const part of path.slice(0, -1)) node = node[part] as Record<string | number, unknown>;
  node[path[path.length - 1]!] = replacement;
}

/**
 * Checks that need no schema-valid config (references between sections, route names,
 * path patterns), so they are reported together with the schema's errors. When the
 * schema passes, compile makes the same checks.
 */
function referenceErrors(value: unknown): ConfigError[] {
  const config = value as Partial<TurnpikeConfig> | null;
  if (!config || typeof config !== "object" || !Array.isArray(config.routes)) return [];
  const upstreams = config.upstreams && typeof config.upstreams === "object" ? config.upstreams : {};
  const errors: ConfigError[] = [];
  const routeNames = new Map<string, number>();
  config.routes.forEach((route, i) => {
    if (!route || typeof route !== "object") return;
    if (typeof route.upstream === "string" && !Object.hasOwn(upstreams, route.upstream)) {
      errors.push({ path: ["routes", i, "upstream"], message: `unknown upstream "${route.upstream}"` });
    }
    if (route.upstream === undefined && route.split === undefined) {
      errors.push({ path: ["routes", i], message: "a route needs `upstream` (or `split`)" });
    } else if (route.upstream !== undefined && route.split !== undefined) {
      errors.push({ path: ["routes", i, "upstream"], message: "set either `upstream` or `split`, not both" });
    }
    const split: unknown = route.split;
    if (split && typeof split === "object") {
      const named = (list: unknown, key: string) => {
        if (!Array.isArray(list)) return;
        list.forEach((entry: { upstream?: unknown } | null, j) => {
          const name = entry && typeof entry === "object" ? entry.upstream : undefined;
          if (typeof name === "string" && !Object.hasOwn(upstreams, name)) {
            errors.push({ path: ["routes", i, "split", key, j, "upstream"], message: `unknown upstream "${name}"` });
          }
        });
      };
      named((split as { upstreams?: unknown }).upstreams, "upstreams");
      named((split as { rules?: unknown }).rules, "rules");
    }
    if (typeof route.name === "string") {
      const first = routeNames.get(route.name);
      if (first !== undefined) errors.push({ path: ["routes", i, "name"], message: `route name "${route.name}" is already used by routes[${first}]` });
      else routeNames.set(route.name, i);
    }
    const paths: unknown = route.match && typeof route.match === "object" ? route.match.paths : undefined;
    if (!Array.isArray(paths)) return;
    paths.forEach((text, j) => {
      if (typeof text !== "string" || !/^[/~]/.test(text)) return;
      try {
        parsePathPattern(text);
      } catch (error) {
        errors.push({ path: ["routes", i, "match", "paths", j], message: (error as Error).message });
      }
    });
  });
  return errors;
}

/** Sorts by position; drops follow-on errors at a path whose env reference was missing. */
function sortErrors(errors: ConfigError[]): ConfigError[] {
  const envPaths = new Set(errors.filter((e) => e.message.startsWith("environment variable")).map((e) => JSON.stringify(e.path)));
  return errors
    .filter((e) => e.message.startsWith("environment variable") || !envPaths.has(JSON.stringify(e.path)))
    .sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0));
}
