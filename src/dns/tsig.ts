/**
 * TSIG (RFC 8945) on node:crypto: HMAC-MD5, SHA1, SHA224, SHA256, SHA384, SHA512,
 * with digest-bits truncation (RFC 8945 §5.2.2.1, Kea's minimums).
 *
 * The MAC covers, in order (RFC 8945 §4.3):
 *   - for a response, the request MAC as sent: 2-octet length, then the MAC;
 *   - the message before the TSIG RR, with the original ID in the header and
 *     ARCOUNT not counting the TSIG RR;
 *   - the TSIG variables: key name (canonical, uncompressed), class ANY, TTL 0,
 *     algorithm name (canonical, uncompressed), time signed (48 bits), fudge,
 *     error, other length, other data.
 *
 * {@link TsigContext} is the client's one-shot state, as Kea's TSIGContext:
 * `sign()` a request, then `verifyResponse()` its answer with the request MAC.
 * Verification returns an error value; it never throws on received data.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { Rcode, RRClass, RRType } from './codes.js';
import { DnsError } from './errors.js';
import { decodeHeader, HEADER_LENGTH, type DecodedMessage, type ScannedTsig } from './message.js';
import { Name, wireNameEquals } from './name.js';
import { encodeTsigRdata, type TsigRdata } from './rdata.js';

export type TsigAlgorithm = 'HMAC-MD5' | 'HMAC-SHA1' | 'HMAC-SHA224' | 'HMAC-SHA256' | 'HMAC-SHA384' | 'HMAC-SHA512';

interface AlgorithmInfo {
  /** Algorithm name on the wire (RFC 8945 §6). */
  wireName: Name;
  /** node:crypto hash name. */
  hash: string;
  /** Full MAC length in bits. */
  bits: number;
  /** Smallest digest-bits Kea's configuration accepts for it. */
  minDigestBits: number;
}

export const TSIG_ALGORITHMS: Readonly<Record<TsigAlgorithm, AlgorithmInfo>> = {
  'HMAC-MD5': { wireName: Name.fromText('hmac-md5.sig-alg.reg.int'), hash: 'md5', bits: 128, minDigestBits: 80 },
  'HMAC-SHA1': { wireName: Name.fromText('hmac-sha1'), hash: 'sha1', bits: 160, minDigestBits: 80 },
  'HMAC-SHA224': { wireName: Name.fromText('hmac-sha224'), hash: 'sha224', bits: 224, minDigestBits: 112 },
  'HMAC-SHA256': { wireName: Name.fromText('hmac-sha256'), hash: 'sha256', bits: 256, minDigestBits: 128 },
  'HMAC-SHA384': { wireName: Name.fromText('hmac-sha384'), hash: 'sha384', bits: 384, minDigestBits: 192 },
  'HMAC-SHA512': { wireName: Name.fromText('hmac-sha512'), hash: 'sha512', bits: 512, minDigestBits: 256 },
};

/** Kea's algorithm names are matched case-insensitively ("hmac-sha256" works too). */
export function parseTsigAlgorithm(text: string): TsigAlgorithm | undefined {
  const up = text.toUpperCase();
  return up in TSIG_ALGORITHMS ? (up as TsigAlgorithm) : undefined;
}

/** The algorithm whose wire name is `name`, if supported. */
export function tsigAlgorithmFromWireName(name: Name): TsigAlgorithm | undefined {
  for (const [k, v] of Object.entries(TSIG_ALGORITHMS)) if (v.wireName.equals(name)) return k as TsigAlgorithm;
  return undefined;
}

