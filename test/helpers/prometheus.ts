/**
 * Test helper: a strict parser of the Prometheus text exposition format 0.0.4 (promtool
 * is not available here). It throws on anything a scraper could misread: malformed
 * lines, bad label escaping, a second TYPE or HELP of a family, samples before their
 * TYPE or of a family that already ended, duplicate series, histogram samples without a
 * known suffix, buckets that are not cumulative, a missing `le="+Inf"` bucket or one that
 * disagrees with `_count`.
 */

export type Labels = Record<string, string>;

/** One sample line. */
export interface Sample {
  name: string;
  labels: Labels;
  value: number;
}

/** One family (`# TYPE` name) and its samples. */
export interface ParsedFamily {
  name: string;
  type: string;
  help: string | null;
  samples: Sample[];
}

/** A parsed exposition with lookup helpers. */
export interface Exposition {
  families: Map<string, ParsedFamily>;
  comments: string[];
  /** Samples named `name` whose labels include `labels`. */
  find(name: string, labels?: Labels): Sample[];
  /** Sum of the values of `find(name, labels)`. */
  sum(name: string, labels?: Labels): number;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

/** Parses `text` or throws an Error naming the line. */
export function parseExposition(text: string): Exposition {
  if (!text.endsWith("\n")) throw new Error("the exposition must end with a line feed");
  const lines = text.slice(0, -1).split("\n");
  const families = new Map<string, ParsedFamily>();
  const comments: string[] = [];
  const ended = new Set<string>();
  const seenSeries = new Set<string>();
  /** HELP texts by family; a HELP line may come before its TYPE line. */
  const pendingHelp = new Map<string, string>();
  let current: string | null = null;

  const enter = (family: string, where: string) => {
    if (current === family) return;
    if (ended.has(family)) throw new Error(`${where}: family ${family} appears again after another family`);
    if (current !== null) ended.add(current);
    current = family;
  };

  lines.forEach((line, index) => {
    const where = `line ${index + 1} (${JSON.stringify(line)})`;
    if (line === "") throw new Error(`${where}: empty line`);
    if (line.startsWith("#")) {
      const match = /^# (HELP|TYPE) ([^ ]+) ?(.*)$/.exec(line);
      if (!match) {
        if (!line.startsWith("# ")) throw new Error(`${where}: a comment starts with "# "`);
        comments.push(line.slice(2));
        return;
      }
      const [, keyword, name, rest] = match as unknown as [string, string, string, string];
      if (!METRIC_NAME.test(name)) throw new Error(`${where}: invalid metric name`);
      enter(name, where);
      let family = families.get(name);
      if (keyword === "TYPE") {
        if (family) throw new Error(`${where}: second TYPE line (or TYPE after samples) for ${name}`);
        if (!TYPES.has(rest)) throw new Error(`${where}: unknown type ${rest}`);
        families.set(name, { name, type: rest, help: pendingHelp.get(name) ?? null, samples: [] });
      } else {
        if (pendingHelp.has(name) || family?.help != null) throw new Error(`${where}: second HELP line for ${name}`);
        checkHelp(rest, where);
        pendingHelp.set(name, rest);
        if (family) family.help = rest;
      }
      return;
    }
    const sample = parseSample(line, where);
    const family = familyOf(sample.name, families);
    if (!family) throw new Error(`${where}: sample without a TYPE line`);
    enter(family.name, where);
    if (family.type === "histogram" && sample.name === family.name) throw new Error(`${where}: histogram sample without _bucket/_sum/_count`);
    if (family.type === "histogram" && sample.name === `${family.name}_bucket` && sample.labels.le === undefined) throw new Error(`${where}: bucket without le`);
    const key = `${sample.name}{${Object.entries(sample.labels).sort().map(([k, v]) => `${k}=${v}`).join(",")}}`;
    if (seenSeries.has(key)) throw new Error(`${where}: duplicate series ${key}`);
    seenSeries.add(key);
    if ((family.type === "counter" || sample.name.endsWith("_bucket") || sample.name.endsWith("_count")) && !(sample.value >= 0)) {
      throw new Error(`${where}: negative or NaN count`);
    }
    family.samples.push(sample);
  });
  for (const family of families.values()) if (family.type === "histogram") checkHistogram(family);

  const find = (name: string, labels: Labels = {}) =>
    [...families.values()].flatMap((f) => f.samples).filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return { families, comments, find, sum: (name, labels) => find(name, labels).reduce((n, s) => n + s.value, 0) };
}

function familyOf(sampleName: string, families: Map<string, ParsedFamily>): ParsedFamily | undefined {
  const direct = families.get(sampleName);
  if (direct) return direct;
  const suffix = /_(bucket|sum|count)$/.exec(sampleName);
  if (!suffix) return undefined;
  const family = families.get(sampleName.slice(0, -suffix[0].length));
  return family && (family.type === "histogram" || family.type === "summary") ? family : undefined;
}

function checkHelp(text: string, where: string): void {
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "\\") {
      const next = text[i + 1];
      if (next !== "\\" && next !== "n") throw new Error(`${where}: bad escape in HELP`);
      i++;
    }
  }
}

