/**
 * Origin matching for CORS, compiled once at load. An entry is one of:
 *
 * - `*`: every origin;
 * - an exact origin, `https://app.example.com` (scheme, host and any port; compared
 *   without regard to case);
 * - a pattern with `*` standing for one or more DNS labels, `https://*.example.com`
 *   (matches `https://a.example.com` and `https://a.b.example.com`, not
 *   `https://example.com`);
 * - a regular expression after `~`, matched against the whole origin:
 *   `~^https://pr-[0-9]+\.preview\.example\.com$`.
 */

/** A compiled origin list. */
export interface OriginMatcher {
  /** True when every origin is allowed (`*`). */
  readonly any: boolean;
  allows(origin: string): boolean;
}

const LABELS = "[a-z0-9-]+(?:\\.[a-z0-9-]+)*";
const EXACT = /^[a-z][a-z0-9+.-]*:\/\/[^/?#*\s]+$|^null$/i;

/** Checks one entry; returns a message, or null when it is usable. */
export function checkOrigin(entry: string): string | null {
  if (entry === "*") return null;
  if (entry.startsWith("~")) {
    try {
      new RegExp(entry.slice(1));
      return null;
    } catch (error) {
      return `invalid regular expression: ${(error as Error).message}`;
    }
  }
  if (!EXACT.test(entry.replaceAll("*", "x"))) {
    return `"${entry}" is not an origin (scheme://host[:port], without path), a pattern like https://*.example.com, "*" or ~regex`;
  }
  return null;
}

/** Compiles entries already checked by `checkOrigin`. */
export function compileOrigins(entries: readonly string[]): OriginMatcher {
  const exact = new Set<string>();
  const patterns: RegExp[] = [];
  let any = false;
  for (const entry of entries) {
    if (entry === "*") any = true;
    else if (entry.startsWith("~")) patterns.push(new RegExp(`^(?:${entry.slice(1)})$`));
    else if (entry.includes("*")) {
      const source = entry
        .toLowerCase()
        .split("*")
        .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
        .join(LABELS);
      patterns.push(new RegExp(`^${source}$`, "i"));
    } else exact.add(entry.toLowerCase());
  }
  return {
    any,
    allows(origin) {
      if (any) return true;
      if (exact.has(origin.toLowerCase())) return true;
      for (const pattern of patterns) if (pattern.test(origin)) return true;
      return false;
    },
  };
}