/** Kea's rule for a non-zero digest-bits: a multiple of 8, ≥ 80, and ≥ the algorithm's minimum. */
export function checkDigestBits(algorithm: TsigAlgorithm, digestBits: number): string | undefined {
  if (digestBits === 0) return undefined;
  const info = TSIG_ALGORITHMS[algorithm];
  if (!Number.isInteger(digestBits) || digestBits < 0) return `invalid digest-bits ${digestBits}`;
  if (digestBits % 8 !== 0) return `digest-bits ${digestBits} is not a multiple of 8`;
  if (digestBits < info.minDigestBits) return `digest-bits ${digestBits} too small for ${algorithm} (minimum ${info.minDigestBits})`;
  if (digestBits > info.bits) return `digest-bits ${digestBits} larger than the ${info.bits}-bit ${algorithm} MAC`;
  return undefined;
}

export interface TsigKeyOptions {
  name: string | Name;
  /** Kea spelling, e.g. "HMAC-SHA256" (case-insensitive). */
  algorithm: string;
  /** Base64 text (as in Kea's config) or raw bytes. */
  secret: string | Uint8Array;
  /** 0 (default) = full MAC; otherwise truncate to this many bits. */
  digestBits?: number;
}

export class TsigKey {
  /** Canonical (lowercase) key name. */
  readonly name: Name;
  readonly algorithm: TsigAlgorithm;
  readonly algorithmName: Name;
  readonly secret: Buffer;
  readonly digestBits: number;
  /** Full MAC length in octets. */
  readonly fullMacLength: number;
  /** Length of the MAC this key sends, in octets (truncated when digestBits > 0). */
  readonly macLength: number;

  private constructor(name: Name, algorithm: TsigAlgorithm, secret: Buffer, digestBits: number) {
    this.name = name;
    this.algorithm = algorithm;
    this.algorithmName = TSIG_ALGORITHMS[algorithm].wireName;
    this.secret = secret;
    this.digestBits = digestBits;
    this.fullMacLength = TSIG_ALGORITHMS[algorithm].bits / 8;
    this.macLength = digestBits > 0 ? digestBits / 8 : this.fullMacLength;
  }

  /** Validates and builds a key; throws `DnsError('invalid-argument')`. */
  static create(opts: TsigKeyOptions): TsigKey {
    const name = typeof opts.name === 'string' ? Name.fromText(opts.name) : opts.name;
    const algorithm = parseTsigAlgorithm(opts.algorithm);
    if (!algorithm) throw new DnsError('invalid-argument', `unknown TSIG algorithm: ${opts.algorithm}`);
    let secret: Buffer;
    if (typeof opts.secret === 'string') {
      const s = opts.secret.replace(/\s+/g, '');
      if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(s)) {
        throw new DnsError('invalid-argument', `TSIG secret of key ${name.toText()} is not valid base64`);
      }
      secret = Buffer.from(s, 'base64');
    } else {
      secret = Buffer.from(opts.secret);
    }
    if (secret.length === 0) throw new DnsError('invalid-argument', `TSIG secret of key ${name.toText()} is empty`);
    const digestBits = opts.digestBits ?? 0;
    const bad = checkDigestBits(algorithm, digestBits);
    if (bad) throw new DnsError('invalid-argument', bad);
    return new TsigKey(name.canonical(), algorithm, secret, digestBits);
  }

  private variablesPrefix: Buffer | undefined;

  /**
   * The fixed start of the TSIG variables of this key (RFC 8945 §4.3.3): key
   * name (canonical, uncompressed), class ANY, TTL 0, algorithm name
   * (canonical, uncompressed). Built once per key.
   */
  tsigVariablesPrefix(): Buffer {
    if (!this.variablesPrefix) {
      const keyName = this.name.canonical().toWire();
      const alg = this.algorithmName.canonical().toWire();
      const out = Buffer.alloc(keyName.length + 6 + alg.length);
      let o = keyName.copy(out, 0);
      o = out.writeUInt16BE(RRClass.ANY, o);
      o = out.writeUInt32BE(0, o);
      alg.copy(out, o);
      this.variablesPrefix = out;
    }
    return this.variablesPrefix;
  }

  /** Full (untruncated) HMAC of `parts` with this key. */
  hmac(parts: readonly Uint8Array[]): Buffer {
    const h = createHmac(TSIG_ALGORITHMS[this.algorithm].hash, this.secret);
    for (const p of parts) h.update(p);
    return h.digest();
  }
}

