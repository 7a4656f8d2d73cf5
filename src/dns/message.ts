/**
 * DNS message codec (RFC 1035 §4.1, RFC 2136 §2 for UPDATE).
 *
 * The four sections keep RFC 1035's names; for an UPDATE they hold, in order,
 * the zone, prerequisite, update and additional sections (RFC 2136 §2). Names
 * are written uncompressed; decoding follows compression pointers. A TSIG
 * record, which must be the last of the additional section, is taken out of
 * `additional` on decode and returned in `tsig` with its byte offset, which
 * verification needs.
 *
 * `encodeMessage` throws `DnsError('invalid-argument')` for bad input built by
 * the caller; `decodeMessage` returns an error result and never throws.
 */
import { Opcode, RRClass, RRType } from './codes.js';
import { DnsError, malformed, ok, type Result } from './errors.js';
import { decodeName, Name, skipName } from './name.js';
import { decodeRdata, encodeRdata, rdataTypeOf, type Rdata, type TsigRdata } from './rdata.js';

export const HEADER_LENGTH = 12;
export const MAX_MESSAGE_LENGTH = 65535;

export interface MessageHeader {
  id: number;
  /** false = query/request, true = response. */
  qr: boolean;
  opcode: number;
  aa: boolean;
  tc: boolean;
  rd: boolean;
  ra: boolean;
  ad: boolean;
  cd: boolean;
  /** The 4-bit header RCODE. */
  rcode: number;
}

export interface Question {
  name: Name;
  type: number;
  class: number;
}

export interface ResourceRecord {
  name: Name;
  type: number;
  class: number;
  ttl: number;
  rdata: Rdata;
}

export interface Message extends MessageHeader {
  /** QUERY: question. UPDATE: zone (exactly one SOA-typed entry in a request). */
  question: Question[];
  /** QUERY: answer. UPDATE: prerequisite. */
  answer: ResourceRecord[];
  /** QUERY: authority. UPDATE: update. */
  authority: ResourceRecord[];
  /** Additional data, without the TSIG record. */
  additional: ResourceRecord[];
}

export interface TsigRecord {
  /** The key name (owner of the TSIG RR). */
  name: Name;
  class: number;
  ttl: number;
  rdata: TsigRdata;
  /** Offset of the TSIG RR in the message: the MAC covers the bytes before it. */
  offset: number;
}

export interface DecodedMessage extends Message {
  tsig?: TsigRecord;
}

export function emptyHeader(id = 0, opcode: number = Opcode.QUERY): MessageHeader {
  return { id, qr: false, opcode, aa: false, tc: false, rd: false, ra: false, ad: false, cd: false, rcode: 0 };
}

function checkU16(v: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new DnsError('invalid-argument', `${what} out of range: ${v}`);
}

/** Checks a record and returns its RDATA in wire form (opaque RDATA as is, not copied). */
function recordRdata(rr: ResourceRecord): Uint8Array {
  checkU16(rr.type, 'RR type');
  checkU16(rr.class, 'RR class');
  if (!Number.isInteger(rr.ttl) || rr.ttl < 0 || rr.ttl > 0xffffffff) throw new DnsError('invalid-argument', `TTL out of range: ${rr.ttl}`);
  const t = rdataTypeOf(rr.rdata);
  if (t !== undefined && t !== rr.type) {
    throw new DnsError('invalid-argument', `RDATA of kind ${rr.rdata.kind} in a record of type ${rr.type}`);
  }
  const r = rr.rdata;
  if (r.kind === 'raw' || r.kind === 'DHCID') {
    if (r.data.length > 0xffff) throw new DnsError('invalid-argument', 'RDATA longer than 65535 octets');
    return r.data;
  }
  return encodeRdata(r);
}

function writeRecord(rr: ResourceRecord, rdata: Uint8Array, out: Buffer, offset: number): number {
  let o = rr.name.writeTo(out, offset);
  o = out.writeUInt16BE(rr.type, o);
  o = out.writeUInt16BE(rr.class, o);
  o = out.writeUInt32BE(rr.ttl, o);
  o = out.writeUInt16BE(rdata.length, o);
  out.set(rdata, o);
  return o + rdata.length;
}

export function encodeHeader(h: MessageHeader, counts: [number, number, number, number]): Buffer {
  checkHeader(h, counts);
  const out = Buffer.allocUnsafe(HEADER_LENGTH);
  writeHeader(h, counts, out);
  return out;
}

function checkHeader(h: MessageHeader, counts: readonly number[]): void {
  checkU16(h.id, 'message id');
  if (!Number.isInteger(h.opcode) || h.opcode < 0 || h.opcode > 15) throw new DnsError('invalid-argument', `opcode out of range: ${h.opcode}`);
  if (!Number.isInteger(h.rcode) || h.rcode < 0 || h.rcode > 15) throw new DnsError('invalid-argument', `header rcode out of range: ${h.rcode}`);
  for (let i = 0; i < 4; i++) checkU16(counts[i]!, 'section count');
}

