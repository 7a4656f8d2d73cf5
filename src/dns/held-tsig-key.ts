/**
 * A TSIG key whose material the daemon never holds (a hook library's, such as
 * a GSS-API context): the daemon builds the TSIG record and the input RFC 8945
 * §4.3 has MACed, and the holder computes and checks the MAC. Signing and
 * verifying are asynchronous (the holder is in another thread or process);
 * either may fail, which is the holder's failure, not the DNS server's.
 */
import { Rcode, RRClass } from './codes.js';
import { DnsError } from './errors.js';
import { decodeHeader, HEADER_LENGTH, type DecodedMessage } from './message.js';
import { Name } from './name.js';
import { encodeTsigRdata, type TsigRdata } from './rdata.js';
import { appendTsigRecord, DEFAULT_FUDGE, digestedMessage, requestMacPrefix, tsigNow, tsigVariables, type TsigVariables, type TsigVerifyResult } from './tsig.js';

/** What holds the key: computes a MAC over `data`, or checks one. */
export interface TsigKeyHolder {
  sign(key: HeldTsigKey, data: Buffer): Promise<Buffer>;
  verify(key: HeldTsigKey, data: Buffer, mac: Buffer): Promise<boolean>;
}

/** Bounds on a MAC from a holder: RFC 8945's 10-octet floor, and far above any real one (GSS-TSIG's are under 100). */
export const HELD_MAC_MIN_OCTETS = 10;
export const HELD_MAC_MAX_OCTETS = 1024;

export class HeldTsigKey {
  readonly name: Name;
  readonly algorithmName: Name;
  private prefix: Buffer | undefined;

  constructor(
    name: string,
    /** The TSIG algorithm name, as the holder says (e.g. `gss-tsig`, `hmac-sha256`). */
    readonly algorithm: string,
    readonly holder: TsigKeyHolder,
  ) {
    this.name = Name.fromText(name).canonical();
    this.algorithmName = Name.fromText(algorithm).canonical();
  }

  /** RFC 8945 §4.3.3's fixed start: key name, class ANY, TTL 0, algorithm name. */
  tsigVariablesPrefix(): Buffer {
    if (!this.prefix) {
      const keyName = this.name.toWire();
      const alg = this.algorithmName.toWire();
      const out = Buffer.alloc(keyName.length + 6 + alg.length);
      let o = keyName.copy(out, 0);
      o = out.writeUInt16BE(RRClass.ANY, o);
      o = out.writeUInt32BE(0, o);
      alg.copy(out, o);
      this.prefix = out;
    }
    return this.prefix;
  }
}

/** One request signed with a held key, and the check of its answer (as TsigContext). */
export class HeldTsigContext {
  private requestMac: Buffer | undefined;

  constructor(readonly key: HeldTsigKey) {}

  /** The request with its TSIG RR; rejects when the holder does not give a usable MAC. */
  async sign(wire: Buffer, now = tsigNow()): Promise<Buffer> {
    const h = decodeHeader(wire);
    if (!h) throw new DnsError('invalid-argument', 'cannot sign a message shorter than its header');
    const vars: TsigVariables = { timeSigned: now, fudge: DEFAULT_FUDGE, error: 0, otherData: new Uint8Array(0) };
    const mac = await this.key.holder.sign(this.key, Buffer.concat([wire, tsigVariables(this.key, vars)]));
    if (mac.length < HELD_MAC_MIN_OCTETS || mac.length > HELD_MAC_MAX_OCTETS) {
      throw new DnsError('invalid-argument', `the key's holder gave a MAC of ${mac.length} octets`);
    }
    this.requestMac = mac;
    const rdata = encodeTsigRdata({ algorithm: this.key.algorithmName, ...vars, mac, originalId: h.id } satisfies TsigRdata);
    return appendTsigRecord(wire, this.key.name, rdata, h.counts[3]);
  }

  /** RFC 8945 §5.3 on the answer, the MAC checked by the holder; rejects when the holder fails. */
  async verifyResponse(wire: Uint8Array, msg: DecodedMessage, now = tsigNow()): Promise<TsigVerifyResult> {
    const requestMac = this.requestMac;
    const t = msg.tsig;
    if (!requestMac) return { ok: false, error: Rcode.FORMERR, reason: 'no request was signed with this context' };
    if (!t) return { ok: false, error: Rcode.FORMERR, reason: 'message is not signed' };
    if (!t.name.equals(this.key.name) || !t.rdata.algorithm.equals(this.key.algorithmName)) {
      return { ok: false, error: Rcode.BADKEY, reason: `signed with key ${t.name.toText()} (${t.rdata.algorithm.toText()}), expected ${this.key.name.toText()} (${this.key.algorithmName.toText()})` };
    }
    if (t.rdata.mac.length === 0) {
      const e = t.rdata.error === Rcode.BADSIG || t.rdata.error === Rcode.BADKEY ? t.rdata.error : Rcode.BADSIG;
      return { ok: false, error: e, reason: `unsigned TSIG with error ${t.rdata.error}` };
    }
    if (t.offset < HEADER_LENGTH || t.offset > wire.length) return { ok: false, error: Rcode.FORMERR, reason: 'bad TSIG offset' };
    const header = digestedMessage(wire.subarray(0, HEADER_LENGTH), t.rdata.originalId, 1);
    const data = Buffer.concat([...requestMacPrefix(requestMac), header, wire.subarray(HEADER_LENGTH, t.offset), tsigVariables(this.key, t.rdata)]);
    const mac = Buffer.from(t.rdata.mac);
    if (!(await this.key.holder.verify(this.key, data, mac))) return { ok: false, error: Rcode.BADSIG, reason: 'MAC does not verify (checked by the key\'s holder)' };
    if (Math.abs(now - t.rdata.timeSigned) > t.rdata.fudge) {
      return { ok: false, error: Rcode.BADTIME, reason: `time signed ${t.rdata.timeSigned} is ${now - t.rdata.timeSigned} s from now, fudge ${t.rdata.fudge}` };
    }
    if (t.rdata.error !== 0) return { ok: false, error: t.rdata.error, reason: `peer reported TSIG error ${t.rdata.error}` };
    return { ok: true, mac };
  }
}