export const DEFAULT_FUDGE = 300;

const SCRATCH_LEN = Buffer.alloc(2);
const SCRATCH_HEADER = Buffer.alloc(HEADER_LENGTH);

/** Current time in TSIG seconds. */
export const tsigNow = (): number => Math.floor(Date.now() / 1000);

export interface TsigVariables {
  timeSigned: number;
  fudge: number;
  error: number;
  otherData: Uint8Array;
}

/** The TSIG variables block of RFC 8945 §4.3.3. */
export function tsigVariables(key: Pick<TsigKey, 'tsigVariablesPrefix'>, v: TsigVariables): Buffer {
  const prefix = key.tsigVariablesPrefix();
  const out = Buffer.allocUnsafe(prefix.length + 12 + v.otherData.length);
  let o = prefix.copy(out, 0);
  out.writeUIntBE(v.timeSigned, o, 6);
  o += 6;
  o = out.writeUInt16BE(v.fudge, o);
  o = out.writeUInt16BE(v.error, o);
  o = out.writeUInt16BE(v.otherData.length, o);
  out.set(v.otherData, o);
  return out;
}

/** `message` with the ID replaced and ARCOUNT decremented, as digested. */
export function digestedMessage(messageBeforeTsig: Uint8Array, originalId: number, arcountAdjust: number): Buffer {
  const m = Buffer.from(messageBeforeTsig);
  m.writeUInt16BE(originalId, 0);
  m.writeUInt16BE((m.readUInt16BE(10) - arcountAdjust) & 0xffff, 10);
  return m;
}

export function requestMacPrefix(requestMac: Uint8Array | undefined): Uint8Array[] {
  if (!requestMac) return [];
  const len = Buffer.allocUnsafe(2);
  len.writeUInt16BE(requestMac.length);
  return [len, requestMac];
}

export interface SignOptions {
  /** Time signed, seconds (default now). */
  now?: number;
  fudge?: number;
  /** TSIG error to report (server side); BADSIG/BADKEY produce an empty MAC. */
  error?: number;
  otherData?: Uint8Array;
  /** The request MAC, when signing a response. */
  requestMac?: Uint8Array;
}

export interface SignedMessage {
  wire: Buffer;
  /** The MAC as sent (truncated when the key says so). */
  mac: Buffer;
  tsig: TsigRdata;
}

/**
 * Appends a TSIG RR to an encoded message that has none. The message's ID
 * becomes the original ID. Throws `invalid-argument` on a message too short.
 */
export function signMessage(wire: Uint8Array, key: TsigKey, opts: SignOptions = {}): SignedMessage {
  const h = decodeHeader(wire);
  if (!h) throw new DnsError('invalid-argument', 'cannot sign a message shorter than its header');
  const error = opts.error ?? 0;
  const vars: TsigVariables = {
    timeSigned: opts.now ?? tsigNow(),
    fudge: opts.fudge ?? DEFAULT_FUDGE,
    error,
    otherData: opts.otherData ?? new Uint8Array(0),
  };
  let mac: Buffer;
  if (error === Rcode.BADSIG || error === Rcode.BADKEY) {
    mac = Buffer.alloc(0);
  } else {
    const full = key.hmac([...requestMacPrefix(opts.requestMac), wire, tsigVariables(key, vars)]);
    mac = full.subarray(0, key.macLength);
  }
  const tsig: TsigRdata = { algorithm: key.algorithmName, ...vars, mac, originalId: h.id };
  return { wire: appendTsigRecord(wire, key.name, encodeTsigRdata(tsig), h.counts[3]), mac, tsig };
}

