/**
 * `headers`: changes request headers sent upstream and response headers sent back.
 *
 *     - type: headers
 *       config:
 *         request:  { set: { x-env: prod }, remove: [x-debug] }
 *         response: { add: { cache-control: no-store } }
 */
import { applyHeaderOps, compileHeaderOps, headerOpsSchema, type HeaderOpsConfig } from "../../core/headers.ts";
import type { Policy, PolicyFactory } from "../../core/policy.ts";

interface HeadersConfig {
  request?: HeaderOpsConfig;
  response?: HeaderOpsConfig;
}

export const headersPolicy: PolicyFactory<HeadersConfig> = {
  type: "headers",
  description: "Set, add or remove request headers (sent upstream) and response headers.",
  schema: { type: "object", additionalProperties: false, properties: { request: headerOpsSchema, response: headerOpsSchema } },
  create(config) {
    const request = compileHeaderOps(config.request);
    const response = compileHeaderOps(config.response);
    const policy: Policy = { type: "headers" };
    if (request) {
      policy.onRequest = (exchange) => {
        applyHeaderOps(exchange.upstreamHeaders, request);
      };
    }
    if (response) {
      policy.onResponse = (_exchange, res) => {
        applyHeaderOps(res.headers, response);
        return res;
      };
    }
    return policy;
  },
};
