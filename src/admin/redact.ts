/**
 * Redaction of the effective config for display: values that came from `${ENV}`
 * references and values under secret-looking keys are replaced.
 */

const SECRET_KEY = /(pass(word)?|secret|token|api[_-]?key|private|credential|key_hash|ha1)/i;
export const REDACTED = "[redacted]";

/** Returns a deep copy of `value` with secrets replaced by `[redacted]`. */
export function redactConfig(value: unknown, secrets: ReadonlySet<string>, key = ""): unknown {
  if (typeof value === "string") {
    if (SECRET_KEY.test(key)) return REDACTED;
    for (const secret of secrets) if (value.includes(secret)) return REDACTED;
    return value;
  }
  if (Array.isArray(value)) return value.map((item) => redactConfig(item, secrets, key));
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEY.test(k) && typeof v !== "object" ? REDACTED : redactConfig(v, secrets, k);
    return out;
  }
  return value;
}