/**
 * The message, then its TSIG RR (owner: the key name), in one buffer, the additional
 * count raised by one. Shared by keys d2box holds and keys a hook library holds.
 */
export function appendTsigRecord(wire: Uint8Array, owner: Name, rdata: Buffer, additionalCount: number): Buffer {
  const out = Buffer.allocUnsafe(wire.length + owner.wireLength + 10 + rdata.length);
  out.set(wire, 0);
  let o = owner.writeTo(out, wire.length);
  o = out.writeUInt16BE(RRType.TSIG, o);
  o = out.writeUInt16BE(RRClass.ANY, o);
  o = out.writeUInt32BE(0, o);
  o = out.writeUInt16BE(rdata.length, o);
  rdata.copy(out, o);
  out.writeUInt16BE(additionalCount + 1, 10);
  return out;
}

export type TsigVerifyResult =
  | { ok: true; mac: Buffer }
  | {
      ok: false;
      /** A TSIG error (BADSIG, BADKEY, BADTIME, BADTRUNC) or FORMERR (unsigned / malformed TSIG). */
      error: number;
      reason: string;
    };

export interface VerifyOptions {
  /** The request MAC as sent, when verifying a response. */
  requestMac?: Uint8Array;
  /** Current time, seconds (default now). */
  now?: number;
}

const fail = (error: number, reason: string): TsigVerifyResult => ({ ok: false, error, reason });

/**
 * Verifies the TSIG of a received message (`wire` decoded as `msg`) with
 * `key`. Order as RFC 8945 §5.2/5.3: key, MAC length, MAC, then time; a
 * correctly signed TSIG error from the peer (e.g. BADTIME) is then reported.
 */
export function verifyTsig(wire: Uint8Array, msg: DecodedMessage, key: TsigKey, opts: VerifyOptions = {}): TsigVerifyResult {
  const t = msg.tsig;
  if (!t) return fail(Rcode.FORMERR, 'message is not signed');
  if (!t.name.equals(key.name) || !t.rdata.algorithm.equals(key.algorithmName)) {
    return fail(Rcode.BADKEY, `signed with key ${t.name.toText()} (${t.rdata.algorithm.toText()}), expected ${key.name.toText()} (${key.algorithmName.toText()})`);
  }
  const macLen = t.rdata.mac.length;
  if (macLen === 0) {
    const e = t.rdata.error === Rcode.BADSIG || t.rdata.error === Rcode.BADKEY ? t.rdata.error : Rcode.BADSIG;
    return fail(e, `unsigned TSIG with error ${t.rdata.error}`);
  }
  if (macLen > key.fullMacLength) return fail(Rcode.FORMERR, `MAC of ${macLen} octets exceeds the ${key.fullMacLength}-octet ${key.algorithm} MAC`);
  if (macLen < Math.max(10, Math.ceil(key.fullMacLength / 2))) return fail(Rcode.FORMERR, `MAC of ${macLen} octets is below the RFC 8945 minimum`);
  if (macLen < key.macLength) return fail(Rcode.BADTRUNC, `MAC of ${macLen} octets is shorter than the ${key.macLength} this key requires`);
  if (opts.requestMac && macLen < opts.requestMac.length) return fail(Rcode.BADTRUNC, 'response MAC shorter than the request MAC');
  if (t.offset < HEADER_LENGTH || t.offset > wire.length) return fail(Rcode.FORMERR, 'bad TSIG offset');
  // The header as digested (original ID, ARCOUNT without the TSIG RR), then the rest as received: no copy of the message.
  const header = digestedMessage(wire.subarray(0, HEADER_LENGTH), t.rdata.originalId, 1);
  const expected = key
    .hmac([...requestMacPrefix(opts.requestMac), header, wire.subarray(HEADER_LENGTH, t.offset), tsigVariables(key, t.rdata)])
    .subarray(0, macLen);
  if (!timingSafeEqual(expected, t.rdata.mac)) return fail(Rcode.BADSIG, 'MAC does not verify');
  const now = opts.now ?? tsigNow();
  if (Math.abs(now - t.rdata.timeSigned) > t.rdata.fudge) {
    return fail(Rcode.BADTIME, `time signed ${t.rdata.timeSigned} is ${now - t.rdata.timeSigned} s from now, fudge ${t.rdata.fudge}`);
  }
  if (t.rdata.error !== 0) return fail(t.rdata.error, `peer reported TSIG error ${t.rdata.error}`);
  return { ok: true, mac: Buffer.from(t.rdata.mac) };
}

