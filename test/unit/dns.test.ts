/**
 * The DNS client of service discovery against a real UDP DNS server on loopback:
 * A, AAAA and SRV records with their TTLs, "no such name", a silent server, and
 * compressed names as real servers send them.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { decodeAnswer, encodeQuery } from "../../src/upstream/dns/message.ts";
import { parseDnsServer, queryDns, systemDnsServers } from "../../src/upstream/dns/resolver.ts";
import { startDnsServer, type TestDnsServer } from "../helpers/dns-server.ts";

let dns: TestDnsServer;

beforeAll(async () => {
  dns = await startDnsServer();
  dns.records.set("api.test", [
    { type: "A", address: "10.0.0.1", ttl: 30 },
    { type: "A", address: "10.0.0.2", ttl: 10 },
    { type: "AAAA", address: "fd00::1:2", ttl: 20 },
  ]);
  dns.records.set("_http._tcp.api.test", [{ type: "SRV", priority: 0, weight: 5, port: 8080, target: "node-1.api.test", ttl: 15 }]);
});

afterAll(() => dns.stop());

const server = () => [parseDnsServer(dns.address)!];

test("A and AAAA records come back with their TTLs", async () => {
  const a = await queryDns(server(), "api.test", "A", 2_000);
  expect(a.rcode).toBe(0);
  expect(a.answers).toEqual([
    { type: "A", name: "api.test", ttl: 30, address: "10.0.0.1" },
    { type: "A", name: "api.test", ttl: 10, address: "10.0.0.2" },
  ]);
  const aaaa = await queryDns(server(), "API.test.", "AAAA", 2_000);
  expect(aaaa.answers).toEqual([{ type: "AAAA", name: "api.test", ttl: 20, address: "fd00::1:2" }]);
});

test("SRV records give priority, weight, port and target", async () => {
  const srv = await queryDns(server(), "_http._tcp.api.test", "SRV", 2_000);
  expect(srv.answers).toEqual([{ type: "SRV", name: "_http._tcp.api.test", ttl: 15, priority: 0, weight: 5, port: 8080, target: "node-1.api.test" }]);
});

test("an unknown name is an answer with no records (NXDOMAIN), not an error", async () => {
  const none = await queryDns(server(), "missing.test", "A", 2_000);
  expect(none.rcode).toBe(3);
  expect(none.answers).toEqual([]);
});

test("a server that does not answer fails after the timeout; SERVFAIL is an error", async () => {
  dns.silent = true;
  await expect(queryDns(server(), "api.test", "A", 200)).rejects.toThrow("no answer");
  dns.silent = false;
  dns.failing = true;
  await expect(queryDns(server(), "api.test", "A", 2_000)).rejects.toThrow("SERVFAIL");
  dns.failing = false;
});

test("compressed names (pointers) are followed; a pointer loop is refused", () => {
  // Answer for a.example A with the owner name as a pointer to the question (offset 12).
  const query = encodeQuery(7, "a.example", "A");
  const question = query.subarray(12, 12 + 11 + 4);
  const header = [0, 7, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
  const record = [0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7];
  const message = new Uint8Array([...header, ...question, ...record]);
  expect(decodeAnswer(message).answers).toEqual([{ type: "A", name: "a.example", ttl: 60, address: "192.0.2.7" }]);
  const loop = new Uint8Array([...header.slice(0, 5), 0, 0, 1, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4]);
  expect(() => decodeAnswer(loop)).toThrow("pointer");
});

test("server addresses: IPv4 and IPv6 with and without a port; resolv.conf nameservers", () => {
  expect(parseDnsServer("127.0.0.1")).toEqual({ host: "127.0.0.1", port: 53 });
  expect(parseDnsServer("127.0.0.1:5353")).toEqual({ host: "127.0.0.1", port: 5353 });
  expect(parseDnsServer("[::1]:5353")).toEqual({ host: "::1", port: 5353 });
  expect(parseDnsServer("::1")).toEqual({ host: "::1", port: 53 });
  expect(parseDnsServer("dns.example:53")).toBeNull();
  expect(parseDnsServer("127.0.0.1:0")).toBeNull();
  expect(systemDnsServers("/nonexistent/resolv.conf")).toEqual([{ host: "127.0.0.1", port: 53 }]);
});
