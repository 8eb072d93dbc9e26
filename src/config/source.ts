/**
 * YAML source with positions: parses the config text, substitutes `${ENV_NAME}`
 * references, and maps config paths back to line/column for error messages.
 *
 * A reference may sit anywhere inside a string. An unquoted value that is nothing but
 * one reference (`port: ${PORT}`) is read the way YAML reads the same text typed in:
 * `8080` becomes a number and `true` a boolean; see `ParsedSource.typedReferences`.
 */
import { isMap, isScalar, isSeq, LineCounter, parseDocument, Scalar, visit, type Document, type Node, type Pair } from "yaml";

/** A path into the config tree, e.g. `["routes", 2, "upstream"]`. */
export type ConfigPath = readonly (string | number)[];

/** One config problem: where it is and what is wrong. */
export interface ConfigError {
  path: ConfigPath;
  message: string;
  line?: number;
  col?: number;
  /** The error is about the key itself (e.g. an unknown key), not its value. */
  atKey?: boolean;
}

/** Renders a path as `routes[2].upstream`; the root is `(root)`. */
export function formatPath(path: ConfigPath): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out === "" ? part : `.${part}`;
  }
  return out === "" ? "(root)" : out;
}

/** Renders one error the way `turnpike validate` prints it. */
export function formatError(file: string, error: ConfigError): string {
  const where = error.line ? ` (line ${error.line}, col ${error.col})` : "";
  return `${file}: ${formatPath(error.path)}: ${error.message}${where}`;
}

const ENV_REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;
const WHOLE_REFERENCE = /^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/;
/** What YAML's core schema reads as a number or boolean (no null: an empty variable stays ""). */
const YAML_NUMBER = /^[-+]?(?:[0-9]+|[0-9]*\.[0-9]+(?:[eE][-+]?[0-9]+)?|[0-9]+\.[0-9]*(?:[eE][-+]?[0-9]+)?|[0-9]+[eE][-+]?[0-9]+)$/;
const YAML_BOOLEAN = /^(?:true|True|TRUE|false|False|FALSE)$/;

/** An unquoted whole `${VAR}` value that `value` holds as a number or boolean. */
export interface TypedReference {
  path: ConfigPath;
  /** The substituted text, for when the setting wants a string after all. */
  text: string;
}

/** The parsed document, its plain value, and the secrets that came from the environment. */
export interface ParsedSource {
  value: unknown;
  errors: ConfigError[];
  /** Values substituted from `${ENV}` references; redacted wherever config is shown. */
  secrets: Set<string>;
  /**
   * Unquoted whole references whose text reads as a number or boolean and which `value`
   * holds typed; the loader puts back the text where the schema wants a string.
   */
  typedReferences: TypedReference[];
  /** Line/column of a path, or of its closest existing ancestor. */
  locate(path: ConfigPath, atKey?: boolean): { line: number; col: number } | undefined;
}

/**
 * Parses YAML text. Syntax errors and missing environment variables come back as
 * errors with positions; `value` is still returned as far as it could be read.
 */
export function parseSource(text: string, env: Record<string, string | undefined>): ParsedSource {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const errors: ConfigError[] = [];
  const secrets = new Set<string>();
  const position = (offset: number) => {
    const pos = lineCounter.linePos(offset);
    return { line: pos.line, col: pos.col };
  };

  errors.push(...syntaxErrors(doc, position));

  const typedReferences: TypedReference[] = [];
  visit(doc, {
    Scalar(key, node, ancestry) {
      if (typeof node.value !== "string" || !node.value.includes("${")) return;
      // A mapping key stays text whatever it holds.
      const whole = key !== "key" && node.type === Scalar.PLAIN && WHOLE_REFERENCE.test(node.value);
      let missing = false;
      const text = node.value.replace(ENV_REFERENCE, (_whole, name: string) => {
        const found = env[name];
        if (found === undefined) {
          missing = true;
          errors.push({
            path: pathOf(ancestry, node),
            message: `environment variable ${name} is not set`,
            ...(node.range ? position(node.range[0]) : {}),
          });
          return "";
        }
        if (found !== "") secrets.add(found);
        return found;
      });
      node.value = text;
      if (!whole || missing) return;
      const trimmed = text.trim();
      if (YAML_NUMBER.test(trimmed)) node.value = Number(trimmed);
      else if (YAML_BOOLEAN.test(trimmed)) node.value = trimmed.toLowerCase() === "true";
      if (node.value !== text) typedReferences.push({ path: pathOf(ancestry, node), text });
    },
  });

  const value = errors.length > 0 && doc.contents === null ? undefined : doc.toJS({ maxAliasCount: 100 });

  return {
    value,
    errors,
    secrets,
    typedReferences,
    locate(path, atKey = false) {
      return locate(doc, path, atKey, position);
    },
  };
}

