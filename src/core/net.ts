/**
 * Client address helpers: CIDR ranges for IPv4 and IPv6, parsed once at load.
 */

/** A compiled CIDR range; `contains` tests an address string. */
export interface CidrRange {
  readonly text: string;
  contains(address: string): boolean;
}

/** Parses an IPv4 or IPv6 address to a bigint and its width in bits, or null. */
export function parseAddress(address: string): { value: bigint; bits: 32 | 128 } | null {
  // IPv4-mapped IPv6 (::ffff:1.2.3.4) is treated as the IPv4 address it carries.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) address = mapped[1]!;
  if (address.includes(".") && !address.includes(":")) {
    const parts = address.split(".");
    if (parts.length !== 4) return null;
    let value = 0n;
    for (const part of parts) {
      if (!/^\d{1,3}$/.test(part) || Number(part) > 255) return null;
      value = (value << 8n) | BigInt(part);
    }
    return { value, bits: 32 };
  }
  if (!address.includes(":")) return null;
  const zone = address.indexOf("%");
  if (zone >= 0) address = address.slice(0, zone);
  const halves = address.split("::");
  if (halves.length > 2) return null;
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const groups = [...head, ...Array(halves.length === 2 ? missing : 0).fill("0"), ...tail];
  let value = 0n;
  for (const group of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(group)) return null;
    value = (value << 16n) | BigInt(parseInt(group, 16));
  }
  return { value, bits: 128 };
}

/** Compiles `10.0.0.0/8`, `2001:db8::/32` or a single address; throws on bad input. */
export function parseCidr(text: string): CidrRange {
  const [addressText, prefixText] = text.split("/");
  const address = parseAddress(addressText ?? "");
  if (!address) throw new Error(`"${text}" is not an IP address or CIDR range`);
  const prefix = prefixText === undefined ? address.bits : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > address.bits) {
    throw new Error(`"${text}" has a prefix length outside 0..${address.bits}`);
  }
  const shift = BigInt(address.bits - prefix);
  const network = address.value >> shift;
  return {
    text,
    contains(candidate: string): boolean {
      const parsed = parseAddress(candidate);
      if (!parsed || parsed.bits !== address.bits) return false;
      return parsed.value >> shift === network;
    },
  };
}
