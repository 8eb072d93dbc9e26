/**
 * The split chooser: sticky keys land on stable sides, raising a canary's weight only
 * moves clients onto it, and Cookie headers are read the way browsers send them.
 */
import { expect, test } from "bun:test";
import type { Exchange } from "../../src/core/exchange.ts";
import { cookieValue, createSplit } from "../../src/router/split.ts";
import type { CompiledRoute } from "../../src/router/types.ts";

const stable = { name: "stable" } as unknown as CompiledRoute;
const canary = { name: "canary" } as unknown as CompiledRoute;

function exchangeFor(user: string): Exchange {
  return { request: new Request("http://gw/x", { headers: { "x-user": user } }), realClientIp: "", scheme: "http", responseHeaders: null } as unknown as Exchange;
}

function splitWith(canaryWeight: number) {
  return createSplit({
    sides: [
      { variant: stable, weight: 100 - canaryWeight },
      { variant: canary, weight: canaryWeight },
    ],
    rules: [],
    sticky: { by: "header", name: "x-user", setCookie: false, maxAgeSeconds: 0 },
  });
}

test("raising the canary from 5 % to 10 % and 50 % keeps every canary client on the canary", () => {
  const users = Array.from({ length: 2_000 }, (_, i) => `user-${i}`);
  const onCanary = (canaryWeight: number) => {
    const split = splitWith(canaryWeight);
    return new Set(users.filter((user) => split.choose(exchangeFor(user)) === canary));
  };
  const at5 = onCanary(5);
  const at10 = onCanary(10);
  const at50 = onCanary(50);
  for (const user of at5) expect(at10.has(user)).toBe(true);
  for (const user of at10) expect(at50.has(user)).toBe(true);
  // The shares are close to the weights.
  expect(at5.size / users.length).toBeGreaterThan(0.03);
  expect(at5.size / users.length).toBeLessThan(0.07);
  expect(at50.size / users.length).toBeGreaterThan(0.45);
  expect(at50.size / users.length).toBeLessThan(0.55);
});

test("a split whose weights add up to 0 cannot be built", () => {
  expect(() => createSplit({ sides: [{ variant: stable, weight: 0 }], rules: [], sticky: null })).toThrow("more than 0");
});

test("cookieValue finds a cookie among others, with or without spaces", () => {
  expect(cookieValue("a=1; tp_side=xyz; b=2", "tp_side")).toBe("xyz");
  expect(cookieValue("tp_side=xyz", "tp_side")).toBe("xyz");
  expect(cookieValue("a=1;tp_side=q", "tp_side")).toBe("q");
  expect(cookieValue("xtp_side=1", "tp_side")).toBeNull();
  expect(cookieValue(null, "tp_side")).toBeNull();
});
