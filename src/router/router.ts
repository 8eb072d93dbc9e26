/**
 * The route table, compiled once per config generation.
 *
 * Lookup: the Host picks tables (exact host, then matching wildcards, then routes
 * without hosts); in each table exact paths are a map lookup, parameter and prefix
 * patterns a walk down a segment trie, regexes a short list. Among the candidates that
 * also pass their method/header/query checks the best-ranked wins:
 * higher `priority`, then exact < parameters < prefix < regex < no path, then the
 * longer literal part, then exact host < wildcard host < any host, then more
 * conditions, then file order.
 *
 * Hosts compare case-insensitively. A config host without a port matches any port; one
 * with a port (`api.example.com:8443`) matches only that port (a Host without a port
 * means 80 or 443 by scheme) and ranks above the same name without one. Among
 * wildcards the longer suffix ranks higher (`*.eu.example.com` before `*.example.com`).
 */
import type { CompiledRoute } from "./types.ts";
import { PathKind, parsePathPattern, type PathPattern } from "./path-pattern.ts";

/** Extra checks of a route besides host and path (methods, headers, query). */
export type RequestCheck = (request: Request, url: URL) => boolean;

/** What the router needs of each route. */
export interface RouteSpec {
  route: CompiledRoute;
  hosts: string[];
  paths: string[];
  check: RequestCheck | null;
  /** Number of method/header/query conditions; more specific routes win ties. */
  conditionCount: number;
}

/** The result of a match. */
export interface RouteMatch {
  route: CompiledRoute;
  params: Record<string, string>;
}

interface Entry {
  route: CompiledRoute;
  pattern: PathPattern;
  /** Higher is more specific; see `hostRankOf`. */
  hostRank: number;
  conditionCount: number;
  check: RequestCheck | null;
  /** Names of the `:param` segments in path order (values come from the trie walk). */
  segmentParams: readonly string[];
  /** Name of a trailing `*rest` parameter, or null. */
  rest: string | null;
}

interface TrieNode {
  literal: Map<string, TrieNode>;
  param: TrieNode | null;
  /** Parameter patterns ending exactly here. */
  exact: Entry[];
  /** Prefix patterns ending here: they match here and anywhere below. */
  prefix: Entry[];
  /** `*rest` patterns starting here. */
  rest: Entry[];
}

function newNode(): TrieNode {
  return { literal: new Map(), param: null, exact: [], prefix: [], rest: [] };
}

class Table {
  readonly exact = new Map<string, Entry[]>();
  readonly trie = newNode();
  readonly regex: Entry[] = [];
  readonly any: Entry[] = [];

  add(entry: Entry): void {
    const pattern = entry.pattern;
    switch (pattern.kind) {
      case PathKind.Exact: {
        const list = this.exact.get(pattern.path) ?? [];
        list.push(entry);
        this.exact.set(pattern.path, list);
        return;
      }
      case PathKind.Regex:
        this.regex.push(entry);
        return;
      case PathKind.Any:
        this.any.push(entry);
        return;
      default: {
        let node = this.trie;
        for (const segment of pattern.segments) {
          if (segment.kind === "literal") {
            let next = node.literal.get(segment.value);
            if (!next) node.literal.set(segment.value, (next = newNode()));
            node = next;
          } else if (segment.kind === "param") {
            if (!node.param) node.param = newNode();
            node = node.param;
          } else {
            node.rest.push(entry);
            return;
          }
        }
        (pattern.kind === PathKind.Prefix ? node.prefix : node.exact).push(entry);
      }
    }
  }
}

/** Compiled routes; `match` is the only per-request call. */
export class Router {
  /** Keyed by `name` or `name:port`. */
  readonly #byHost = new Map<string, Table>();
  /** Keyed by the suffix after `*`, e.g. `.example.com` or `.example.com:8443`. */
  readonly #wildcards = new Map<string, Table>();
  readonly #anyHost = new Table();
  /** Whether any host was written with a port, so requests need their port looked up. */
  #portScoped = false;

  constructor(specs: readonly RouteSpec[]) {
    for (const spec of specs) {
      const patterns: PathPattern[] = spec.paths.length
        ? spec.paths.map(parsePathPattern)
        : [{ kind: PathKind.Any, literalLength: 0 }];
      const hosts = spec.hosts.length ? spec.hosts : [null];
      for (const host of hosts) {
        const { table, hostRank } = this.#tableFor(host);
        for (const pattern of patterns) {
          const segmentParams = pattern.kind === PathKind.Parameters || pattern.kind === PathKind.Prefix
            ? pattern.segments.flatMap((segment) => (segment.kind === "param" ? [segment.name] : []))
            : [];
          const rest = pattern.kind === PathKind.Parameters ? pattern.rest : null;
          table.add({ route: spec.route, pattern, hostRank, conditionCount: spec.conditionCount, check: spec.check, segmentParams, rest });
        }
      }
    }
  }

  #tableFor(host: string | null): { table: Table; hostRank: number } {
    if (host === null) return { table: this.#anyHost, hostRank: 0 };
    const { name, port } = splitHost(host.toLowerCase());
    if (port !== "") this.#portScoped = true;
    const key = port === "" ? name : `${name}:${port}`;
    const wildcard = name.startsWith("*.");
    const tables = wildcard ? this.#wildcards : this.#byHost;
    const tableKey = wildcard ? key.slice(1) : key;
    let table = tables.get(tableKey);
    if (!table) tables.set(tableKey, (table = new Table()));
    return { table, hostRank: hostRankOf(wildcard ? name.length - 1 : -1, port !== "") };
  }

