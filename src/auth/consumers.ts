/**
 * The top-level `consumers:` section: its JSON Schema and its compilation into a
 * ConsumerDirectory.
 *
 *     consumers:
 *       - name: billing-service
 *         roles: [billing]
 *         groups: [internal]
 *         metadata: { plan: gold }
 *         credentials:
 *           - type: api_key
 *             key_hash: sha256:5f0c...   # `turnpike hash-key`
 *           - type: basic
 *             username: billing
 *             password_hash: $argon2id$v=19$...   # `turnpike hash-password`
 */
import type { ConsumerDirectory, ConsumerRecord, CredentialConfig } from "../core/consumer.ts";

const NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.@:-]*$";

/** The config of one consumer, as written. */
export interface ConsumerConfig {
  name: string;
  roles?: string[];
  groups?: string[];
  metadata?: Record<string, unknown>;
  credentials?: CredentialConfig[];
}

const stringList = { type: "array", items: { type: "string", minLength: 1, pattern: "^[^,\\s]+$" }, uniqueItems: true };

/** The fields of each credential kind (besides `type`). */
const CREDENTIAL_FIELDS: Record<string, { description: string; properties: Record<string, unknown>; required?: string[]; anyOf?: unknown[] }> = {
  api_key: {
    description: "An API key, stored as its SHA-256 (`turnpike hash-key`).",
    properties: { key_hash: { type: "string", pattern: "^sha256:[0-9a-f]{64}$", "x-secret": true, description: "sha256:<64 hex digits> of the key (from `turnpike hash-key`)." } },
    required: ["key_hash"],
  },
  basic: {
    description: "A user name and password for Basic auth; the password as a Bun.password hash (argon2id or bcrypt).",
    properties: {
      username: { type: "string", minLength: 1, pattern: "^[^:]+$" },
      password_hash: { type: "string", pattern: "^\\$(argon2id|argon2i|argon2d|2a|2b|2y)\\$", "x-secret": true, description: "an argon2 or bcrypt hash from `turnpike hash-password`." },
    },
    required: ["username", "password_hash"],
  },
  digest: {
    description: "A user name for Digest auth: the password (best from `${ENV}`) or its HA1 hashes for one realm.",
    properties: {
      username: { type: "string", minLength: 1, pattern: '^[^:"]+$' },
      password: { type: "string", minLength: 1 },
      realm: { type: "string", description: "The realm the ha1 values were computed for." },
      ha1_sha256: { type: "string", pattern: "^[0-9a-f]{64}$", description: "hex SHA-256 of username:realm:password." },
      ha1_md5: { type: "string", pattern: "^[0-9a-f]{32}$", description: "hex MD5 of username:realm:password." },
    },
    required: ["username"],
  },
  jwt: {
    description: "A bearer token (JWT or introspected) whose claim (default `sub`) has this value identifies the consumer.",
    properties: {
      subject: { type: "string", minLength: 1, description: "Value of the `sub` claim." },
      claim: { type: "string", minLength: 1, description: "Claim to compare instead of `sub` (e.g. client_id, azp)." },
      value: { type: "string", minLength: 1, description: "Value of `claim`." },
      issuer: { type: "string", minLength: 1, description: "Only tokens of this issuer (`iss`)." },
    },
  },
  hmac: {
    description: "A key id and shared secret for HMAC request signing.",
    properties: { key_id: { type: "string", minLength: 1 }, secret: { type: "string", minLength: 16, "x-secret": true, description: "Best from `${ENV}`." } },
    required: ["key_id", "secret"],
  },
  mtls: {
    description: "A client certificate, matched by subject, subjectAltName or SHA-256 fingerprint.",
    properties: {
      subject: { type: "string", minLength: 1, description: "Subject DN, e.g. CN=billing,O=Acme." },
      san: { type: "string", minLength: 1, description: "A subjectAltName entry, e.g. DNS:billing.internal or URI:spiffe://acme/billing." },
      fingerprint: { type: "string", pattern: "^([0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2}$", description: "SHA-256 fingerprint of the certificate." },
    },
  },
};

/** Credential kinds a consumer may hold. */
export const CREDENTIAL_KINDS: readonly string[] = Object.keys(CREDENTIAL_FIELDS);

