/**
 * The DNS client judges the usual answer to an UPDATE from its bytes
 * (scanUpdateResponse, TsigContext.verifiesResponseWire) and decodes it only
 * otherwise. The shortcut must never accept what the full path refuses: checked
 * here against decodeMessage + validateUpdateResponse + verifyResponse on a
 * signed answer and every one-byte change, truncation and extension of it.
 */
import { describe, expect, it } from 'vitest';
import { D2UpdateMessage, decodeMessage, rdataA, scanUpdateResponse, signMessage, TsigContext, TsigKey, validateUpdateResponse } from '../src/dns/index.js';

const T = 1_800_000_000;
const key = TsigKey.create({ name: 'Bench.Key', algorithm: 'HMAC-SHA256', secret: 'OGQ3ZjQzNDBiZTk1YjI2ZDY2NmE1ZTBmZjM1ZmY5MmQ=' });

function exchange(): { ctx: TsigContext; answer: Buffer; unsigned: Buffer } {
  const req = new D2UpdateMessage(0x1234).setZone('example.com').addRR('host.example.com', 300, rdataA('192.0.2.1')).toWire();
  const ctx = new TsigContext(key);
  const signed = ctx.sign(req, { now: T });
  const requestMac = decodeMessage(signed);
  if (!requestMac.ok || !requestMac.value.tsig) throw new Error('request not signed');
  // The answer: header (QR, UPDATE, NOERROR), the zone record, TSIG over it.
  const zoneEnd = 12 + 'example.com'.length + 2 + 4;
  const body = Buffer.from(req.subarray(0, zoneEnd));
  body[2] = 0x80 | (5 << 3);
  body[3] = 0;
  body.writeUInt16BE(1, 4);
  body.fill(0, 6, 12);
  const answer = signMessage(body, key, { now: T, requestMac: requestMac.value.tsig.rdata.mac }).wire;
  return { ctx, answer, unsigned: body };
}

function fullVerdict(ctx: TsigContext, wire: Buffer): boolean {
  const d = decodeMessage(wire);
  if (!d.ok || !validateUpdateResponse(d.value).ok) return false;
  return ctx.verifyResponse(wire, d.value, T).ok;
}

describe('scanUpdateResponse / verifiesResponseWire', () => {
  it('accept the usual signed answer, and an unsigned one as unsigned', () => {
    const { ctx, answer, unsigned } = exchange();
    const s = scanUpdateResponse(answer);
    expect(s).toBeTruthy();
    expect(ctx.verifiesResponseWire(answer, s!, T)).toBe(true);
    expect(fullVerdict(ctx, answer)).toBe(true);
    expect(scanUpdateResponse(unsigned)).toBeNull();
    expect(ctx.verifiesResponseWire(answer, s!, T + 301)).toBe(false);
  });

  it('never accept what the full decoder and verifier refuse', () => {
    const { ctx, answer } = exchange();
    const variants: Buffer[] = [];
    for (let i = 0; i < answer.length; i++) {
      for (const v of [0x00, 0x01, 0x3f, 0x40, 0xc0, 0xff, answer[i]! ^ 0x20, answer[i]! + 1]) {
        const b = Buffer.from(answer);
        b[i] = v & 0xff;
        variants.push(b);
      }
      variants.push(answer.subarray(0, i));
    }
    variants.push(Buffer.concat([answer, Buffer.from([0])]));
    let accepted = 0;
    for (const b of variants) {
      const s = scanUpdateResponse(b);
      if (s === undefined) continue;
      const d = decodeMessage(b);
      expect(d.ok && validateUpdateResponse(d.value).ok).toBe(true);
      if (s !== null && ctx.verifiesResponseWire(b, s, T)) {
        accepted++;
        expect(fullVerdict(ctx, b)).toBe(true);
      }
    }
    expect(accepted).toBeGreaterThan(1); // the answer itself, and case changes in the names
  });
});
