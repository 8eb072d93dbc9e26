/**
 * `content-type`: allows request bodies only of listed media types (415 otherwise).
 * Entries are `type/subtype`, `type/*` or `*\/*`; parameters such as charset are ignored.
 * Requests without a body pass.
 *
 *     - type: content-type
 *       config: { allow: [application/json, text/*] }
 */
import type { PolicyFactory } from "../../core/policy.ts";
import { recordDecision } from "../../core/pipeline.ts";
import { problem } from "../../core/problem.ts";

interface ContentTypeConfig {
  allow: string[];
}

export const contentTypePolicy: PolicyFactory<ContentTypeConfig> = {
  type: "content-type",
  description: "Allow request bodies only of the listed media types (415).",
  schema: {
    type: "object",
    additionalProperties: false,
    required: ["allow"],
    properties: {
      allow: { type: "array", minItems: 1, items: { type: "string", pattern: "^[A-Za-z0-9!#$&^_.+*-]+/[A-Za-z0-9!#$&^_.+*-]+$" } },
    },
  },
  create(config) {
    const exact = new Set<string>();
    const families = new Set<string>();
    let any = false;
    for (const entry of config.allow) {
      const lower = entry.toLowerCase();
      if (lower === "*/*") any = true;
      else if (lower.endsWith("/*")) families.add(lower.slice(0, -2));
      else exact.add(lower);
    }
    const allowedText = config.allow.join(", ");
    return {
      type: "content-type",
      onRequest(exchange) {
        if (any || exchange.body === null) return undefined;
        const header = exchange.request.headers.get("content-type");
        if (header !== null) {
          const semicolon = header.indexOf(";");
          const media = (semicolon >= 0 ? header.slice(0, semicolon) : header).trim().toLowerCase();
          if (exact.has(media) || families.has(media.slice(0, media.indexOf("/")))) return undefined;
        } else if (exchange.request.headers.get("content-length") === "0") {
          return undefined;
        }
        recordDecision(exchange, "content-type", "reject");
        return problem({
          status: 415,
          kind: "unsupported-media-type",
          detail: `Content-Type ${header === null ? "(none)" : JSON.stringify(header)} is not accepted here; allowed: ${allowedText}.`,
          requestId: exchange.requestId,
          headers: { "accept-post": allowedText },
        });
      },
    };
  },
};
