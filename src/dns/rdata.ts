/**
 * RDATA of the record types d2box deals with: A, AAAA, PTR, DHCID (opaque,
 * RFC 4701), TSIG (RFC 8945 §4.2), and raw bytes for everything else —
 * including the empty RDATA of RFC 2136 meta-records ("delete RRset",
 * "RRset exists", "name in use").
 */
import { RRType } from './codes.js';
import { DnsError, malformed, ok, type Result } from './errors.js';
import { decodeName, Name } from './name.js';
import { formatIPv6, parseIPv4, parseIPv6, withoutZone } from './ip-address.js';

export interface TsigRdata {
  algorithm: Name;
  /** Seconds since the epoch, 48 bits. */
  timeSigned: number;
  fudge: number;
  mac: Uint8Array;
  originalId: number;
  error: number;
  otherData: Uint8Array;
}

export type Rdata =
  | { kind: 'A'; address: string }
  | { kind: 'AAAA'; address: string }
  | { kind: 'PTR'; name: Name }
  | { kind: 'DHCID'; data: Uint8Array }
  | { kind: 'TSIG'; tsig: TsigRdata }
  /** Any other type, or an empty RDATA of any type. Never compressed. */
  | { kind: 'raw'; data: Uint8Array };

export const EMPTY_RDATA: Rdata = Object.freeze({ kind: 'raw', data: new Uint8Array(0) }) as Rdata;

const rdataType: Record<Exclude<Rdata['kind'], 'raw'>, number> = {
  A: RRType.A,
  AAAA: RRType.AAAA,
  PTR: RRType.PTR,
  DHCID: RRType.DHCID,
  TSIG: RRType.TSIG,
};

function ipv4Bytes(address: string): Buffer {
  const bytes = parseIPv4(address);
  if (!bytes) throw new DnsError('invalid-argument', `not an IPv4 address: ${address}`);
  return Buffer.from(bytes);
}

function ipv6Bytes(address: string): Buffer {
  const bytes = parseIPv6(withoutZone(address));
  if (!bytes) throw new DnsError('invalid-argument', `not an IPv6 address: ${address}`);
  return Buffer.from(bytes);
}

/** Wire type an Rdata kind belongs to (undefined for raw). */
export function rdataTypeOf(r: Rdata): number | undefined {
  return r.kind === 'raw' ? undefined : rdataType[r.kind];
}

/** Uncompressed wire form of RDATA. Throws `invalid-argument` on bad values. */
export function encodeRdata(r: Rdata): Buffer {
  switch (r.kind) {
    case 'A':
      return ipv4Bytes(r.address);
    case 'AAAA':
      return ipv6Bytes(r.address);
    case 'PTR':
      return r.name.toWire();
    case 'DHCID':
    case 'raw':
      if (r.data.length > 0xffff) throw new DnsError('invalid-argument', 'RDATA longer than 65535 octets');
      return Buffer.from(r.data);
    case 'TSIG':
      return encodeTsigRdata(r.tsig);
  }
}

export function encodeTsigRdata(t: TsigRdata): Buffer {
  if (!Number.isSafeInteger(t.timeSigned) || t.timeSigned < 0 || t.timeSigned > 0xffffffffffff) {
    throw new DnsError('invalid-argument', 'TSIG time signed out of 48-bit range');
  }
  const alg = t.algorithm.toWire();
  const out = Buffer.allocUnsafe(alg.length + 16 + t.mac.length + t.otherData.length);
  let o = alg.copy(out, 0);
  out.writeUIntBE(t.timeSigned, o, 6);
  o += 6;
  o = out.writeUInt16BE(t.fudge, o);
  o = out.writeUInt16BE(t.mac.length, o);
  out.set(t.mac, o);
  o += t.mac.length;
  o = out.writeUInt16BE(t.originalId, o);
  o = out.writeUInt16BE(t.error, o);
  o = out.writeUInt16BE(t.otherData.length, o);
  out.set(t.otherData, o);
  return out;
}

/** Types whose RDATA holds names that may be compressed (RFC 3597 §4): [prefix octets, name count, suffix octets]. */
const compressible: Record<number, [number, number, number]> = {
  [RRType.NS]: [0, 1, 0],
  [RRType.CNAME]: [0, 1, 0],
  [RRType.DNAME]: [0, 1, 0],
  [RRType.MX]: [2, 1, 0],
  [RRType.SOA]: [0, 2, 20],
};

/**
 * Decodes the RDATA of a record of `type` found at `msg[offset, offset+length)`.
 * Empty RDATA is always `raw` (RFC 2136 meta-records). Never throws.
 */
