/**
 * `request-size-limit`: refuses request bodies larger than `max_body_size` with 413,
 * whether the size is declared (Content-Length) or only seen while streaming.
 *
 *     - type: request-size-limit
 *       config: { max_body_size: 1MiB }
 */
import { limitRequestBody } from "../../core/body-limit.ts";
import type { PolicyFactory } from "../../core/policy.ts";
import { parseSize, sizeSchema } from "../../core/units.ts";

interface SizeLimitConfig {
  max_body_size: number | string;
}

export const requestSizeLimitPolicy: PolicyFactory<SizeLimitConfig> = {
  type: "request-size-limit",
  description: "Refuse request bodies over a size (413).",
  schema: {
    type: "object",
    additionalProperties: false,
    required: ["max_body_size"],
    properties: { max_body_size: sizeSchema },
  },
  create(config) {
    const maxBytes = parseSize(config.max_body_size);
    return {
      type: "request-size-limit",
      onRequest: (exchange) => limitRequestBody(exchange, maxBytes),
    };
  },
};
