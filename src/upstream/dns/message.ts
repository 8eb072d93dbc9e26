/**
 * DNS messages (RFC 1035) for service discovery: a query for one name and type, and
 * the records of an answer (A, AAAA, SRV), with name compression followed.
 *
 * Queries carry an EDNS(0) OPT record (RFC 6891) offering 4096-byte UDP answers, so
 * that a service with many addresses is not truncated at 512 bytes.
 */

/** Record types discovery asks for. */
export const RecordType = { A: 1, AAAA: 28, SRV: 33 } as const;
export type RecordTypeName = keyof typeof RecordType;

/** One answer record that discovery uses; `ttl` in seconds. */
export type DnsRecord =
  | { type: "A" | "AAAA"; name: string; ttl: number; address: string }
  | { type: "SRV"; name: string; ttl: number; priority: number; weight: number; port: number; target: string };

/** A decoded answer: its response code and the records of the answer and additional sections. */
export interface DnsAnswer {
  id: number;
  /** 0 no error, 2 server failure, 3 no such name (NXDOMAIN), 5 refused, ... */
  rcode: number;
  truncated: boolean;
  answers: DnsRecord[];
  additional: DnsRecord[];
}

/** Encodes a recursive query for `name` of `type` with message id `id`. */
export function encodeQuery(id: number, name: string, type: RecordTypeName): Uint8Array {
  const labels = name.replace(/\.$/, "").split(".").filter((label) => label !== "");
  const nameBytes = labels.reduce((sum, label) => sum + 1 + Buffer.byteLength(label), 1);
  const out = new Uint8Array(12 + nameBytes + 4 + 11);
  const view = new DataView(out.buffer);
  view.setUint16(0, id);
  view.setUint16(2, 0x0100); // standard query, recursion desired
  view.setUint16(4, 1); // one question
  view.setUint16(10, 1); // one additional record: EDNS(0) OPT
  let at = 12;
  for (const label of labels) {
    const bytes = Buffer.from(label);
    if (bytes.length > 63) throw new Error(`DNS label "${label}" is longer than 63 bytes`);
    out[at++] = bytes.length;
    out.set(bytes, at);
    at += bytes.length;
  }
  out[at++] = 0;
  view.setUint16(at, RecordType[type]);
  view.setUint16(at + 2, 1); // class IN
  at += 4;
  // OPT: root name, type 41, UDP payload size 4096, extended rcode/flags 0, no data.
  out[at] = 0;
  view.setUint16(at + 1, 41);
  view.setUint16(at + 3, 4096);
  return out;
}

/** Decodes a response; throws on a malformed message. */
export function decodeAnswer(message: Uint8Array): DnsAnswer {
  const view = new DataView(message.buffer, message.byteOffset, message.byteLength);
  if (message.length < 12) throw new Error("DNS message shorter than its header");
  const id = view.getUint16(0);
  const flags = view.getUint16(2);
  if ((flags & 0x8000) === 0) throw new Error("DNS message is not a response");
  const counts = [view.getUint16(4), view.getUint16(6), view.getUint16(8), view.getUint16(10)];
  let at = 12;
  for (let i = 0; i < counts[0]!; i++) {
    at = readName(message, at).next + 4;
  }
  const sections: DnsRecord[][] = [[], [], []];
  for (let section = 0; section < 3; section++) {
    for (let i = 0; i < counts[section + 1]!; i++) {
      const owner = readName(message, at);
      at = owner.next;
      if (at + 10 > message.length) throw new Error("DNS record runs past the message");
      const type = view.getUint16(at);
      const ttl = view.getUint32(at + 4);
      const length = view.getUint16(at + 8);
      const data = at + 10;
      if (data + length > message.length) throw new Error("DNS record data runs past the message");
      at = data + length;
      const record = decodeRecord(message, view, type, owner.name, ttl, data, length);
      if (record) sections[section]!.push(record);
    }
  }
  return { id, rcode: flags & 0x0f, truncated: (flags & 0x0200) !== 0, answers: sections[0]!, additional: sections[2]! };
}

function decodeRecord(message: Uint8Array, view: DataView, type: number, name: string, ttl: number, at: number, length: number): DnsRecord | null {
  if (type === RecordType.A && length === 4) {
    return { type: "A", name, ttl, address: `${message[at]}.${message[at + 1]}.${message[at + 2]}.${message[at + 3]}` };
  }
  if (type === RecordType.AAAA && length === 16) {
    const groups: string[] = [];
    for (let i = 0; i < 8; i++) groups.push(view.getUint16(at + i * 2).toString(16));
    return { type: "AAAA", name, ttl, address: compressIpv6(groups) };
  }
  if (type === RecordType.SRV && length >= 7) {
    const target = readName(message, at + 6).name;
    return { type: "SRV", name, ttl, priority: view.getUint16(at), weight: view.getUint16(at + 2), port: view.getUint16(at + 4), target };
  }
  return null;
}

/** Reads a (possibly compressed) name at `start`; `next` is where the record continues. */
function readName(message: Uint8Array, start: number): { name: string; next: number } {
  const labels: string[] = [];
  let at = start;
  let next = -1;
  // Each pointer must go backwards, so a loop of pointers cannot run forever.
  let limit = start;
  for (;;) {
    if (at >= message.length) throw new Error("DNS name runs past the message");
    const length = message[at]!;
    if (length === 0) {
      if (next < 0) next = at + 1;
      break;
    }
    if ((length & 0xc0) === 0xc0) {
      if (at + 1 >= message.length) throw new Error("DNS name pointer runs past the message");
      const target = ((length & 0x3f) << 8) | message[at + 1]!;
      if (target >= limit) throw new Error("DNS name pointer does not point backwards");
      if (next < 0) next = at + 2;
      limit = target;
      at = target;
      continue;
    }
    if ((length & 0xc0) !== 0) throw new Error("DNS name has an unknown label type");
    if (at + 1 + length > message.length) throw new Error("DNS label runs past the message");
    labels.push(Buffer.from(message.subarray(at + 1, at + 1 + length)).toString("latin1"));
    at += 1 + length;
  }
  return { name: labels.join(".").toLowerCase(), next };
}

/** The shortest text form of an IPv6 address given as eight hex groups (RFC 5952). */
function compressIpv6(groups: string[]): string {
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  if (bestStart < 0) return groups.join(":");
  return `${groups.slice(0, bestStart).join(":")}::${groups.slice(bestStart + bestLength).join(":")}`;
}