/** Writes the 12-octet header (checked) at the start of `out`, every octet of it. */
function writeHeader(h: MessageHeader, counts: readonly number[], out: Buffer): void {
  out.writeUInt16BE(h.id, 0);
  out[2] = (h.qr ? 0x80 : 0) | (h.opcode << 3) | (h.aa ? 0x04 : 0) | (h.tc ? 0x02 : 0) | (h.rd ? 0x01 : 0);
  out[3] = (h.ra ? 0x80 : 0) | (h.ad ? 0x20 : 0) | (h.cd ? 0x10 : 0) | h.rcode;
  for (let i = 0; i < 4; i++) out.writeUInt16BE(counts[i]!, 4 + 2 * i);
}

/** Wire form of a message, names uncompressed. */
export function encodeMessage(m: Message): Buffer {
  // One pass to check and size everything, one buffer, one pass to write it.
  const counts = [m.question.length, m.answer.length, m.authority.length, m.additional.length];
  checkHeader(m, counts);
  let length = HEADER_LENGTH;
  for (const q of m.question) {
    checkU16(q.type, 'question type');
    checkU16(q.class, 'question class');
    length += q.name.wireLength + 4;
  }
  const sections = [m.answer, m.authority, m.additional];
  const rdatas: Uint8Array[] = [];
  for (const s of sections) {
    for (const rr of s) {
      const rdata = recordRdata(rr);
      rdatas.push(rdata);
      length += rr.name.wireLength + 10 + rdata.length;
    }
  }
  if (length > MAX_MESSAGE_LENGTH) throw new DnsError('invalid-argument', `message longer than ${MAX_MESSAGE_LENGTH} octets`);
  const out = Buffer.allocUnsafe(length);
  writeHeader(m, counts, out);
  let o = HEADER_LENGTH;
  for (const q of m.question) {
    o = q.name.writeTo(out, o);
    o = out.writeUInt16BE(q.type, o);
    o = out.writeUInt16BE(q.class, o);
  }
  let k = 0;
  for (const s of sections) for (const rr of s) o = writeRecord(rr, rdatas[k++]!, out, o);
  return out;
}

/** Reads only the header; null when fewer than 12 octets. Never throws. */
export function decodeHeader(msg: Uint8Array): (MessageHeader & { counts: [number, number, number, number] }) | null {
  if (msg.length < HEADER_LENGTH) return null;
  const u16 = (o: number) => (msg[o]! << 8) | msg[o + 1]!;
  const b2 = msg[2]!;
  const b3 = msg[3]!;
  return {
    id: u16(0),
    qr: (b2 & 0x80) !== 0,
    opcode: (b2 >> 3) & 0x0f,
    aa: (b2 & 0x04) !== 0,
    tc: (b2 & 0x02) !== 0,
    rd: (b2 & 0x01) !== 0,
    ra: (b3 & 0x80) !== 0,
    ad: (b3 & 0x20) !== 0,
    cd: (b3 & 0x10) !== 0,
    rcode: b3 & 0x0f,
    counts: [u16(4), u16(6), u16(8), u16(10)],
  };
}

/**
 * Decodes a whole message. Any structural problem — truncation, bad names,
 * bad compression pointers, RDATA that does not fit its type, trailing
 * garbage, a TSIG record that is not the last one — is an error result.
 * Never throws.
 */
export function decodeMessage(msg: Uint8Array): Result<DecodedMessage> {
  try {
    return decodeUnsafe(msg);
  } catch (e) {
    // Defensive: the decoder checks every bound; reaching here is a bug, still reported as a value.
    return malformed(`decoder failure: ${(e as Error).message}`);
  }
}

