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
 */
import type { CompiledRoute } from "./types.ts";
import { PathKind, parsePathPattern, type PathPattern, type Segment } from "./path-pattern.ts";

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
  hostRank: number;
  conditionCount: number;
  check: RequestCheck | null;
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
  readonly #byHost = new Map<string, Table>();
  readonly #wildcards: { suffix: string; table: Table }[] = [];
  readonly #anyHost = new Table();

  constructor(specs: readonly RouteSpec[]) {
    for (const spec of specs) {
      const patterns: PathPattern[] = spec.paths.length
        ? spec.paths.map(parsePathPattern)
        : [{ kind: PathKind.Any, literalLength: 0 } as unknown as PathPattern];
      const hosts = spec.hosts.length ? spec.hosts : [null];
      for (const host of hosts) {
        const { table, hostRank } = this.#tableFor(host);
        for (const pattern of patterns) {
          table.add({ route: spec.route, pattern, hostRank, conditionCount: spec.conditionCount, check: spec.check });
        }
      }
    }
    this.#wildcards.sort((a, b) => b.suffix.length - a.suffix.length);
  }

  #tableFor(host: string | null): { table: Table; hostRank: number } {
    if (host === null) return { table: this.#anyHost, hostRank: 0 };
    const name = stripPort(host.toLowerCase());
    if (name.startsWith("*.")) {
      const suffix = name.slice(1);
      let found = this.#wildcards.find((w) => w.suffix === suffix);
      if (!found) this.#wildcards.push((found = { suffix, table: new Table() }));
      return { table: found.table, hostRank: 1 };
    }
    let table = this.#byHost.get(name);
    if (!table) this.#byHost.set(name, (table = new Table()));
    return { table, hostRank: 2 };
  }

  /** Finds the best route for a request, or null. */
  match(request: Request, url: URL): RouteMatch | null {
    const host = stripPort((request.headers.get("host") ?? url.host).toLowerCase());
    const path = url.pathname;
    const best: Best = { entry: null, params: null };
    const exactTable = this.#byHost.get(host);
    if (exactTable) searchTable(exactTable, path, request, url, best);
    for (const wildcard of this.#wildcards) {
      if (host.endsWith(wildcard.suffix) && host.length > wildcard.suffix.length) {
        searchTable(wildcard.table, path, request, url, best);
      }
    }
    searchTable(this.#anyHost, path, request, url, best);
    if (!best.entry) return null;
    return { route: best.entry.route, params: best.params ?? {} };
  }
}

interface Best {
  entry: Entry | null;
  params: Record<string, string> | null;
}

function stripPort(host: string): string {
  if (host.startsWith("[")) {
    const end = host.indexOf("]");
    return end >= 0 ? host.slice(0, end + 1) : host;
  }
  const colon = host.lastIndexOf(":");
  return colon >= 0 ? host.slice(0, colon) : host;
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
    if (found) consider(entry, found.groups ? { ...decodeAll(found.groups) } : null, request, url, best);
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
  const pattern = entry.pattern as { params?: string[]; segments?: Segment[] };
  const names = pattern.params ?? [];
  if (names.length === 0) return null;
  const params: Record<string, string> = {};
  let i = 0;
  for (const name of names) {
    const isRest = pattern.segments?.some((s) => s.kind === "rest" && s.name === name);
    params[name] = decode(isRest ? (rest ?? "") : (values[i++] ?? ""));
  }
  return params;
}

function decode(value: string): string {
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
