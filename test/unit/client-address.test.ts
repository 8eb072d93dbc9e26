import { describe, expect, test } from "bun:test";
import { resolveClientAddress } from "../../src/core/client-address.ts";
import { compileCidrList } from "../../src/core/net.ts";

const trusted = compileCidrList(["10.0.0.0/8", "fd00::/8"]);
const resolve = (peer: string, xff: string | null) => resolveClientAddress(peer, xff, trusted);

describe("resolveClientAddress", () => {
  test("the peer is the client without a trusted proxy or header", () => {
    expect(resolve("192.0.2.1", "203.0.113.9")).toEqual({ ok: true, address: "192.0.2.1" });
    expect(resolve("10.0.0.1", null)).toEqual({ ok: true, address: "10.0.0.1" });
  });
  test("walks from the right past trusted hops", () => {
    expect(resolve("10.0.0.1", "203.0.113.9")).toEqual({ ok: true, address: "203.0.113.9" });
    expect(resolve("10.0.0.1", "198.51.100.1, 203.0.113.9, 10.2.3.4")).toEqual({ ok: true, address: "203.0.113.9" });
    expect(resolve("fd00::1", "2001:db8::5, fd12::9")).toEqual({ ok: true, address: "2001:db8::5" });
    expect(resolve("10.0.0.1", "10.0.0.9, 10.0.0.8")).toEqual({ ok: true, address: "10.0.0.9" });
  });
  test("ports and brackets are removed", () => {
    expect(resolve("10.0.0.1", "203.0.113.9:1234")).toEqual({ ok: true, address: "203.0.113.9" });
    expect(resolve("10.0.0.1", "[2001:db8::5]:80")).toEqual({ ok: true, address: "2001:db8::5" });
    expect(resolve("10.0.0.1", "[2001:db8::5]")).toEqual({ ok: true, address: "2001:db8::5" });
  });
  test("a malformed entry reached on the walk is reported", () => {
    expect(resolve("10.0.0.1", "hello")).toEqual({ ok: false, entry: "hello" });
    expect(resolve("10.0.0.1", "203.0.113.9,,10.0.0.2")).toEqual({ ok: false, entry: "" });
    expect(resolve("10.0.0.1", "[2001:db8::5]x")).toEqual({ ok: false, entry: "[2001:db8::5]x" });
    expect(resolve("10.0.0.1", "1.2.3.4:99999999")).toEqual({ ok: false, entry: "1.2.3.4:99999999" });
    expect(resolve("10.0.0.1", "x".repeat(500))).toEqual({ ok: false, entry: "x".repeat(64) });
    // Beyond the client, garbage is never read.
    expect(resolve("10.0.0.1", "junk, 203.0.113.9")).toEqual({ ok: true, address: "203.0.113.9" });
  });
  test("an empty header is no header", () => {
    expect(resolve("10.0.0.1", "")).toEqual({ ok: true, address: "10.0.0.1" });
  });
});
