/**
 * Credentials of the authentication scenarios: an API key (configured by its hash) and
 * an RS256 JWT verified with a PEM public key, made fresh for each run.
 */
import { generateKeyPairSync } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { SignJWT } from "jose";
import { hashApiKey } from "../src/auth/secrets.ts";

/** What the auth scenarios send and what Turnpike's config holds. */
export interface BenchAuth {
  apiKey: string;
  apiKeyHash: string;
  /** PEM file of the RSA public key that verifies `token`. */
  jwtPublicKeyPath: string;
  /** An RS256 token valid for two hours (the whole run). */
  token: string;
}

/** Makes the key pair and the credentials; writes the public key into `dir`. */
export async function createBenchAuth(dir: string): Promise<BenchAuth> {
  const apiKey = `bench-${crypto.randomUUID()}`;
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const jwtPublicKeyPath = join(dir, "jwt-public.pem");
  writeFileSync(jwtPublicKeyPath, publicKey.export({ type: "spki", format: "pem" }) as string);
  const token = await new SignJWT({ sub: "bench-client", scope: "bench:read" })
    .setProtectedHeader({ alg: "RS256" })
    .setIssuer("https://bench.turnpike.local/")
    .setAudience("bench")
    .setIssuedAt()
    .setExpirationTime("2h")
    .sign(privateKey);
  return { apiKey, apiKeyHash: hashApiKey(apiKey), jwtPublicKeyPath, token };
}

/** Request headers each auth scenario sends (to nginx too, which ignores them). */
export function authHeaders(auth: BenchAuth, scenario: "api-key" | "jwt"): Record<string, string> {
  return scenario === "api-key" ? { apikey: auth.apiKey } : { authorization: `Bearer ${auth.token}` };
}
