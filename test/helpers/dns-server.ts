/**
 * Test helper: a DNS server on 127.0.0.1 (UDP, node:dgram) whose records the test
 * sets and changes: A, AAAA and SRV answers with chosen TTLs, "no such name" for
 * unknown names, or no answer at all while `silent`. It counts the queries it gets.
 *
 * The encoder is written here on its own (no name compression), independent of the
 * gateway's decoder, so that a mistake in one is not mirrored in the other.
 */
import { createSocket, type Socket } from "node:dgram";

export type TestRecord =
  | { type: "A" | "AAAA"; address: string; ttl: number }
  | { type: "SRV"; priority: number; weight: number; port: number; target: string; ttl: number };

export interface TestDnsServer {
  port: number;
  /** `127.0.0.1:<port>`, as the gateway's `resolver` setting. */
  address: string;
  /** Records by lower-case name; replace freely. */
  records: Map<string, TestRecord[]>;
  /** While true, queries get no answer (a resolver that is down). */
  silent: boolean;
  /** Answer SERVFAIL to everything while true. */
  failing: boolean;
  /** Queries received, as `name TYPE`. */
  queries: string[];
  stop(): void;
}

const TYPES: Record<number, string> = { 1: "A", 28: "AAAA", 33: "SRV" };

export async function startDnsServer(): Promise<TestDnsServer> {
  const socket: Socket = createSocket("udp4");
  const server: TestDnsServer = {
    port: 0,
    address: "",
    records: new Map(),
    silent: false,
    failing: false,
    queries: [],
    stop: () => socket.close(),
  };
  socket.on("message", (query, from) => {
    const parsed = parseQuestion(query);
    if (!parsed) return;
    server.queries.push(`${parsed.name} ${TYPES[parsed.type] ?? parsed.type}`);
    if (server.silent) return;
    const known = server.records.get(parsed.name);
    const rcode = server.failing ? 2 : known === undefined ? 3 : 0;
    const wanted = (known ?? []).filter((record) => TYPES[parsed.type] === record.type);
    socket.send(answer(query, parsed.questionEnd, rcode, parsed.name, wanted), from.port, from.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", () => resolve()));
  server.port = socket.address().port;
  server.address = `127.0.0.1:${server.port}`;
  return server;
}

function parseQuestion(query: Buffer): { name: string; type: number; questionEnd: number } | null {
  if (query.length < 17) return null;
  const labels: string[] = [];
  let at = 12;
  while (query[at] !== 0) {
    const length = query[at]!;
    labels.push(query.subarray(at + 1, at + 1 + length).toString("latin1"));
    at += 1 + length;
    if (at >= query.length) return null;
  }
  at++;
  return { name: labels.join(".").toLowerCase(), type: query.readUInt16BE(at), questionEnd: at + 4 };
}

function encodeName(name: string): Buffer {
  const parts = name.split(".").filter((part) => part !== "").map((part) => Buffer.concat([Buffer.from([part.length]), Buffer.from(part)]));
  return Buffer.concat([...parts, Buffer.from([0])]);
}

function answer(query: Buffer, questionEnd: number, rcode: number, name: string, records: TestRecord[]): Buffer {
  const header = Buffer.alloc(12);
  query.copy(header, 0, 0, 2); // id
  header.writeUInt16BE(0x8180 | rcode, 2); // response, recursion desired and available
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(records.length, 6);
  const question = query.subarray(12, questionEnd);
  const body = records.map((record) => {
    let type: number;
    let data: Buffer;
    if (record.type === "A") {
      type = 1;
      data = Buffer.from(record.address.split(".").map(Number));
    } else if (record.type === "AAAA") {
      type = 28;
      data = ipv6Bytes(record.address);
    } else if (record.type === "SRV") {
      type = 33;
      const fixed = Buffer.alloc(6);
      fixed.writeUInt16BE(record.priority, 0);
      fixed.writeUInt16BE(record.weight, 2);
      fixed.writeUInt16BE(record.port, 4);
      data = Buffer.concat([fixed, encodeName(record.target)]);
    } else {
      throw new Error("unknown record type");
    }
    const meta = Buffer.alloc(10);
    meta.writeUInt16BE(type, 0);
    meta.writeUInt16BE(1, 2);
    meta.writeUInt32BE(record.ttl, 4);
    meta.writeUInt16BE(data.length, 8);
    return Buffer.concat([encodeName(name), meta, data]);
  });
  return Buffer.concat([header, question, ...body]);
}

function ipv6Bytes(address: string): Buffer {
  const [head, tail] = address.includes("::") ? address.split("::") : [address, null];
  const headGroups = head ? head.split(":") : [];
  const tailGroups = tail ? tail.split(":") : [];
  const zeros = tail === null ? 0 : 8 - headGroups.length - tailGroups.length;
  const groups = [...headGroups, ...Array(zeros).fill("0"), ...tailGroups];
  const out = Buffer.alloc(16);
  groups.forEach((group, i) => out.writeUInt16BE(parseInt(group || "0", 16), i * 2));
  return out;
}