export function decodeRdata(msg: Uint8Array, offset: number, length: number, type: number): Result<Rdata> {
  const end = offset + length;
  if (end > msg.length) return malformed(`RDATA at ${offset} runs past the end of the message`);
  if (length === 0) return ok({ kind: 'raw', data: new Uint8Array(0) });
  const bytes = msg.subarray(offset, end);
  switch (type) {
    case RRType.A:
      if (length !== 4) return malformed(`A RDATA of ${length} octets`);
      return ok({ kind: 'A', address: Array.from(bytes).join('.') });
    case RRType.AAAA:
      if (length !== 16) return malformed(`AAAA RDATA of ${length} octets`);
      return ok({ kind: 'AAAA', address: formatIPv6(bytes) });
    case RRType.PTR: {
      const n = decodeName(msg, offset);
      if (!n.ok) return n;
      if (n.value.next !== end) return malformed(`PTR RDATA length ${length} does not match its name`);
      return ok({ kind: 'PTR', name: n.value.name });
    }
    case RRType.DHCID:
      return ok({ kind: 'DHCID', data: Uint8Array.from(bytes) });
    case RRType.TSIG: {
      const t = decodeTsigRdata(msg, offset, length);
      if (!t.ok) return t;
      return ok({ kind: 'TSIG', tsig: t.value });
    }
  }
  const shape = compressible[type];
  if (shape) {
    // Decompress embedded names so that `raw` RDATA is always self-contained.
    const [prefix, names, suffix] = shape;
    if (length < prefix) return malformed(`RDATA of type ${type} too short`);
    const parts: Uint8Array[] = [bytes.subarray(0, prefix)];
    let pos = offset + prefix;
    for (let i = 0; i < names; i++) {
      const n = decodeName(msg, pos);
      if (!n.ok) return n;
      if (n.value.next > end) return malformed(`RDATA of type ${type} runs past its length`);
      parts.push(n.value.name.toWire());
      pos = n.value.next;
    }
    if (end - pos !== suffix) return malformed(`RDATA of type ${type} has a wrong length`);
    parts.push(msg.subarray(pos, end));
    return ok({ kind: 'raw', data: Uint8Array.from(Buffer.concat(parts)) });
  }
  return ok({ kind: 'raw', data: Uint8Array.from(bytes) });
}

function u16(msg: Uint8Array, o: number): number {
  return (msg[o]! << 8) | msg[o + 1]!;
}

export function decodeTsigRdata(msg: Uint8Array, offset: number, length: number): Result<TsigRdata> {
  const end = offset + length;
  const n = decodeName(msg, offset);
  if (!n.ok) return n;
  let o = n.value.next;
  if (o + 10 > end) return malformed('TSIG RDATA truncated');
  const timeSigned = msg[o]! * 2 ** 40 + msg[o + 1]! * 2 ** 32 + ((msg[o + 2]! << 24) >>> 0) + (msg[o + 3]! << 16) + (msg[o + 4]! << 8) + msg[o + 5]!;
  o += 6;
  const fudge = u16(msg, o);
  const macSize = u16(msg, o + 2);
  o += 4;
  if (o + macSize + 6 > end) return malformed('TSIG MAC runs past the RDATA');
  const mac = Uint8Array.from(msg.subarray(o, o + macSize));
  o += macSize;
  const originalId = u16(msg, o);
  const error = u16(msg, o + 2);
  const otherLen = u16(msg, o + 4);
  o += 6;
  if (o + otherLen !== end) return malformed('TSIG other data does not match the RDATA length');
  const otherData = Uint8Array.from(msg.subarray(o, end));
  return ok({ algorithm: n.value.name, timeSigned, fudge, mac, originalId, error, otherData });
}

/** Shorthands for building RDATA. */
export const rdataA = (address: string): Rdata => ({ kind: 'A', address });
export const rdataAAAA = (address: string): Rdata => ({ kind: 'AAAA', address });
export const rdataPTR = (name: Name | string): Rdata => ({ kind: 'PTR', name: typeof name === 'string' ? Name.fromText(name) : name });
/** DHCID RDATA (RFC 4701), opaque: identifier type, digest type, digest. Hex text or bytes. */
export const rdataDHCID = (data: Uint8Array | string): Rdata => {
  if (typeof data === 'string') {
    if (!/^(?:[0-9a-fA-F]{2})+$/.test(data)) throw new DnsError('invalid-argument', 'DHCID must be an even number of hex digits');
    return { kind: 'DHCID', data: Uint8Array.from(Buffer.from(data, 'hex')) };
  }
  return { kind: 'DHCID', data: Uint8Array.from(data) };
};
