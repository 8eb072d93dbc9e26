/** The built-in policy types. Every new policy is listed here once. */
import { PolicyRegistry } from "../core/registry.ts";
import { apiKeyPolicy } from "./api-key/index.ts";
import { basicAuthPolicy } from "./basic-auth/index.ts";
import { jwtPolicy } from "./jwt/index.ts";
import { digestAuthPolicy } from "./digest-auth/index.ts";
import { oauth2IntrospectionPolicy } from "./oauth2-introspection/index.ts";
import { authPolicy } from "./auth/index.ts";
import { authorizePolicy } from "./authorize/index.ts";
import { contentTypePolicy } from "./content-type/index.ts";
import { corsPolicy } from "./cors/index.ts";
import { headersPolicy } from "./headers/index.ts";
import { hmacAuthPolicy } from "./hmac-auth/index.ts";
import { ipRestrictionPolicy } from "./ip-restriction/index.ts";
import { mockPolicy } from "./mock/index.ts";
import { mtlsAuthPolicy } from "./mtls-auth/index.ts";
import { rateLimitPolicy } from "./rate-limit/index.ts";
import { requestSizeLimitPolicy } from "./request-size-limit/index.ts";

/** A registry holding every built-in policy type. */
export function builtinPolicies(): PolicyRegistry {
  return new PolicyRegistry([
    headersPolicy,
    requestSizeLimitPolicy,
    contentTypePolicy,
    mockPolicy,
    apiKeyPolicy,
    ipRestrictionPolicy,
    corsPolicy,
    hmacAuthPolicy,
    mtlsAuthPolicy,
    basicAuthPolicy,
    jwtPolicy,
    authPolicy,
    authorizePolicy,
    digestAuthPolicy,
    oauth2IntrospectionPolicy,
    rateLimitPolicy,
  ]);
}
