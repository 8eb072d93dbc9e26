/**
 * The HMAC request signature: the `Authorization` header's syntax and the string that is
 * signed. Both sides (the gateway and a client) build the signing string the same way:
 *
 *     Authorization: HMAC-SHA256 keyId="billing-1", created="1764500000", nonce="4f1c0d7e9a2b44c1",
 *                    headers="host x-tenant", signature="<base64 of the HMAC>"
 *
 * Signing string: these lines joined by "\n" (no final newline):
 *
 *     HMAC-SHA256                                  the algorithm, as in the header
 *     POST                                         the method
 *     /orders?id=7                                 the request target: path and query as sent
 *     1764500000                                   created: Unix time in seconds
 *     4f1c0d7e9a2b44c1                             the nonce
 *     sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:   SHA-256 of the body (empty body too)
 *     host:api.example.com                         each signed header, lower-case name ":" trimmed value,
 *     x-tenant:acme                                in the order of `headers`
 */
import { createHash, createHmac } from "node:crypto";

/** Supported algorithms: the scheme name in the header → the node:crypto digest. */
export const ALGORITHMS: Readonly<Record<string, "sha256" | "sha512">> = { "HMAC-SHA256": "sha256", "HMAC-SHA512": "sha512" };

/** A parsed signature header. */
export interface SignatureHeader {
  algorithm: string;
  keyId: string;
  /** Unix time in seconds. */
  created: number;
  nonce: string;
  /** Lower-case names of the signed headers, in order. */
  headers: string[];
  /** The signature bytes, from base64. */
  signature: Uint8Array;
}

const PARAM = /\s*([A-Za-z]+)\s*=\s*"([^"\\]*)"\s*(,|$)/y;
const NONCE = /^[A-Za-z0-9._~+/=-]{8,128}$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const MAX_SIGNED_HEADERS = 32;

/**
 * Parses `Authorization`; null when it is not an HMAC header at all (another scheme),
 * a message when it is one but malformed.
 */
export function parseSignatureHeader(value: string): SignatureHeader | string | null {
  const space = value.indexOf(" ");
  const scheme = (space < 0 ? value : value.slice(0, space)).toUpperCase();
  if (!scheme.startsWith("HMAC-")) return null;
  if (!Object.hasOwn(ALGORITHMS, scheme)) return `algorithm ${JSON.stringify(scheme.slice(0, 20))} is not supported (HMAC-SHA256, HMAC-SHA512)`;
  if (value.length > 4096) return "the header is too long";
  const params = new Map<string, string>();
  const rest = space < 0 ? "" : value.slice(space + 1);
  PARAM.lastIndex = 0;
  while (PARAM.lastIndex < rest.length) {
    const start = PARAM.lastIndex;
    const match = PARAM.exec(rest);
    if (!match || match.index !== start) return 'parameters must be name="value" pairs separated by commas';
    const name = match[1]!;
    if (params.has(name)) return `parameter ${name} is given twice`;
    params.set(name, match[2]!);
    if (match[3] === "") break;
  }
  for (const name of ["keyId", "created", "nonce", "signature"]) {
    if (!params.has(name)) return `parameter ${name} is missing`;
  }
  const createdText = params.get("created")!;
  if (!/^[0-9]{1,12}$/.test(createdText)) return "created must be a Unix time in seconds";
  const nonce = params.get("nonce")!;
  if (!NONCE.test(nonce)) return "nonce must be 8 to 128 characters of A-Z a-z 0-9 . _ ~ + / = -";
  const keyId = params.get("keyId")!;
  if (keyId.length === 0 || keyId.length > 256) return "keyId must be 1 to 256 characters";
  const headerList = (params.get("headers") ?? "").toLowerCase().split(" ").filter((name) => name !== "");
  if (headerList.length > MAX_SIGNED_HEADERS) return `at most ${MAX_SIGNED_HEADERS} headers may be signed`;
  for (const name of headerList) if (!HEADER_NAME.test(name)) return `headers lists ${JSON.stringify(name.slice(0, 40))}, which is not a header name`;
  if (new Set(headerList).size !== headerList.length) return "headers lists a name twice";
  const signatureText = params.get("signature")!;
  if (!BASE64.test(signatureText)) return "signature must be base64";
  return {
    algorithm: scheme,
    keyId,
    created: Number(createdText),
    nonce,
    headers: headerList,
    signature: Buffer.from(signatureText, "base64"),
  };
}

/** `sha-256=:<base64>:` of a body (RFC 9530 Content-Digest syntax). */
export function bodyDigest(body: Uint8Array): string {
  return `sha-256=:${createHash("sha256").update(body).digest("base64")}:`;
}

/** What is signed, as described at the top of this file. */
export interface SigningInput {
  algorithm: string;
  method: string;
  /** Path and query as sent, e.g. `/orders?id=7`. */
  target: string;
  created: number;
  nonce: string;
  body: Uint8Array;
  /** [lower-case name, value] of each signed header, in order. */
  headers: [string, string][];
}

/** The signing string. */
export function signingString(input: SigningInput): string {
  const lines = [input.algorithm, input.method.toUpperCase(), input.target, String(input.created), input.nonce, bodyDigest(input.body)];
  for (const [name, value] of input.headers) lines.push(`${name}:${value.trim()}`);
  return lines.join("\n");
}

/** The HMAC of the signing string with `secret`. */
export function computeSignature(algorithm: string, secret: string, text: string): Buffer {
  return createHmac(ALGORITHMS[algorithm]!, secret).update(text).digest();
}

/**
 * Signs a request the way clients must (a reference for client code and tests): returns
 * the `Authorization` value for the given parts.
 */
export function signRequest(options: {
  algorithm?: "HMAC-SHA256" | "HMAC-SHA512";
  keyId: string;
  secret: string;
  method: string;
  target: string;
  body?: string | Uint8Array;
  headers?: Record<string, string>;
  created: number;
  nonce: string;
}): string {
  const algorithm = options.algorithm ?? "HMAC-SHA256";
  const body = typeof options.body === "string" ? new TextEncoder().encode(options.body) : (options.body ?? new Uint8Array());
  const headers = Object.entries(options.headers ?? {}).map(([name, value]) => [name.toLowerCase(), value] as [string, string]);
  const text = signingString({ algorithm, method: options.method, target: options.target, created: options.created, nonce: options.nonce, body, headers });
  const signature = computeSignature(algorithm, options.secret, text).toString("base64");
  const names = headers.map(([name]) => name).join(" ");
  return `${algorithm} keyId="${options.keyId}", created="${options.created}", nonce="${options.nonce}", headers="${names}", signature="${signature}"`;
}
