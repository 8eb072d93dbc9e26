import { describe, expect, test } from "bun:test";
import { createHmac } from "node:crypto";
import { bodyDigest, parseSignatureHeader, signRequest, signingString } from "./signature.ts";

describe("hmac signature", () => {
  test("the signing string is the documented lines", () => {
    const text = signingString({
      algorithm: "HMAC-SHA256",
      method: "post",
      target: "/orders?id=7",
      created: 1764500000,
      nonce: "4f1c0d7e9a2b44c1",
      body: new TextEncoder().encode("{}"),
      headers: [["host", " api.example.com "], ["x-tenant", "acme"]],
    });
    expect(text).toBe(
      ["HMAC-SHA256", "POST", "/orders?id=7", "1764500000", "4f1c0d7e9a2b44c1", "sha-256=:RBNvo1WzZ4oRRq0W9+hknpT7T8If536DEMBg9hyq/4o=:", "host:api.example.com", "x-tenant:acme"].join("\n"),
    );
    expect(bodyDigest(new Uint8Array())).toBe("sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:");
  });

  test("signRequest and parseSignatureHeader agree", () => {
    const header = signRequest({ keyId: "k1", secret: "0123456789abcdef", method: "GET", target: "/x", headers: { Host: "h" }, created: 100, nonce: "abcdefgh" });
    const parsed = parseSignatureHeader(header);
    if (parsed === null || typeof parsed === "string") throw new Error(String(parsed));
    expect(parsed).toMatchObject({ algorithm: "HMAC-SHA256", keyId: "k1", created: 100, nonce: "abcdefgh", headers: ["host"] });
    const expected = createHmac("sha256", "0123456789abcdef")
      .update(signingString({ algorithm: "HMAC-SHA256", method: "GET", target: "/x", created: 100, nonce: "abcdefgh", body: new Uint8Array(), headers: [["host", "h"]] }))
      .digest();
    expect(Buffer.from(parsed.signature).equals(expected)).toBe(true);
  });

  test("other schemes are not ours; malformed ones say why", () => {
    expect(parseSignatureHeader("Bearer abc")).toBeNull();
    expect(parseSignatureHeader("Basic dXNlcjpwYXNz")).toBeNull();
    expect(parseSignatureHeader("HMAC-SHA1 keyId=\"a\"")).toContain("not supported");
    expect(parseSignatureHeader("HMAC-SHA256")).toBe("parameter keyId is missing");
    expect(parseSignatureHeader('HMAC-SHA256 keyId="a" created="1"')).toContain('name="value" pairs');
    expect(parseSignatureHeader(`HMAC-SHA256 keyId="a", created="1", nonce="12345678", headers="h h", signature="AA=="`)).toContain("headers lists a name twice");
    expect(parseSignatureHeader(`HMAC-SHA256 keyId="${"a".repeat(5000)}"`)).toBe("the header is too long");
  });
});