  /** Finds the best route for a request, or null. */
  match(request: Request, url: URL): RouteMatch | null {
    const { name, port: given } = splitHost((request.headers.get("host") ?? url.host).toLowerCase());
    const port = this.#portScoped ? given || (url.protocol === "https:" ? "443" : "80") : "";
    const path = url.pathname;
    const best: Best = { entry: null, params: null };
    const tables = [this.#byHost.get(name)];
    if (port) tables.push(this.#byHost.get(`${name}:${port}`));
    if (this.#wildcards.size > 0) {
      // Every suffix that starts at a dot after at least one character: a.b.example.com
      // tries .b.example.com, then .example.com, then .com.
      for (let dot = name.indexOf(".", 1); dot > 0; dot = name.indexOf(".", dot + 1)) {
        const suffix = name.slice(dot);
        tables.push(this.#wildcards.get(suffix));
        if (port) tables.push(this.#wildcards.get(`${suffix}:${port}`));
      }
    }
    tables.push(this.#anyHost);
    for (const table of tables) if (table) searchTable(table, path, request, url, best);
    if (!best.entry) return null;
    return { route: best.entry.route, params: best.params ?? {} };
  }
}

interface Best {
  entry: Entry | null;
  params: Record<string, string> | null;
}

/**
 * The host part of a ranking: exact hosts above every wildcard, a longer wildcard
 * suffix above a shorter one, and a host with a port above the same host without.
 * `wildcardSuffixLength` is -1 for an exact host.
 */
function hostRankOf(wildcardSuffixLength: number, hasPort: boolean): number {
  const EXACT = 1_000_000;
  const base = wildcardSuffixLength < 0 ? EXACT : 1 + 2 * wildcardSuffixLength;
  return base + (hasPort ? 1 : 0);
}

/** Splits a lower-case Host value into its name (without a trailing dot) and port ("" if none). */
function splitHost(host: string): { name: string; port: string } {
  let name = host;
  let port = "";
  if (host.startsWith("[")) {
    const end = host.indexOf("]");
    if (end >= 0) {
      name = host.slice(0, end + 1);
      if (host.charCodeAt(end + 1) === 58 /* : */) port = host.slice(end + 2);
    }
  } else {
    const colon = host.lastIndexOf(":");
    if (colon >= 0) {
      name = host.slice(0, colon);
      port = host.slice(colon + 1);
    }
  }
  if (name.endsWith(".")) name = name.slice(0, -1);
  return { name, port };
}

/** True when `a` ranks above `b` (see the module comment for the order). */
function outranks(a: Entry, b: Entry): boolean {
  if (a.route.priority !== b.route.priority) return a.route.priority > b.route.priority;
  if (a.pattern.kind !== b.pattern.kind) return a.pattern.kind < b.pattern.kind;
  if (a.pattern.literalLength !== b.pattern.literalLength) return a.pattern.literalLength > b.pattern.literalLength;
  if (a.hostRank !== b.hostRank) return a.hostRank > b.hostRank;
  if (a.conditionCount !== b.conditionCount) return a.conditionCount > b.conditionCount;
  return a.route.index < b.route.index;
}

function consider(entry: Entry, params: Record<string, string> | null, request: Request, url: URL, best: Best): void {
  if (best.entry && !outranks(entry, best.entry)) return;
  if (entry.check && !entry.check(request, url)) return;
  best.entry = entry;
  best.params = params;
}

function searchTable(table: Table, path: string, request: Request, url: URL, best: Best): void {
  const exact = table.exact.get(path);
  if (exact) for (const entry of exact) consider(entry, null, request, url, best);
  if (table.trie.literal.size || table.trie.param || table.trie.prefix.length || table.trie.rest.length) {
    const segments = path.split("/");
    walk(table.trie, segments, 1, [], request, url, best);
  }
  for (const entry of table.regex) {
    if (best.entry && !outranks(entry, best.entry)) continue;
    const pattern = entry.pattern as Extract<PathPattern, { kind: PathKind.Regex }>;
    const found = pattern.regex.exec(path);
    if (found) consider(entry, found.groups ? decodeAll(found.groups) : null, request, url, best);
  }
  for (const entry of table.any) consider(entry, null, request, url, best);
}

function walk(
  node: TrieNode,
  segments: string[],
  index: number,
  values: string[],
  request: Request,
  url: URL,
  best: Best,
): void {
  // Prefix patterns ending at this node match whatever follows.
  for (const entry of node.prefix) consider(entry, paramsOf(entry, values, null), request, url, best);
  if (index < segments.length && node.rest.length) {
    const rest = segments.slice(index).join("/");
    for (const entry of node.rest) consider(entry, paramsOf(entry, values, rest), request, url, best);
  }
  if (index === segments.length) {
    for (const entry of node.exact) consider(entry, paramsOf(entry, values, null), request, url, best);
    return;
  }
  const segment = segments[index]!;
  const literal = node.literal.get(segment);
  if (literal) walk(literal, segments, index + 1, values, request, url, best);
  if (node.param && segment !== "") {
    values.push(segment);
    walk(node.param, segments, index + 1, values, request, url, best);
    values.pop();
  }
}

function paramsOf(entry: Entry, values: string[], rest: string | null): Record<string, string> | null {
  const names = entry.segmentParams;
  if (names.length === 0 && entry.rest === null) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < names.length; i++) params[names[i]!] = decode(values[i] ?? "");
  if (entry.rest !== null) params[entry.rest] = decode(rest ?? "");
  return params;
}

/** Percent-decodes a captured value; a malformed escape leaves it as sent. */
function decode(value: string): string {
  if (!value.includes("%")) return value;
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

function decodeAll(groups: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(groups)) if (value !== undefined) out[key] = decode(value);
  return out;
}
