/**
 * `mtls-auth`: requires a client certificate that the listener verified against its CAs
 * (`tls.client_certificates`) and identifies the consumer by it. A consumer credential
 * `{ type: mtls }` names the certificate by its SHA-256 `fingerprint`, a subjectAltName
 * entry (`san: URI:spiffe://acme/billing`), or its `subject` (`CN=billing,O=Acme`, RDNs in
 * either order); the first of these that matches, in that order, wins.
 *
 *     - type: mtls-auth
 *       config: { consumer: required }     # or optional: any verified certificate passes
 */
import { identify } from "../../auth/identity.ts";
import { forbidden, unauthorized } from "../../auth/responses.ts";
import { consumerFromRecord, type Consumer } from "../../core/consumer.ts";
import type { ClientCertificate } from "../../core/exchange.ts";
import { recordDecision } from "../../core/pipeline.ts";
import type { PolicyFactory } from "../../core/policy.ts";
import { problem } from "../../core/problem.ts";

/** The `config` of an `mtls-auth` policy. */
export interface MtlsAuthConfig {
  consumer?: "required" | "optional";
}

/** Index of the consumers' `mtls` credentials, built at load. */
interface CertificateIndex {
  fingerprint: Map<string, Consumer>;
  san: Map<string, Consumer>;
  subject: Map<string, Consumer>;
}

export const mtlsAuthPolicy: PolicyFactory<MtlsAuthConfig> = {
  type: "mtls-auth",
  description: "Require a verified client certificate (mTLS) and identify the consumer by it.",
  schema: {
    type: "object",
    additionalProperties: false,
    properties: {
      consumer: {
        enum: ["required", "optional"],
        description: "required (default): the certificate must belong to a consumer (else 403); optional: any verified certificate passes.",
      },
    },
  },
  create(config, context) {
    const consumerRequired = (config.consumer ?? "required") === "required";
    const index: CertificateIndex = { fingerprint: new Map(), san: new Map(), subject: new Map() };
    for (const { consumer, credential } of context.consumers.credentials("mtls")) {
      const identity = consumerFromRecord(consumer, "mtls-auth");
      if (typeof credential.fingerprint === "string") index.fingerprint.set(credential.fingerprint.replaceAll(":", "").toLowerCase(), identity);
      if (typeof credential.san === "string") index.san.set(credential.san, identity);
      if (typeof credential.subject === "string") index.subject.set(normalizeSubject(credential.subject), identity);
    }

    return {
      type: "mtls-auth",
      authentication: true,
      onRequest(exchange) {
        const certificate = exchange.tls?.clientCertificate ?? null;
        if (certificate === null) {
          recordDecision(exchange, "mtls-auth", "missing");
          return problem({
            status: 401,
            kind: "unauthorized",
            detail: "This resource needs a client certificate (mutual TLS) from a trusted CA.",
            requestId: exchange.requestId,
          });
        }
        if (!certificate.verified) {
          recordDecision(exchange, "mtls-auth", "untrusted");
          return unauthorized(exchange, "invalid", []);
        }
        const consumer = find(index, certificate);
        if (consumer === undefined) {
          if (consumerRequired) {
            recordDecision(exchange, "mtls-auth", "unknown-certificate");
            return forbidden(exchange);
          }
          return undefined;
        }
        if (!identify(exchange, consumer)) return unauthorized(exchange, "invalid", []);
        return undefined;
      },
    };
  },
};

function find(index: CertificateIndex, certificate: ClientCertificate): Consumer | undefined {
  const byFingerprint = index.fingerprint.get(certificate.fingerprint);
  if (byFingerprint) return byFingerprint;
  for (const name of certificate.subjectAltNames) {
    const bySan = index.san.get(name);
    if (bySan) return bySan;
  }
  const parts = certificate.subject.split(",");
  return index.subject.get(parts.join(",")) ?? index.subject.get([...parts].reverse().join(","));
}

/** `CN=billing, O=Acme` → `CN=billing,O=Acme`. */
function normalizeSubject(subject: string): string {
  return subject
    .split(",")
    .map((part) => part.trim())
    .filter(Boolean)
    .join(",");
}

