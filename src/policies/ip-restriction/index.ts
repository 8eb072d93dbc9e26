/**
 * `ip-restriction`: allows or refuses a request by the real client address
 * (`exchange.realClientIp`: the socket peer, or the client a trusted proxy names; see
 * `server.trusted_proxies`). Ranges are CIDR (IPv4 or IPv6) or single addresses.
 * `deny` is checked first; when `allow` is given, only addresses in it pass.
 * A refusal is a 403 problem.
 *
 *     - type: ip-restriction
 *       config:
 *         allow: [10.0.0.0/8, "2001:db8::/32"]
 *         deny: [10.0.0.13]
 */
import { recordDecision } from "../../core/pipeline.ts";
import { compileCidrList, parseCidr } from "../../core/net.ts";
import type { PolicyFactory } from "../../core/policy.ts";
import { problem } from "../../core/problem.ts";

/** The `config` of an `ip-restriction` policy. */
export interface IpRestrictionConfig {
  allow?: string[];
  deny?: string[];
}

const ranges = { type: "array", minItems: 1, items: { type: "string", minLength: 1 } };

export const ipRestrictionPolicy: PolicyFactory<IpRestrictionConfig> = {
  type: "ip-restriction",
  description: "Allow or deny requests by client address (CIDR, IPv4 and IPv6) (403).",
  schema: {
    type: "object",
    additionalProperties: false,
    properties: {
      allow: { ...ranges, description: "Only these ranges may call; default: every address not denied." },
      deny: { ...ranges, description: "These ranges may not call; checked before allow." },
    },
  },
  validate(config) {
    const problems: { path: (string | number)[]; message: string }[] = [];
    if (!config.allow && !config.deny) problems.push({ path: [], message: "set allow, deny or both" });
    for (const key of ["allow", "deny"] as const) {
      (config[key] ?? []).forEach((text, i) => {
        try {
          parseCidr(text);
        } catch (error) {
          problems.push({ path: [key, i], message: (error as Error).message });
        }
      });
    }
    return problems;
  },
  create(config) {
    const denied = config.deny ? compileCidrList(config.deny) : null;
    const allowed = config.allow ? compileCidrList(config.allow) : null;
    return {
      type: "ip-restriction",
      onRequest(exchange) {
        const address = exchange.realClientIp;
        if ((denied === null || !denied(address)) && (allowed === null || allowed(address))) return undefined;
        recordDecision(exchange, "ip-restriction", "deny");
        return problem({
          status: 403,
          kind: "ip-forbidden",
          detail: `Requests from ${address || "this client"} are not allowed here.`,
          requestId: exchange.requestId,
        });
      },
    };
  },
};
