/**
 * The JSON Schema of a Turnpike config. Built from code so that each policy's own
 * schema is part of it; `bun run schema` writes it to `schema/turnpike.schema.json`.
 */
import { conditionSchema, valueMatchSchema } from "../core/condition.ts";
import { headerOpsSchema as headerOps } from "../core/headers.ts";
import { mockSchema as mock } from "../core/mock.ts";
import { observabilitySchema } from "../observability/config.ts";
import { consumerHeadersSchema } from "../auth/consumer-headers.ts";
import { consumersSchema } from "../auth/consumers.ts";
import type { PolicyRegistry } from "../core/registry.ts";
import { durationSchema, sizeSchema } from "../core/units.ts";
import { targetSchema, trafficSchemaProperties } from "../upstream/config.ts";
import { storeSchema } from "../store/index.ts";

const NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.-]*$";

const timeouts = {
  type: "object",
  additionalProperties: false,
  description: "Upstream timeouts; each expired one answers 504.",
  properties: {
    connect: { ...durationSchema, description: "Until the upstream connection is open and the request sent." },
    response_headers: { ...durationSchema, description: "Until the upstream's response headers arrive." },
    idle: { ...durationSchema, description: "Longest pause between two chunks of the response body." },
    total: { ...durationSchema, description: "Whole exchange, body included." },
  },
};

const limits = {
  type: "object",
  additionalProperties: false,
  properties: {
    max_body_size: { ...sizeSchema, description: "Largest request body (413 above it); 0 means no limit." },
    max_header_size: { ...sizeSchema, description: "Largest total size of request headers (431 above it)." },
    max_url_length: { type: "integer", minimum: 1, description: "Longest request target (414 above it)." },
  },
};

const concurrency = {
  type: "object",
  additionalProperties: false,
  required: ["max"],
  description: "At most `max` requests in flight; more wait in an optional queue, then get 503.",
  properties: {
    max: { type: "integer", minimum: 1, maximum: 1000000, description: "Most requests in flight at once." },
    queue: {
      type: "object",
      additionalProperties: false,
      required: ["size"],
      description: "Requests beyond `max` wait here (first in, first out) for a free slot.",
      properties: {
        size: { type: "integer", minimum: 0, maximum: 1000000, description: "Most requests waiting; a full queue answers 503 at once." },
        timeout: { ...durationSchema, description: "Longest wait for a slot (then 503); default 1s, 0 waits as long as the client does." },
      },
    },
    retry_after: { ...durationSchema, description: "Retry-After of the 503 (rounded up to seconds); default 1s." },
  },
};

