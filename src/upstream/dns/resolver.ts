/**
 * A small DNS client over UDP (node:dgram) for service discovery: asks the configured
 * servers in turn for A, AAAA or SRV records and returns them with their TTLs.
 *
 * Names are looked up as written (no search domains): give fully qualified names such
 * as `orders.shop.svc.cluster.local`.
 */
import { createSocket } from "node:dgram";
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { decodeAnswer, encodeQuery, type DnsAnswer, type RecordTypeName } from "./message.ts";

/** A DNS server address. */
export interface DnsServer {
  host: string;
  port: number;
}

/** Parses `127.0.0.1`, `127.0.0.1:5353`, `[::1]:53` or `::1`; null when it is not an IP address with an optional port. */
export function parseDnsServer(text: string): DnsServer | null {
  let host = text;
  let port = 53;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracketed) {
    host = bracketed[1]!;
    if (bracketed[2]) port = Number(bracketed[2]);
  } else if (isIP(text) === 0) {
    const colon = text.lastIndexOf(":");
    if (colon < 0) return null;
    host = text.slice(0, colon);
    port = Number(text.slice(colon + 1));
  }
  if (isIP(host) === 0 || !Number.isInteger(port) || port < 1 || port > 65535) return null;
  return { host, port };
}

/** The nameservers of /etc/resolv.conf (127.0.0.1:53 when it names none). */
export function systemDnsServers(path = "/etc/resolv.conf"): DnsServer[] {
  let text = "";
  try {
    text = readFileSync(path, "utf8");
  } catch {
    // No resolv.conf: fall back to a local resolver.
  }
  const servers = text
    .split("\n")
    .map((line) => /^\s*nameserver\s+(\S+)/.exec(line)?.[1])
    .filter((value): value is string => value !== undefined)
    .map((value) => parseDnsServer(value.replace(/%.*$/, "")))
    .filter((server): server is DnsServer => server !== null);
  return servers.length > 0 ? servers : [{ host: "127.0.0.1", port: 53 }];
}

/** Why a lookup failed. */
export class DnsError extends Error {}

/**
 * Asks `servers` in turn (each once) for `name`'s records of `type`; the first server
 * that answers wins. A server that answers "no such name" is an answer (no records).
 */
export async function queryDns(servers: readonly DnsServer[], name: string, type: RecordTypeName, timeoutMs: number): Promise<DnsAnswer> {
  let lastError: unknown = null;
  for (const server of servers) {
    try {
      const answer = await queryOnce(server, name, type, timeoutMs);
      if (answer.rcode === 0 || answer.rcode === 3) return answer;
      lastError = new DnsError(`${server.host}:${server.port} answered ${RCODES[answer.rcode] ?? `rcode ${answer.rcode}`} for ${name} ${type}`);
    } catch (error) {
      lastError = error;
    }
  }
  throw lastError instanceof Error ? lastError : new DnsError(String(lastError));
}

const RCODES: Record<number, string> = { 1: "FORMERR", 2: "SERVFAIL", 4: "NOTIMP", 5: "REFUSED" };

function queryOnce(server: DnsServer, name: string, type: RecordTypeName, timeoutMs: number): Promise<DnsAnswer> {
  return new Promise((resolve, reject) => {
    const id = (Math.random() * 0x10000) | 0;
    const socket = createSocket(isIP(server.host) === 6 ? "udp6" : "udp4");
    let done = false;
    const finish = (error: Error | null, answer?: DnsAnswer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.close();
      if (error) reject(error);
      else resolve(answer!);
    };
    const timer = setTimeout(() => finish(new DnsError(`no answer from ${server.host}:${server.port} for ${name} ${type} within ${timeoutMs} ms`)), timeoutMs);
    socket.on("error", (error) => finish(new DnsError(`${server.host}:${server.port}: ${error.message}`)));
    socket.on("message", (message, from) => {
      // Only the server asked, with the id asked, is believed (a cheap guard against spoofing).
      if (from.port !== server.port) return;
      let answer: DnsAnswer;
      try {
        answer = decodeAnswer(message);
      } catch (error) {
        finish(new DnsError(`bad answer from ${server.host}:${server.port}: ${(error as Error).message}`));
        return;
      }
      if (answer.id !== id) return;
      if (answer.truncated) finish(new DnsError(`the answer from ${server.host}:${server.port} for ${name} ${type} was truncated`));
      else finish(null, answer);
    });
    try {
      socket.send(encodeQuery(id, name, type), server.port, server.host);
    } catch (error) {
      finish(new DnsError((error as Error).message));
    }
  });
}