/**
 * YAML's errors with positions. A duplicate key names its path and the line of the
 * first one; of the other errors only the first on each line is kept, since one slip
 * (an unclosed bracket) makes the parser complain about every token after it.
 */
function syntaxErrors(doc: Document, position: (offset: number) => { line: number; col: number }): ConfigError[] {
  const out: ConfigError[] = [];
  const linesSeen = new Set<number>();
  for (const err of doc.errors) {
    const at = position(err.pos[0]);
    if (err.code === "DUPLICATE_KEY") {
      const duplicate = findDuplicate(doc, err.pos[0]);
      if (duplicate) {
        const first = duplicate.first ? ` (first set on line ${position(duplicate.first).line})` : "";
        out.push({ path: duplicate.path, message: `duplicate key${first}`, atKey: true, ...at });
        continue;
      }
    }
    if (linesSeen.has(at.line)) continue;
    linesSeen.add(at.line);
    out.push({ path: [], message: `YAML syntax: ${err.message.split("\n")[0]}`, ...at });
  }
  return out;
}

/** The path of the key starting at `offset` and where the same key first appears in its mapping. */
function findDuplicate(doc: Document, offset: number): { path: (string | number)[]; first: number | undefined } | null {
  let found: { path: (string | number)[]; first: number | undefined } | null = null;
  visit(doc, {
    Pair(_key, pair, ancestry) {
      const key = pair.key as Node | null;
      if (!isScalar(key) || key.range?.[0] !== offset) return;
      const parent = ancestry[ancestry.length - 1];
      const first = isMap(parent)
        ? (parent.items as Pair[]).find((item) => isScalar(item.key) && item.key.value === key.value)
        : undefined;
      const firstOffset = first && first !== pair ? (first.key as Node).range?.[0] : undefined;
      found = { path: [...pathOf(ancestry.slice(0, -1), parent), String(key.value)], first: firstOffset };
      return visit.BREAK;
    },
  });
  return found;
}

function locate(
  doc: Document,
  path: ConfigPath,
  atKey: boolean,
  position: (offset: number) => { line: number; col: number },
): { line: number; col: number } | undefined {
  let node: unknown = doc.contents;
  let best: { line: number; col: number } | undefined;
  const rangeOf = (n: unknown) => {
    const range = (n as Node | null)?.range;
    return range ? position(range[0]) : undefined;
  };
  best = rangeOf(node);
  for (let i = 0; i < path.length; i++) {
    const part = path[i]!;
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((item) => (isScalar(item.key) ? item.key.value : item.key) === part);
      if (!pair) return best;
      if (last && atKey) return rangeOf(pair.key) ?? best;
      node = pair.value;
      best = rangeOf(node) ?? rangeOf(pair.key) ?? best;
    } else if (isSeq(node) && typeof part === "number") {
      node = node.items[part];
      if (node === undefined) return best;
      best = rangeOf(node) ?? best;
    } else {
      return best;
    }
  }
  return best;
}

function pathOf(ancestry: readonly unknown[], leaf: unknown): (string | number)[] {
  const path: (string | number)[] = [];
  const chain = [...ancestry, leaf];
  for (let i = 0; i < chain.length - 1; i++) {
    const parent = chain[i];
    const child = chain[i + 1];
    if (isSeq(parent)) {
      path.push(parent.items.indexOf(child as never));
    } else if (parent && typeof parent === "object" && "key" in parent && "value" in parent) {
      // A Pair: its key names the step when the walk goes into its value.
      const pair = parent as { key: unknown; value: unknown };
      if (pair.value === child) path.push(String(isScalar(pair.key) ? pair.key.value : pair.key));
    }
  }
  return path;
}