function decodeUnsafe(msg: Uint8Array): Result<DecodedMessage> {
  const h = decodeHeader(msg);
  if (!h) return malformed(`message shorter than the ${HEADER_LENGTH}-octet header (${msg.length})`);
  const [qd, an, ns, ar] = h.counts;
  // Every question takes at least 5 octets and every RR at least 11: reject impossible counts early.
  if (HEADER_LENGTH + qd * 5 + (an + ns + ar) * 11 > msg.length) return malformed('section counts exceed the message length');
  let pos = HEADER_LENGTH;
  const u16 = (o: number) => (msg[o]! << 8) | msg[o + 1]!;
  const question: Question[] = [];
  for (let i = 0; i < qd; i++) {
    const n = decodeName(msg, pos);
    if (!n.ok) return n;
    pos = n.value.next;
    if (pos + 4 > msg.length) return malformed('question truncated');
    question.push({ name: n.value.name, type: u16(pos), class: u16(pos + 2) });
    pos += 4;
  }
  const sections: ResourceRecord[][] = [[], [], []];
  let tsig: TsigRecord | undefined;
  const counts = [an, ns, ar];
  for (let s = 0; s < 3; s++) {
    for (let i = 0; i < counts[s]!; i++) {
      const start = pos;
      const n = decodeName(msg, pos);
      if (!n.ok) return n;
      pos = n.value.next;
      if (pos + 10 > msg.length) return malformed('resource record truncated');
      const type = u16(pos);
      const klass = u16(pos + 2);
      const ttl = ((msg[pos + 4]! << 24) >>> 0) + u16(pos + 6);
      const rdlen = u16(pos + 8);
      pos += 10;
      const r = decodeRdata(msg, pos, rdlen, type);
      if (!r.ok) return r;
      pos += rdlen;
      if (type === RRType.TSIG) {
        if (s !== 2 || i !== ar - 1) return malformed('TSIG record is not the last record of the additional section');
        if (r.value.kind !== 'TSIG') return malformed('TSIG record without RDATA');
        if (klass !== RRClass.ANY) return malformed(`TSIG record of class ${klass}`);
        tsig = { name: n.value.name, class: klass, ttl, rdata: r.value.tsig, offset: start };
        continue;
      }
      sections[s]!.push({ name: n.value.name, type, class: klass, ttl, rdata: r.value });
    }
  }
  if (pos !== msg.length) return malformed(`${msg.length - pos} octets of trailing data`);
  // An explicit literal (no rest/spread copies of the header): this runs for every answer received.
  const m: DecodedMessage = {
    id: h.id,
    qr: h.qr,
    opcode: h.opcode,
    aa: h.aa,
    tc: h.tc,
    rd: h.rd,
    ra: h.ra,
    ad: h.ad,
    cd: h.cd,
    rcode: h.rcode,
    question,
    answer: sections[0]!,
    authority: sections[1]!,
    additional: sections[2]!,
  };
  if (tsig) m.tsig = tsig;
  return ok(m);
}

/**
 * Offsets of the TSIG record of an update response that {@link scanUpdateResponse}
 * found well formed; offsets are into the message.
 */
export interface ScannedTsig {
  /** Start of the TSIG RR (its owner name): the MAC covers the bytes before it. */
  start: number;
  /** Start of the algorithm name in the RDATA. */
  algorithm: number;
  /** Start of time signed (6 octets), followed by the fudge (2). */
  time: number;
  timeSigned: number;
  fudge: number;
  /** Start of the MAC, and its length. */
  mac: number;
  macLength: number;
  originalId: number;
  /** Start of the error field (2), followed by other length (2) and other data, up to the end. */
  errorField: number;
  error: number;
}

/**
 * The common answer to an UPDATE, read without decoding it: a header with QR
 * and opcode UPDATE, at most one zone record, no prerequisite or update
 * records, and nothing or one TSIG record in the additional section. Returns
 * null for such a message without TSIG, the TSIG's offsets for one with it,
 * and undefined for anything else (not that shape, or not well formed): then
 * {@link decodeMessage} is the judge. Whatever it accepts, decodeMessage and
 * validateUpdateResponse accept too. Allocates nothing but its result; never throws.
 */
export function scanUpdateResponse(msg: Uint8Array): ScannedTsig | null | undefined {
  const n = msg.length;
  if (n < HEADER_LENGTH) return undefined;
  const b2 = msg[2]!;
  if ((b2 & 0x80) === 0 || ((b2 >> 3) & 0x0f) !== Opcode.UPDATE) return undefined;
  const qd = (msg[4]! << 8) | msg[5]!;
  const ar = (msg[10]! << 8) | msg[11]!;
  if (qd > 1 || ar > 1 || msg[6] !== 0 || msg[7] !== 0 || msg[8] !== 0 || msg[9] !== 0) return undefined;
  let pos = HEADER_LENGTH;
  if (qd === 1) {
    pos = skipName(msg, pos);
    if (pos < 0 || pos + 4 > n) return undefined;
    pos += 4;
  }
  if (ar === 0) return pos === n ? null : undefined;
  const start = pos;
  pos = skipName(msg, pos);
  if (pos < 0 || pos + 10 > n) return undefined;
  if (rd16(msg, pos) !== RRType.TSIG || rd16(msg, pos + 2) !== RRClass.ANY) return undefined;
  const rdlen = rd16(msg, pos + 8);
  const rdata = pos + 10;
  const end = rdata + rdlen;
  if (rdlen === 0 || end !== n) return undefined;
  const time = skipName(msg, rdata);
  if (time < 0 || time + 10 > end) return undefined;
  const timeSigned = msg[time]! * 2 ** 40 + msg[time + 1]! * 2 ** 32 + ((msg[time + 2]! << 24) >>> 0) + (msg[time + 3]! << 16) + (msg[time + 4]! << 8) + msg[time + 5]!;
  const fudge = rd16(msg, time + 6);
  const macLength = rd16(msg, time + 8);
  const mac = time + 10;
  if (mac + macLength + 6 > end) return undefined;
  const errorField = mac + macLength + 2;
  if (errorField + 4 + rd16(msg, errorField + 2) !== end) return undefined;
  return { start, algorithm: rdata, time, timeSigned, fudge, mac, macLength, originalId: rd16(msg, mac + macLength), errorField, error: rd16(msg, errorField) };
}

function rd16(msg: Uint8Array, o: number): number {
  return (msg[o]! << 8) | msg[o + 1]!;
}
