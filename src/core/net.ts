/**
 * Client address helpers: CIDR ranges for IPv4 and IPv6, parsed once at load.
 *
 * An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`, also written `::ffff:a01:203`) is the
 * IPv4 address it carries, so a dual-stack socket's clients match IPv4 ranges. A range
 * written in that form with a prefix of 96 or more is the matching IPv4 range.
 */

/** An address as a number and its width in bits. */
export interface ParsedAddress {
  value: bigint;
  bits: 32 | 128;
}

/** A compiled CIDR range; `contains` tests an address string. */
export interface CidrRange {
  readonly text: string;
  contains(address: string): boolean;
  /** Tests an address already parsed by `parseAddress` (parse once, test many ranges). */
  containsAddress(address: ParsedAddress): boolean;
}

const IPV4_MAPPED_PREFIX = 0xffffn;
const IPV4_PART = /^(0|[1-9][0-9]{0,2})$/;
const IPV6_GROUP = /^[0-9a-fA-F]{1,4}$/;
const PREFIX_LENGTH = /^(0|[1-9][0-9]{0,2})$/;

function parseIpv4(text: string): bigint | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  let value = 0n;
  for (const part of parts) {
    // Leading zeros are refused: some tools read `010` as octal 8, others as 10.
    if (!IPV4_PART.test(part) || Number(part) > 255) return null;
    value = (value << 8n) | BigInt(part);
  }
  return value;
}

/** Parses without unmapping: `::ffff:1.2.3.4` stays a 128-bit address. */
function parseRaw(address: string): ParsedAddress | null {
  if (!address.includes(":")) {
    const value = parseIpv4(address);
    return value === null ? null : { value, bits: 32 };
  }
  const zone = address.indexOf("%");
  if (zone >= 0) address = address.slice(0, zone);
  const halves = address.split("::");
  if (halves.length > 2) return null;
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  // A trailing dotted IPv4 part (`::ffff:1.2.3.4`, `64:ff9b::1.2.3.4`) counts as two groups.
  const last = halves.length === 2 ? tail : head;
  let embedded: bigint | null = null;
  if (last.length > 0 && last[last.length - 1]!.includes(".")) {
    embedded = parseIpv4(last.pop()!);
    if (embedded === null) return null;
  }
  const groupCount = head.length + tail.length + (embedded === null ? 0 : 2);
  const missing = 8 - groupCount;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  let value = 0n;
  for (const group of [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill("0"), ...tail]) {
    if (!IPV6_GROUP.test(group)) return null;
    value = (value << 16n) | BigInt(parseInt(group, 16));
  }
  if (embedded !== null) value = (value << 32n) | embedded;
  return { value, bits: 128 };
}

function isMapped(address: ParsedAddress): boolean {
  return address.bits === 128 && address.value >> 32n === IPV4_MAPPED_PREFIX;
}

/**
 * Parses an IPv4 or IPv6 address to a number and its width in bits, or null.
 * IPv4-mapped IPv6 addresses come back as IPv4.
 */
export function parseAddress(address: string): ParsedAddress | null {
  const parsed = parseRaw(address);
  if (parsed && isMapped(parsed)) return { value: parsed.value & 0xffffffffn, bits: 32 };
  return parsed;
}

/** Compiles `10.0.0.0/8`, `2001:db8::/32` or a single address; throws on bad input. */
export function parseCidr(text: string): CidrRange {
  const parts = text.split("/");
  const address = parts.length <= 2 ? parseRaw(parts[0]!) : null;
  if (!address) throw new Error(`"${text}" is not an IP address or CIDR range`);
  const prefixText = parts[1];
  let prefix = address.bits as number;
  if (prefixText !== undefined) {
    if (!PREFIX_LENGTH.test(prefixText) || Number(prefixText) > address.bits) {
      throw new Error(`"${text}" has a prefix length outside 0..${address.bits}`);
    }
    prefix = Number(prefixText);
  }
  let range: ParsedAddress = address;
  if (isMapped(address) && prefix >= 96) {
    range = { value: address.value & 0xffffffffn, bits: 32 };
    prefix -= 96;
  }
  const bits = range.bits;
  const shift = BigInt(bits - prefix);
  const network = range.value >> shift;
  const containsAddress = (candidate: ParsedAddress) => candidate.bits === bits && candidate.value >> shift === network;
  return {
    text,
    containsAddress,
    contains(candidate: string): boolean {
      const parsed = parseAddress(candidate);
      return parsed !== null && containsAddress(parsed);
    },
  };
}

/** Compiles a list of ranges into one test that parses the address once. */
export function compileCidrList(texts: readonly string[]): (address: string) => boolean {
  const ranges = texts.map(parseCidr);
  return (address) => {
    const parsed = parseAddress(address);
    if (parsed === null) return false;
    for (const range of ranges) if (range.containsAddress(parsed)) return true;
    return false;
  };
}