function parseSample(line: string, where: string): Sample {
  const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
  if (!nameMatch) throw new Error(`${where}: no metric name`);
  const name = nameMatch[0];
  let i = name.length;
  const labels: Labels = {};
  if (line[i] === "{") {
    i++;
    while (line[i] !== "}") {
      const labelMatch = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(i));
      if (!labelMatch || !LABEL_NAME.test(labelMatch[0])) throw new Error(`${where}: bad label name at ${i}`);
      const label = labelMatch[0];
      i += label.length;
      if (line[i] !== "=" || line[i + 1] !== '"') throw new Error(`${where}: expected =" after ${label}`);
      i += 2;
      let value = "";
      for (;;) {
        const c = line[i];
        if (c === undefined) throw new Error(`${where}: unterminated label value`);
        if (c === '"') break;
        if (c === "\\") {
          const next = line[i + 1];
          if (next === "\\") value += "\\";
          else if (next === '"') value += '"';
          else if (next === "n") value += "\n";
          else throw new Error(`${where}: bad escape \\${next} in a label value`);
          i += 2;
          continue;
        }
        value += c;
        i++;
      }
      i++;
      if (label in labels) throw new Error(`${where}: label ${label} twice`);
      labels[label] = value;
      if (line[i] === ",") i++;
      else if (line[i] !== "}") throw new Error(`${where}: expected , or } at ${i}`);
    }
    i++;
  }
  if (line[i] !== " ") throw new Error(`${where}: expected one space before the value`);
  const parts = line.slice(i + 1).split(" ");
  if (parts.length > 2 || parts[0] === "") throw new Error(`${where}: expected a value and an optional timestamp`);
  const value = parseFloatStrict(parts[0]!, where);
  if (parts.length === 2 && !/^-?[0-9]+$/.test(parts[1]!)) throw new Error(`${where}: bad timestamp`);
  return { name, labels, value };
}

function parseFloatStrict(text: string, where: string): number {
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  if (text === "NaN") return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`${where}: bad value ${text}`);
  return Number(text);
}

function checkHistogram(family: ParsedFamily): void {
  const groups = new Map<string, { buckets: { le: number; value: number }[]; sum?: number; count?: number }>();
  for (const sample of family.samples) {
    const { le, ...rest } = sample.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const group = groups.get(key) ?? { buckets: [] };
    groups.set(key, group);
    if (sample.name.endsWith("_bucket")) group.buckets.push({ le: parseFloatStrict(le!, `${family.name} le`), value: sample.value });
    else if (sample.name.endsWith("_sum")) group.sum = sample.value;
    else group.count = sample.value;
  }
  for (const [key, group] of groups) {
    const where = `${family.name}${key}`;
    if (group.sum === undefined || group.count === undefined) throw new Error(`${where}: _sum or _count missing`);
    if (group.buckets.length === 0) throw new Error(`${where}: no buckets`);
    for (let i = 1; i < group.buckets.length; i++) {
      if (!(group.buckets[i]!.le > group.buckets[i - 1]!.le)) throw new Error(`${where}: le not ascending`);
      if (group.buckets[i]!.value < group.buckets[i - 1]!.value) throw new Error(`${where}: buckets not cumulative`);
    }
    const last = group.buckets.at(-1)!;
    if (last.le !== Infinity) throw new Error(`${where}: no le="+Inf" bucket`);
    if (last.value !== group.count) throw new Error(`${where}: +Inf bucket ${last.value} differs from _count ${group.count}`);
  }
}