/**
 * One request/response exchange signed with one key (Kea's TSIGContext).
 * Not reusable: sign once, verify that request's response.
 */
export class TsigContext {
  private requestMac: Buffer | undefined;

  constructor(readonly key: TsigKey) {}

  /** Signs an encoded request; remembers its MAC for the response. */
  sign(wire: Uint8Array, opts: Omit<SignOptions, 'requestMac' | 'error'> = {}): Buffer {
    if (this.requestMac) throw new DnsError('invalid-argument', 'TSIG context already used to sign a request');
    const s = signMessage(wire, this.key, opts);
    this.requestMac = s.mac;
    return s.wire;
  }

  /**
   * The common case of {@link verifyResponse} straight from the bytes of an
   * answer that scanUpdateResponse found well formed, with nothing decoded: true
   * when the TSIG verifies with every check of verifyTsig (key, MAC length, MAC,
   * time, no error reported). False means "not proven here": verifyResponse on
   * the decoded message then gives the verdict and its reason.
   */
  verifiesResponseWire(wire: Uint8Array, t: ScannedTsig, now?: number): boolean {
    const requestMac = this.requestMac;
    const key = this.key;
    if (!requestMac) return false;
    if (!wireNameEquals(wire, t.start, key.name) || !wireNameEquals(wire, t.algorithm, key.algorithmName)) return false;
    const macLen = t.macLength;
    if (macLen === 0 || macLen > key.fullMacLength || macLen < Math.max(10, Math.ceil(key.fullMacLength / 2))) return false;
    if (macLen < key.macLength || macLen < requestMac.length) return false;
    if (t.start < HEADER_LENGTH) return false;
    const h = createHmac(TSIG_ALGORITHMS[key.algorithm].hash, key.secret);
    // Scratch buffers: Hmac.update copies what it is given before returning.
    SCRATCH_LEN.writeUInt16BE(requestMac.length, 0);
    h.update(SCRATCH_LEN);
    h.update(requestMac);
    SCRATCH_HEADER.set(wire.subarray(0, HEADER_LENGTH));
    SCRATCH_HEADER.writeUInt16BE(t.originalId, 0);
    SCRATCH_HEADER.writeUInt16BE((SCRATCH_HEADER.readUInt16BE(10) - 1) & 0xffff, 10);
    h.update(SCRATCH_HEADER);
    h.update(wire.subarray(HEADER_LENGTH, t.start));
    h.update(key.tsigVariablesPrefix());
    h.update(wire.subarray(t.time, t.time + 8)); // time signed, fudge
    h.update(wire.subarray(t.errorField)); // error, other length, other data
    const expected = h.digest();
    if (!timingSafeEqual(expected.subarray(0, macLen), wire.subarray(t.mac, t.mac + macLen))) return false;
    if (Math.abs((now ?? tsigNow()) - t.timeSigned) > t.fudge) return false;
    return t.error === 0;
  }

  /** Verifies a response to the signed request. An unsigned response is FORMERR, as in Kea. */
  verifyResponse(wire: Uint8Array, msg: DecodedMessage, now?: number): TsigVerifyResult {
    if (!this.requestMac) return fail(Rcode.FORMERR, 'no request was signed with this context');
    return verifyTsig(wire, msg, this.key, now === undefined ? { requestMac: this.requestMac } : { requestMac: this.requestMac, now });
  }
}
