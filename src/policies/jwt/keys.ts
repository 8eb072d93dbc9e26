/**
 * Static verification keys of the `jwt` policy: a shared secret (HS*), PEM files or
 * text (public keys or X.509 certificates), and inline JWKs, turned into one local JWKS.
 */
import { createPublicKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import type { JWK } from "jose";

/** One entry of `keys`, as written. */
export interface KeyConfig {
  file?: string;
  pem?: string;
  jwk?: Record<string, unknown>;
  kid?: string;
  alg?: string;
}

/** Algorithms allowed for each key type when `algorithms` is not configured. */
const ALGORITHMS_BY_KTY: Record<string, string[]> = {
  oct: ["HS256", "HS384", "HS512"],
  RSA: ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"],
  EC: ["ES256", "ES384", "ES512"],
  OKP: ["EdDSA", "Ed25519"],
};

/** Algorithms accepted for keys from a JWKS URL when `algorithms` is not configured (never HS*). */
export const ASYMMETRIC_ALGORITHMS = [...ALGORITHMS_BY_KTY.RSA!, ...ALGORITHMS_BY_KTY.EC!, ...ALGORITHMS_BY_KTY.OKP!];

/** Every algorithm the policy knows. */
export const ALL_ALGORITHMS = [...ALGORITHMS_BY_KTY.oct!, ...ASYMMETRIC_ALGORITHMS];

/** Builds the JWKS of the static public keys; throws with a message naming the entry on a bad key. */
export function loadStaticKeys(keys: readonly KeyConfig[], baseDir: string): JWK[] {
  const out: JWK[] = [];
  keys.forEach((entry, i) => {
    let jwk: JWK;
    if (entry.jwk) {
      jwk = { ...(entry.jwk as JWK) };
      if (jwk.kty === "oct") throw new Error(`keys[${i}]: a symmetric key goes in \`secret\`, not in keys`);
      if ("d" in jwk) throw new Error(`keys[${i}]: this JWK holds a private key; give the public key only`);
    } else {
      let pem: string;
      if (entry.file !== undefined) {
        const full = isAbsolute(entry.file) ? entry.file : resolve(baseDir, entry.file);
        try {
          pem = readFileSync(full, "utf8");
        } catch (error) {
          throw new Error(`keys[${i}].file: cannot read ${full}: ${(error as NodeJS.ErrnoException).code ?? error}`);
        }
      } else {
        pem = entry.pem!;
      }
      if (/PRIVATE KEY/.test(pem)) throw new Error(`keys[${i}]: this is a private key; give the public key or certificate only`);
      try {
        jwk = createPublicKey(pem).export({ format: "jwk" }) as JWK;
      } catch (error) {
        throw new Error(`keys[${i}]: not a PEM public key or certificate (${(error as Error).message})`);
      }
    }
    if (entry.kid !== undefined) jwk.kid = entry.kid;
    if (entry.alg !== undefined) jwk.alg = entry.alg;
    out.push(jwk);
  });
  return out;
}

/** The algorithms the static keys can verify (used when `algorithms` is not configured). */
export function algorithmsFor(keys: readonly JWK[], secret: boolean): string[] {
  const out = new Set<string>(secret ? ALGORITHMS_BY_KTY.oct : []);
  for (const key of keys) {
    if (key.alg) out.add(key.alg);
    else for (const alg of ALGORITHMS_BY_KTY[key.kty ?? ""] ?? []) out.add(alg);
  }
  return [...out];
}
