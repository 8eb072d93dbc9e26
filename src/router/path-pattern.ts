/**
 * Path patterns as written in `match.paths`:
 *
 * | pattern          | matches                                   |
 * |------------------|-------------------------------------------|
 * | `/hello`         | exactly `/hello`                          |
 * | `/api/*`         | `/api`, `/api/` and everything below      |
 * | `/users/:id`     | `/users/42` with `id = "42"`              |
 * | `/files/*rest`   | `/files/a/b` with `rest = "a/b"`          |
 * | `~^/v[0-9]+/`    | a regular expression; named groups become parameters |
 *
 * Literal parts are compared with the request path as a parsed URL writes it, so
 * `/café` and `/caf%C3%A9` are the same pattern. A regex sees that encoded path as is.
 */

/** What kind of path pattern this is; lower kinds win over higher ones at equal priority. */
export const enum PathKind {
  Exact = 0,
  Parameters = 1,
  Prefix = 2,
  Regex = 3,
  Any = 4,
}

/** One segment of a parametrised or prefix pattern. */
export type Segment =
  | { kind: "literal"; value: string }
  | { kind: "param"; name: string }
  | { kind: "rest"; name: string };

/** A parsed path pattern. */
export type PathPattern =
  | { kind: PathKind.Exact; path: string; literalLength: number }
  | {
      kind: PathKind.Parameters | PathKind.Prefix;
      segments: Segment[];
      literalLength: number;
      /** Every parameter name, `*rest` last. */
      params: string[];
      /** Name of the trailing `*rest` parameter, or null. */
      rest: string | null;
    }
  | { kind: PathKind.Regex; regex: RegExp; literalLength: number; params: string[] }
  /** A route without paths: matches every path. */
  | { kind: PathKind.Any; literalLength: 0 };

const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Parses a pattern; throws a message fit for a config error. */
export function parsePathPattern(text: string): PathPattern {
  if (text.startsWith("~")) {
    let regex: RegExp;
    try {
      regex = new RegExp(text.slice(1));
    } catch (error) {
      throw new Error(`invalid regular expression: ${(error as Error).message}`);
    }
    const params = [...text.matchAll(/\(\?<([A-Za-z_][A-Za-z0-9_]*)>/g)].map((m) => m[1]!);
    return { kind: PathKind.Regex, regex, literalLength: 0, params };
  }
  let prefix = false;
  let body = text;
  if (body === "/*") return { kind: PathKind.Prefix, segments: [], literalLength: 0, params: [], rest: null };
  if (body.endsWith("/*")) {
    prefix = true;
    body = body.slice(0, -2);
  }
  const parts = body.split("/").slice(1);
  const segments: Segment[] = [];
  const params: string[] = [];
  let rest: string | null = null;
  let literalLength = 0;
  parts.forEach((part, i) => {
    if (part.startsWith(":")) {
      const name = part.slice(1);
      if (!PARAM_NAME.test(name)) throw new Error(`invalid parameter name "${name}"`);
      if (params.includes(name)) throw new Error(`parameter "${name}" appears twice`);
      params.push(name);
      segments.push({ kind: "param", name });
    } else if (part.startsWith("*")) {
      const name = part.slice(1);
      if (!PARAM_NAME.test(name)) throw new Error(`invalid parameter name "${name}" after *`);
      if (i !== parts.length - 1 || prefix) throw new Error(`*${name} must be the last segment`);
      params.push(name);
      rest = name;
      segments.push({ kind: "rest", name });
    } else {
      if (part.includes(":") || part.includes("*")) throw new Error(`"${part}": ':' and '*' may only start a segment`);
      const value = encodeSegment(part);
      literalLength += value.length + 1;
      segments.push({ kind: "literal", value });
    }
  });
  if (!prefix && params.length === 0) {
    const path = "/" + parts.map(encodeSegment).join("/");
    return { kind: PathKind.Exact, path, literalLength: path.length };
  }
  return { kind: prefix ? PathKind.Prefix : PathKind.Parameters, segments, literalLength, params, rest };
}

/** Characters a parsed URL path may hold unchanged; other segments go through the URL parser. */
const URL_PATH_SAFE = /^[A-Za-z0-9\-._~!$&'()*+,;=:@%|\[\]]*$/;

/**
 * Writes a literal segment the way `new URL(...).pathname` does (`é` → `%C3%A9`,
 * space → `%20`), so it compares equal to the segment of a request path.
 */
function encodeSegment(segment: string): string {
  if (URL_PATH_SAFE.test(segment) || segment === "." || segment === "..") return segment;
  // `?`, `#` and `\` mean something else to the URL parser; inside a segment they are data.
  const escaped = segment.replace(/[?#\\]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return new URL(`http://host/${escaped}`).pathname.slice(1);
}