const split = {
  type: "object",
  additionalProperties: false,
  required: ["upstreams"],
  description: "Sends the route's requests to several upstreams: A/B rules first, then weights; optionally sticky.",
  properties: {
    upstreams: {
      type: "array",
      minItems: 1,
      description: "Weighted sides, e.g. stable 95 and canary 5; the weights must add up to more than 0.",
      items: {
        type: "object",
        additionalProperties: false,
        required: ["upstream", "weight"],
        properties: {
          upstream: { type: "string", description: "Name of an entry of `upstreams`." },
          weight: { type: "integer", minimum: 0, maximum: 1000000, description: "Share of requests (0: only through rules)." },
        },
      },
    },
    rules: {
      type: "array",
      description: "A/B selection: the first rule whose header or cookie matches picks its upstream.",
      items: {
        type: "object",
        additionalProperties: false,
        required: ["value", "upstream"],
        properties: {
          header: { type: "string", pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$" },
          cookie: { type: "string", pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$" },
          value: { $ref: "#/$defs/valueMatch" },
          upstream: { type: "string", description: "Name of an entry of `upstreams`." },
        },
      },
    },
    sticky: {
      type: "object",
      additionalProperties: false,
      required: ["by"],
      description: "Keeps one client on one side: the key (client IP, header or cookie) is hashed onto the weights.",
      properties: {
        by: { enum: ["client_ip", "header", "cookie"] },
        name: { type: "string", pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", description: "The header or cookie name." },
        set_cookie: { type: "boolean", description: "With by: cookie, give a client without the cookie a random id in it." },
        max_age: { ...durationSchema, description: "Max-Age of the cookie the gateway sets; default 24h." },
      },
    },
  },
};

/** Builds the whole config schema, with a branch per registered policy type. */
export function buildConfigSchema(registry: PolicyRegistry): Record<string, unknown> {
  const policyTypes = registry.all().map((factory) => factory.type);
  const policyEntry = {
    type: "object",
    additionalProperties: false,
    required: ["type"],
    properties: {
      type: { enum: policyTypes, description: "The policy type." },
      when: { $ref: "#/$defs/condition", description: "Run only when this condition holds." },
      config: { type: "object", description: "The policy's own settings (see its schema)." },
    },
    allOf: registry.all().map((factory) => ({
      if: { properties: { type: { const: factory.type } }, required: ["type"] },
      then: { properties: { config: factory.schema } },
    })),
  };

  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    $id: "urn:turnpike:config-schema",
    title: "Turnpike gateway configuration",
    type: "object",
    additionalProperties: false,
    required: ["listeners", "upstreams", "routes"],
    properties: {
      $schema: { type: "string" },
      listeners: {
        type: "array",
        minItems: 1,
        items: {
          type: "object",
          additionalProperties: false,
          required: ["port"],
          properties: {
            name: { type: "string", pattern: NAME_PATTERN },
            address: { type: "string", description: "Address to bind; default 0.0.0.0 (all interfaces)." },
            port: { type: "integer", minimum: 0, maximum: 65535 },
            tls: {
              type: "object",
              additionalProperties: false,
              required: ["certificates"],
              description: "Makes this an HTTPS listener (TLS 1.2 and 1.3 only).",
              properties: {
                certificates: {
                  type: "array",
                  minItems: 1,
                  description: "PEM files; SNI picks one by server name; the first is the default.",
                  items: {
                    type: "object",
                    additionalProperties: false,
                    required: ["cert", "key"],
                    properties: {
                      cert: { type: "string", minLength: 1, description: "Path of the PEM certificate chain (leaf first), relative to the config file." },
                      key: { type: "string", minLength: 1, description: "Path of the unencrypted PEM private key, relative to the config file." },
                      server_names: {
                        type: "array",
                        minItems: 1,
                        items: { type: "string", pattern: "^(\\*\\.)?[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$", description: "a host name such as api.example.com or *.example.com" },
                        description: "SNI names that select this certificate; default: the certificate's DNS subjectAltNames.",
                      },
                    },
                  },
                },
                client_certificates: {
                  type: "object",
                  additionalProperties: false,
                  required: ["ca"],
                  description: "Ask clients for certificates (mTLS), verified against these CAs; see docs/tls.md.",
                  properties: {
                    ca: {
                      "x-expects": "a PEM file path or a list of them",
                      anyOf: [{ type: "string", minLength: 1 }, { type: "array", minItems: 1, items: { type: "string", minLength: 1 } }],
                      description: "PEM file(s) of the CA certificates that sign client certificates, relative to the config file.",
                    },
                    mode: {
                      enum: ["require", "request"],
                      description: "require (default): the handshake fails without a valid certificate; request: ask, and let routes decide (mtls-auth).",
                    },
                  },
                },
              },
            },
          },
        },
      },
      admin: {
        type: "object",
        additionalProperties: false,
        properties: {
          enabled: { type: "boolean" },
          address: { type: "string", description: "Default 127.0.0.1." },
          port: { type: "integer", minimum: 0, maximum: 65535, description: "Default 9901." },
        },
      },
      server: {
        type: "object",
        additionalProperties: false,
        properties: {
          workers: { anyOf: [{ type: "integer", minimum: 1, maximum: 256 }, { const: "auto" }], "x-expects": 'a number of workers (1..256) or "auto"' },
          drain_timeout: { ...durationSchema, description: "Grace for in-flight requests on shutdown; default 30s." },
          watch: { type: "boolean", description: "Reload when the config file changes." },
          client_idle_timeout: { ...durationSchema, description: "Idle client connections close after this; default 60s, at most 255s." },
          trusted_proxies: {
            type: "array",
            items: { type: "string", minLength: 1 },
            description: "Proxies (IPv4/IPv6 addresses or CIDR ranges) whose X-Forwarded-For names the real client address.",
          },
          limits,
        },
      },
      upstreams: {
        type: "object",
        propertyNames: { pattern: NAME_PATTERN },
        additionalProperties: {
          type: "object",
          additionalProperties: false,
          properties: {
            type: { enum: ["http", "mock"], description: "http (default) forwards to targets; mock answers itself." },
            targets: { type: "array", minItems: 1, items: targetSchema },
            ...trafficSchemaProperties,
            mock,
            tls: {
              type: "object",
              additionalProperties: false,
              description: "TLS toward https:// targets: the CA to verify them and a client certificate to present.",
              properties: {
                ca: { type: "string", minLength: 1, description: "PEM file of the CA that signs the targets' certificates (instead of the system's)." },
                cert: { type: "string", minLength: 1, description: "PEM client certificate presented to the targets (with key)." },
                key: { type: "string", minLength: 1, description: "PEM private key of cert, unencrypted." },
                server_name: { type: "string", minLength: 1, description: "SNI name and the name verified in the targets' certificates; default each target's host." },
                verify: { type: "boolean", description: "Verify the targets' certificates; default true. false is for tests only." },
              },
            },
            timeouts,
            concurrency,
          },
        },
      },
      routes: {
        type: "array",
        items: {
          type: "object",
          additionalProperties: false,
          required: ["name"],
          properties: {
            name: { type: "string", pattern: NAME_PATTERN },
            priority: { type: "integer", description: "Higher wins among matching routes; default 0." },
            match: {
              type: "object",
              additionalProperties: false,
              properties: {
                hosts: { type: "array", minItems: 1, items: { type: "string", pattern: "^(\\*\\.)?[A-Za-z0-9.-]+(:[0-9]+)?$" } },
                paths: {
                  type: "array",
                  minItems: 1,
                  items: { type: "string", pattern: "^(/|~)" },
                  description: "/exact, /prefix/*, /users/:id, /files/*rest, or ~regex.",
                },
                methods: { type: "array", minItems: 1, items: { type: "string", pattern: "^[A-Za-z]+$" } },
                headers: { type: "object", additionalProperties: { $ref: "#/$defs/valueMatch" } },
                query: { type: "object", additionalProperties: { $ref: "#/$defs/valueMatch" } },
              },
            },
            upstream: { type: "string", description: "Name of an entry of `upstreams` (or use `split`)." },
            split,
            rewrite: {
              type: "object",
              additionalProperties: false,
              properties: {
                strip_prefix: { type: "string", pattern: "^/" },
                path: { type: "string", pattern: "^/", description: "New path; :name inserts a path parameter." },
                regex: { type: "string", format: "regex" },
                replacement: { type: "string", description: "With regex: $1 or $<name> insert groups." },
              },
            },
            host_header: {
              anyOf: [
                { enum: ["preserve", "upstream"] },
                { type: "object", additionalProperties: false, required: ["set"], properties: { set: { type: "string" } } },
              ],
              description: "Host sent upstream: the target's (upstream, default), the client's (preserve), or a fixed one.",
              "x-expects": '"upstream", "preserve" or {set: "host"}',
            },
            request_headers: headerOps,
            response_headers: headerOps,
            timeouts,
            limits,
            policies: { type: "array", items: { $ref: "#/$defs/policy" } },
            concurrency,
          },
        },
      },
      observability: observabilitySchema,
      store: storeSchema(),
      consumers: consumersSchema,
      consumer_headers: consumerHeadersSchema,
      pre_flow: { type: "array", items: { $ref: "#/$defs/policy" }, description: "Policies run for every request, before route policies." },
      post_flow: { type: "array", items: { $ref: "#/$defs/policy" }, description: "Policies run on every response, after route policies." },
    },
    $defs: {
      valueMatch: valueMatchSchema,
      condition: conditionSchema,
      policy: policyEntry,
    },
  };
}
