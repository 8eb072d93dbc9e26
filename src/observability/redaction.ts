/**
 * What log lines must never contain: credential headers and API-key-like query values.
 * Compiled once per config generation; the hot path only looks names up in sets.
 */
import type { RedactionConfig } from "./logs-config.ts";

/** Replaces a redacted value. */
export const REDACTED = "[redacted]";

/** Headers that are always redacted, whatever the config says. */
export const ALWAYS_REDACTED_HEADERS: readonly string[] = ["authorization", "proxy-authorization", "cookie", "set-cookie"];

/** Query parameter names that are always redacted (compared without case). */
export const DEFAULT_REDACTED_QUERY_PARAMS: readonly string[] = [
  "api_key",
  "apikey",
  "api-key",
  "key",
  "token",
  "access_token",
  "refresh_token",
  "id_token",
  "password",
  "passwd",
  "secret",
  "client_secret",
  "signature",
  "sig",
];

/** The compiled redaction rules: lower-case names. */
export interface Redaction {
  headers: ReadonlySet<string>;
  queryParams: ReadonlySet<string>;
}

/** Builds the rules from `observability.redaction` (built-in names always included). */
export function compileRedaction(config: RedactionConfig | undefined): Redaction {
  return {
    headers: new Set([...ALWAYS_REDACTED_HEADERS, ...(config?.headers ?? []).map((name) => name.toLowerCase())]),
    queryParams: new Set([...DEFAULT_REDACTED_QUERY_PARAMS, ...(config?.query_params ?? []).map((name) => name.toLowerCase())]),
  };
}

/**
 * The query string (without `?`) with the values of redacted parameters replaced, e.g.
 * `page=2&api_key=s3cr3t` → `page=2&api_key=[redacted]`. A name is compared after
 * percent-decoding and without case, so `API%5FKEY=` is caught too.
 */
export function redactQuery(search: string, names: ReadonlySet<string>): string {
  const query = search.charCodeAt(0) === 63 /* ? */ ? search.slice(1) : search;
  let out = "";
  let copiedUpTo = 0;
  let start = 0;
  while (start < query.length) {
    let end = query.indexOf("&", start);
    if (end < 0) end = query.length;
    let nameEnd = query.indexOf("=", start);
    if (nameEnd < 0 || nameEnd > end) nameEnd = end;
    if (isRedacted(query.slice(start, nameEnd), names)) {
      out += `${query.slice(copiedUpTo, nameEnd)}=${REDACTED}`;
      copiedUpTo = end;
    }
    start = end + 1;
  }
  return copiedUpTo === 0 ? query : out + query.slice(copiedUpTo);
}

function isRedacted(raw: string, names: ReadonlySet<string>): boolean {
  if (names.has(raw)) return true;
  let name = raw;
  if (raw.includes("%") || raw.includes("+")) {
    try {
      name = decodeURIComponent(raw.replaceAll("+", " "));
    } catch {
      // a malformed escape: compare the name as written
    }
  }
  const lower = name.toLowerCase();
  return lower !== raw && names.has(lower);
}
