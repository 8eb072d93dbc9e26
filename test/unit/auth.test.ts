/**
 * The shared pieces of authentication: the bounded expiring cache, Cache-Control
 * lifetimes, the JWKS refresh rules (max-age, unknown kid, the floor against kid
 * floods, keys kept when the server fails) against a real JWKS server on loopback with
 * a fake clock, Digest header parsing and nonces, and Basic credentials decoding.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { generateKeyPairSync } from "node:crypto";
import { exportJWK, type JWK } from "jose";
import { ExpiringCache } from "../../src/auth/cache.ts";
import { decodeBasic } from "../../src/auth/credentials-header.ts";
import { RemoteKeySet } from "../../src/auth/jwks.ts";
import { maxAgeOf, ProviderUnavailable } from "../../src/auth/remote.ts";
import { NonceKeeper, parseDigestParams } from "../../src/policies/digest-auth/digest.ts";

describe("ExpiringCache", () => {
  test("entries expire at their time and the oldest goes first when full", () => {
    let now = 1_000;
    const cache = new ExpiringCache<string>(2, () => now);
    cache.set("a", "A", 2_000);
    cache.set("b", "B", 5_000);
    cache.set("c", "C", 5_000);
    expect(cache.get("a")).toBeUndefined();
    expect(cache.get("b")).toBe("B");
    expect(cache.size).toBe(2);
    now = 5_000;
    expect(cache.get("b")).toBeUndefined();
    cache.set("d", "D", 4_000);
    expect(cache.get("d")).toBeUndefined();
    expect(new ExpiringCache<string>(0).size).toBe(0);
  });
});

describe("Cache-Control", () => {
  test("max-age and s-maxage in ms; no-store and no-cache are 0; absent is null", () => {
    expect(maxAgeOf("public, max-age=300")).toBe(300_000);
    expect(maxAgeOf("s-maxage=60, max-age=10")).toBe(60_000);
    expect(maxAgeOf("no-store")).toBe(0);
    expect(maxAgeOf("private, no-cache")).toBe(0);
    expect(maxAgeOf("public")).toBeNull();
    expect(maxAgeOf(null)).toBeNull();
  });
});

describe("RemoteKeySet", () => {
  let keys: JWK[] = [];
  let hits = 0;
  let failing = false;
  let server: ReturnType<typeof Bun.serve>;
  beforeAll(async () => {
    const a = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const b = generateKeyPairSync("ec", { namedCurve: "P-256" });
    keys = [{ ...(await exportJWK(a.publicKey)), kid: "a", alg: "ES256" }];
    keys.push({ ...(await exportJWK(b.publicKey)), kid: "b", alg: "ES256" });
    server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch() {
        hits++;
        if (failing) return new Response("down", { status: 500 });
        return Response.json({ keys: keys.slice(0, hits > 2 ? 2 : 1) }, { headers: { "cache-control": "max-age=60" } });
      },
    });
  });
  afterAll(() => server.stop(true));

  test("fetched once, kept for max-age, refetched for an unknown kid at most once per floor, kept when the server fails", async () => {
    let now = 0;
    const set = new RemoteKeySet(async () => `http://127.0.0.1:${server.port}/jwks`, { timeoutMs: 2_000, minRefreshMs: 10_000, defaultTtlMs: 600_000, maxTtlMs: 86_400_000 }, () => now);
    const header = (kid: string) => ({ alg: "ES256", kid });
    await set.getKey(header("a"), undefined);
    await set.getKey(header("a"), undefined);
    expect(hits).toBe(1);
    // Unknown kid within the floor: no fetch, the token is refused.
    now = 5_000;
    await expect(set.getKey(header("b"), undefined)).rejects.toThrow();
    expect(hits).toBe(1);
    // Past the floor: one fetch (this server adds kid b from its third answer on).
    now = 11_000;
    await expect(set.getKey(header("b"), undefined)).rejects.toThrow();
    expect(hits).toBe(2);
    // Past max-age (60 s from the last fetch): refetched, and now b is there.
    now = 72_000;
    await set.getKey(header("b"), undefined);
    expect(hits).toBe(3);
    // The server fails: the keys held stay in use.
    failing = true;
    now = 200_000;
    await set.getKey(header("a"), undefined);
    expect(hits).toBe(4);
  });

  test("with no keys at all, a failing server is ProviderUnavailable, asked at most once per floor", async () => {
    let now = 0;
    let asked = 0;
    const broken = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch() {
        asked++;
        return new Response("not json");
      },
    });
    try {
      const set = new RemoteKeySet(async () => `http://127.0.0.1:${broken.port}/jwks`, { timeoutMs: 1_000, minRefreshMs: 10_000, defaultTtlMs: 600_000, maxTtlMs: 86_400_000 }, () => now);
      await expect(set.getKey({ alg: "ES256", kid: "a" }, undefined)).rejects.toBeInstanceOf(ProviderUnavailable);
      now = 1_000;
      await expect(set.getKey({ alg: "ES256", kid: "a" }, undefined)).rejects.toBeInstanceOf(ProviderUnavailable);
      expect(asked).toBe(1);
      now = 11_000;
      await expect(set.getKey({ alg: "ES256", kid: "a" }, undefined)).rejects.toBeInstanceOf(ProviderUnavailable);
      expect(asked).toBe(2);
    } finally {
      broken.stop(true);
    }
  });
});

describe("Digest", () => {
  test("parameters: quoted, unquoted, escapes; malformed headers are null", () => {
    const params = parseDigestParams('Digest username="Mu\\"fasa", realm="a, b", nc=00000001, qop=auth, response="abc"')!;
    expect(params.get("username")).toBe('Mu"fasa');
    expect(params.get("realm")).toBe("a, b");
    expect(params.get("nc")).toBe("00000001");
    for (const bad of ["Basic x", "Digest", 'Digest a="x', "Digest a=1, a=2", "Digest =x", "Digest a=1 b=2"]) {
      expect(parseDigestParams(bad)).toBeNull();
    }
  });

  test("nonces: accepted while fresh, stale after their lifetime, invalid when forged or from another key", () => {
    let now = 1_700_000_000_000;
    const keeper = new NonceKeeper(Buffer.alloc(32, 1), 60_000, () => now);
    const nonce = keeper.issue();
    expect(keeper.check(nonce).result).toBe("ok");
    const other = new NonceKeeper(Buffer.alloc(32, 2), 60_000, () => now);
    expect(other.check(nonce).result).toBe("invalid");
    // A changed character in the MAC, and the same bytes spelled with other unused bits.
    expect(keeper.check(`${nonce.slice(0, 30)}${nonce[30] === "A" ? "B" : "A"}${nonce.slice(31)}`).result).toBe("invalid");
    const last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".indexOf(nonce[42]!);
    const sameBytes = `${nonce.slice(0, 42)}${"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last ^ 1]}`;
    expect(Buffer.from(sameBytes, "base64url").equals(Buffer.from(nonce, "base64url"))).toBe(true);
    expect(keeper.check(sameBytes).result).toBe("invalid");
    expect(keeper.check("short").result).toBe("invalid");
    now += 61_000;
    expect(keeper.check(nonce).result).toBe("stale");
  });
});

describe("Basic", () => {
  test("decodes UTF-8 user:password; refuses bad base64, bad UTF-8 and a missing colon", () => {
    expect(decodeBasic(Buffer.from("bö:pa:ss").toString("base64"))).toEqual({ username: "bö", password: "pa:ss" });
    expect(decodeBasic("!!!!")).toBeNull();
    expect(decodeBasic("YW5h")).toBeNull();
    expect(decodeBasic(Buffer.from([0xff, 0x3a, 0x41]).toString("base64"))).toBeNull();
    expect(decodeBasic(Buffer.from(":x").toString("base64"))).toBeNull();
  });
});
