import { describe, expect, test } from "bun:test";
import { exchangeFor, policyContext } from "../../../test/helpers/exchange.ts";
import { ipRestrictionPolicy } from "./index.ts";

const create = (config: Parameters<typeof ipRestrictionPolicy.create>[0]) => ipRestrictionPolicy.create(config, policyContext());
const statusFor = async (config: Parameters<typeof ipRestrictionPolicy.create>[0], realClientIp: string) => {
  const outcome = await create(config).onRequest!(exchangeFor("http://gw/x", { clientIp: "10.0.0.1", realClientIp }));
  return outcome ? outcome.status : 200;
};

describe("ip-restriction policy", () => {
  test("decides on the real client address, deny before allow", async () => {
    const config = { allow: ["192.0.2.0/24", "2001:db8::/32"], deny: ["192.0.2.7"] };
    expect(await statusFor(config, "192.0.2.1")).toBe(200);
    expect(await statusFor(config, "::ffff:192.0.2.1")).toBe(200);
    expect(await statusFor(config, "2001:db8:ffff::1")).toBe(200);
    expect(await statusFor(config, "192.0.2.7")).toBe(403);
    expect(await statusFor(config, "10.0.0.1")).toBe(403);
    expect(await statusFor(config, "")).toBe(403);
  });
  test("deny alone lets everything else through", async () => {
    expect(await statusFor({ deny: ["0.0.0.0/0"] }, "2001:db8::1")).toBe(200);
    expect(await statusFor({ deny: ["0.0.0.0/0"] }, "8.8.8.8")).toBe(403);
  });
  test("validate names each bad range", () => {
    expect(ipRestrictionPolicy.validate!({ allow: ["10.0.0.0/8", "10.0.0.0/40"], deny: ["x"] })).toEqual([
      { path: ["allow", 1], message: '"10.0.0.0/40" has a prefix length outside 0..32' },
      { path: ["deny", 0], message: '"x" is not an IP address or CIDR range' },
    ]);
    expect(ipRestrictionPolicy.validate!({})).toEqual([{ path: [], message: "set allow, deny or both" }]);
  });
});