/** JSON Schema of the `consumers:` section. */
export const consumersSchema = {
  type: "array",
  description: "Who may call: consumers with roles, groups, metadata and credentials.",
  items: {
    type: "object",
    additionalProperties: false,
    required: ["name"],
    properties: {
      name: { type: "string", pattern: NAME_PATTERN, description: "Unique name; forwarded upstream and written to the access log." },
      roles: stringList,
      groups: stringList,
      metadata: { type: "object", description: "Free-form values; may be forwarded as headers." },
      credentials: {
        type: "array",
        items: {
          type: "object",
          required: ["type"],
          properties: { type: { enum: CREDENTIAL_KINDS, description: "The kind of credential." } },
          allOf: Object.entries(CREDENTIAL_FIELDS).map(([kind, fields]) => ({
            if: { properties: { type: { const: kind } }, required: ["type"] },
            then: {
              description: fields.description,
              additionalProperties: false,
              properties: { type: { const: kind }, ...fields.properties },
              ...(fields.required ? { required: ["type", ...fields.required] } : {}),
            },
          })),
        },
      },
    },
  },
};

/** A config problem at a path below `consumers`. */
export interface ConsumerConfigError {
  path: (string | number)[];
  message: string;
}

/** Compiles the `consumers:` section; problems are returned with paths from the config root. */
export function compileConsumers(config: ConsumerConfig[] | undefined): { directory: ConsumerDirectory; errors: ConsumerConfigError[] } {
  const errors: ConsumerConfigError[] = [];
  const byName = new Map<string, ConsumerRecord>();
  const byKind = new Map<string, { consumer: ConsumerRecord; credential: CredentialConfig; path: (string | number)[] }[]>();
  const records: ConsumerRecord[] = [];
  const seenCredential = new Map<string, string>();
  (config ?? []).forEach((entry, i) => {
    const path = ["consumers", i];
    if (byName.has(entry.name)) {
      errors.push({ path: [...path, "name"], message: `consumer name "${entry.name}" is used twice` });
      return;
    }
    const record: ConsumerRecord = {
      name: entry.name,
      roles: Object.freeze([...(entry.roles ?? [])]),
      groups: Object.freeze([...(entry.groups ?? [])]),
      metadata: Object.freeze({ ...(entry.metadata ?? {}) }),
      credentials: Object.freeze([...(entry.credentials ?? [])]),
    };
    byName.set(entry.name, record);
    records.push(record);
    record.credentials.forEach((credential, j) => {
      const credentialPath = [...path, "credentials", j];
      const problem = checkCredential(credential);
      if (problem) {
        errors.push({ path: credentialPath, message: problem });
        return;
      }
      // The same key, user name or subject on two consumers would make identity ambiguous.
      const identity = identityOf(credential);
      if (identity !== null) {
        const owner = seenCredential.get(identity);
        if (owner !== undefined) {
          errors.push({ path: credentialPath, message: `this ${credential.type} credential is already held by consumer "${owner}"` });
          return;
        }
        seenCredential.set(identity, entry.name);
      }
      let list = byKind.get(credential.type);
      if (!list) byKind.set(credential.type, (list = []));
      list.push({ consumer: record, credential, path: credentialPath });
    });
  });
  const directory: ConsumerDirectory = {
    get: (name) => byName.get(name),
    credentials: (kind) => byKind.get(kind) ?? [],
    all: () => records,
  };
  return { directory, errors };
}

/** Checks a schema cannot express; null when fine. */
function checkCredential(credential: CredentialConfig): string | null {
  switch (credential.type) {
    case "digest": {
      const hasHa1 = credential.ha1_sha256 !== undefined || credential.ha1_md5 !== undefined;
      if ((credential.password === undefined) === !hasHa1) return "set either password or ha1_sha256/ha1_md5 (with realm)";
      if (hasHa1 && credential.realm === undefined) return "ha1 values need the realm they were computed for";
      return null;
    }
    case "jwt": {
      const bySubject = credential.subject !== undefined;
      const byClaim = credential.claim !== undefined || credential.value !== undefined;
      if (bySubject === byClaim) return "set either subject, or claim and value";
      if (byClaim && (credential.claim === undefined || credential.value === undefined)) return "claim and value go together";
      return null;
    }
    case "mtls":
      if (credential.subject === undefined && credential.san === undefined && credential.fingerprint === undefined) return "set subject, san or fingerprint";
      return null;
    default:
      return null;
  }
}

/** A key naming what a credential identifies, to find duplicates; null when duplicates are harmless. */
function identityOf(credential: CredentialConfig): string | null {
  switch (credential.type) {
    case "api_key":
      return `api_key:${credential.key_hash}`;
    case "basic":
    case "digest":
      return `${credential.type}:${credential.username}`;
    case "jwt":
      return `jwt:${credential.issuer ?? ""}:${credential.claim ?? "sub"}=${credential.subject ?? credential.value}`;
    case "hmac":
      return `hmac:${credential.key_id}`;
    case "mtls":
      return `mtls:${credential.subject ?? ""}|${credential.san ?? ""}|${String(credential.fingerprint ?? "").replaceAll(":", "").toLowerCase()}`;
    default:
      return null;
  }
}
