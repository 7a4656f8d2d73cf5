/**
 * TSIG: MACs checked against an independent computation from RFC 8945's
 * definition, digest-bits truncation, every verification failure, and interop
 * with BIND's own tools (a fixed nsupdate capture, live `nsupdate -y` and
 * `dig -y` exchanges).
 */
import { execFile } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { describe, expect, it } from 'vitest';
import {
  checkDigestBits,
  D2UpdateMessage,
  decodeMessage,
  encodeMessage,
  Rcode,
  rdataA,
  signMessage,
  TSIG_ALGORITHMS,
  TsigContext,
  TsigKey,
  verifyTsig,
  type DecodedMessage,
  type TsigAlgorithm,
} from '../src/dns/index.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
/** Same capture as in dns-message.test.ts: `nsupdate -y hmac-sha256:k1:c2VjcmV0c2VjcmV0c2VjcmV0`, time 0x6b0841e9. */
const NSUPDATE_CAPTURE = hex(
  'b7a828000001000100020001076578616d706c6503636f6d000006000104686f7374c00c00ff00fe000000000000c01d0001000100000e100004c0000201c01d001c00ff000000000000026b310000fa00ff00000000003d0b686d61632d7368613235360000006b0841e9012c0020f49e60664ceee577482c082f2538fca3a4e9a7c10039c2d8b4cacbdd9e0d8c29b7a800000000',
);
const SECRET = 'c2VjcmV0c2VjcmV0c2VjcmV0'; // "secretsecretsecret"
const ALGS: [TsigAlgorithm, string, string, number][] = [
  // Kea name, wire name (hex, uncompressed), node hash, MAC octets
  ['HMAC-MD5', '08686d61632d6d6435077369672d616c670372656703696e7400', 'md5', 16],
  ['HMAC-SHA1', '09686d61632d7368613100', 'sha1', 20],
  ['HMAC-SHA224', '0b686d61632d73686132323400', 'sha224', 28],
  ['HMAC-SHA256', '0b686d61632d73686132353600', 'sha256', 32],
  ['HMAC-SHA384', '0b686d61632d73686133383400', 'sha384', 48],
  ['HMAC-SHA512', '0b686d61632d73686135313200', 'sha512', 64],
];
const T = 0x6b0841e9; // a fixed time signed
const KEYNAME_WIRE = '026b3100'; // k1.

const request = () => new D2UpdateMessage(0x4242).setZone('example.com').addRR('h.example.com', 300, rdataA('192.0.2.1')).toWire();

function decoded(wire: Buffer): DecodedMessage {
  const r = decodeMessage(wire);
  if (!r.ok) throw r.error;
  return r.value;
}

describe('signing: MAC and TSIG RR computed from the RFC 8945 definition', () => {
  it.each(ALGS)('%s', (alg, algWire, hash, macLen) => {
    const key = TsigKey.create({ name: 'K1.', algorithm: alg, secret: SECRET });
    const msg = request();
    const signed = signMessage(msg, key, { now: T });
    // §4.3.3: message (ARCOUNT without TSIG), then key name, class ANY, TTL 0, algorithm, time, fudge 300, error 0, other len 0.
    const vars = hex(`${KEYNAME_WIRE} 00ff 00000000 ${algWire} 00006b0841e9 012c 0000 0000`);
    const mac = createHmac(hash, Buffer.from(SECRET, 'base64')).update(Buffer.concat([msg, vars])).digest();
    expect(mac.length).toBe(macLen);
    expect(signed.mac.toString('hex')).toBe(mac.toString('hex'));
    const rdata = hex(`${algWire} 00006b0841e9 012c ${macLen.toString(16).padStart(4, '0')}`);
    const expectedRR = Buffer.concat([hex(`${KEYNAME_WIRE} 00fa 00ff 00000000`), Buffer.from([0, rdata.length + macLen + 6]), rdata, mac, hex('4242 0000 0000')]);
    const expected = Buffer.concat([msg, expectedRR]);
    expected.writeUInt16BE(1, 10); // ARCOUNT now counts the TSIG RR
    expect(signed.wire.toString('hex')).toBe(expected.toString('hex'));
    expect(verifyTsig(signed.wire, decoded(signed.wire), key, { now: T }).ok).toBe(true);
  });

  it('signs a response over the request MAC (length-prefixed) first', () => {
    const key = TsigKey.create({ name: 'k1', algorithm: 'HMAC-SHA256', secret: SECRET });
    const requestMac = randomBytes(32);
    const resp = encodeMessage({ ...decoded(request()), qr: true });
    const s = signMessage(resp, key, { now: T, requestMac });
    const vars = hex(`${KEYNAME_WIRE} 00ff 00000000 ${ALGS[3]![1]} 00006b0841e9 012c 0000 0000`);
    const mac = createHmac('sha256', Buffer.from(SECRET, 'base64')).update(Buffer.concat([hex('0020'), requestMac, resp, vars])).digest();
    expect(s.mac.equals(mac)).toBe(true);
    expect(verifyTsig(s.wire, decoded(s.wire), key, { now: T, requestMac }).ok).toBe(true);
    expect(verifyTsig(s.wire, decoded(s.wire), key, { now: T, requestMac: randomBytes(32) })).toMatchObject({ ok: false, error: Rcode.BADSIG });
  });
});

describe('digest-bits', () => {
  it('truncates the MAC to the leading digest-bits/8 octets', () => {
    for (const [alg, , , macLen] of ALGS) {
      const bits = TSIG_ALGORITHMS[alg].minDigestBits;
      const full = TsigKey.create({ name: 'k1', algorithm: alg, secret: SECRET });
      const trunc = TsigKey.create({ name: 'k1', algorithm: alg, secret: SECRET, digestBits: bits });
      const a = signMessage(request(), full, { now: T });
      const b = signMessage(request(), trunc, { now: T });
      expect(a.mac.length).toBe(macLen);
      expect(b.mac.length).toBe(bits / 8);
      expect(b.mac.equals(a.mac.subarray(0, bits / 8))).toBe(true);
      expect(b.tsig.mac.length).toBe(bits / 8);
      // Verifies with the truncating key; a full-length key refuses the short MAC (BADTRUNC).
      expect(verifyTsig(b.wire, decoded(b.wire), trunc, { now: T }).ok).toBe(true);
      expect(verifyTsig(b.wire, decoded(b.wire), full, { now: T })).toMatchObject({ ok: false, error: Rcode.BADTRUNC });
      // A full MAC satisfies a truncating key.
      expect(verifyTsig(a.wire, decoded(a.wire), trunc, { now: T }).ok).toBe(true);
    }
  });

  it('enforces Kea\'s minimums: multiple of 8, at least 80, and per algorithm', () => {
    const cases: [TsigAlgorithm, number, boolean][] = [
      ['HMAC-MD5', 0, true], ['HMAC-MD5', 80, true], ['HMAC-MD5', 72, false], ['HMAC-MD5', 84, false], ['HMAC-MD5', 136, false],
      ['HMAC-SHA1', 80, true], ['HMAC-SHA1', 160, true], ['HMAC-SHA1', 168, false],
      ['HMAC-SHA224', 104, false], ['HMAC-SHA224', 112, true],
      ['HMAC-SHA256', 120, false], ['HMAC-SHA256', 128, true],
      ['HMAC-SHA384', 184, false], ['HMAC-SHA384', 192, true],
      ['HMAC-SHA512', 248, false], ['HMAC-SHA512', 256, true],
    ];
    for (const [alg, bits, good] of cases) {
      expect(checkDigestBits(alg, bits) === undefined, `${alg}/${bits}`).toBe(good);
      if (good) expect(TsigKey.create({ name: 'k', algorithm: alg, secret: SECRET, digestBits: bits }).digestBits).toBe(bits);
      else expect(() => TsigKey.create({ name: 'k', algorithm: alg, secret: SECRET, digestBits: bits })).toThrow(/digest-bits/);
    }
  });

  it('refuses a MAC below the RFC 8945 floor even if a key would allow it', () => {
    const key = TsigKey.create({ name: 'k1', algorithm: 'HMAC-SHA256', secret: SECRET });
    const s = signMessage(request(), key, { now: T });
    const m = decoded(s.wire);
    m.tsig!.rdata.mac = m.tsig!.rdata.mac.subarray(0, 15);
    expect(verifyTsig(s.wire, m, key, { now: T })).toMatchObject({ ok: false, error: Rcode.FORMERR });
  });
});

describe('verification failures', () => {
  const key = TsigKey.create({ name: 'k1', algorithm: 'HMAC-SHA256', secret: SECRET });

  it('unsigned answer to a signed request: FORMERR (Kea treats it as an error)', () => {
    const ctx = new TsigContext(key);
    ctx.sign(request(), { now: T });
    const unsigned = encodeMessage({ ...decoded(request()), qr: true });
    expect(ctx.verifyResponse(unsigned, decoded(unsigned), T)).toMatchObject({ ok: false, error: Rcode.FORMERR });
  });

  it('another key name or algorithm: BADKEY', () => {
    const s = signMessage(request(), key, { now: T });
    const other = TsigKey.create({ name: 'k2', algorithm: 'HMAC-SHA256', secret: SECRET });
    const otherAlg = TsigKey.create({ name: 'k1', algorithm: 'HMAC-SHA512', secret: SECRET });
    expect(verifyTsig(s.wire, decoded(s.wire), other, { now: T })).toMatchObject({ ok: false, error: Rcode.BADKEY });
    expect(verifyTsig(s.wire, decoded(s.wire), otherAlg, { now: T })).toMatchObject({ ok: false, error: Rcode.BADKEY });
    // Key names compare case-insensitively.
    const upper = TsigKey.create({ name: 'K1', algorithm: 'hmac-sha256', secret: SECRET });
    expect(verifyTsig(s.wire, decoded(s.wire), upper, { now: T }).ok).toBe(true);
  });

  it('a flipped bit in the MAC, the body, or a wrong secret: BADSIG', () => {
    const s = signMessage(request(), key, { now: T });
    const macAt = s.wire.length - 6 - 32;
    const badMac = Buffer.from(s.wire);
    badMac[macAt + 5] ^= 0x10;
    expect(verifyTsig(badMac, decoded(badMac), key, { now: T })).toMatchObject({ ok: false, error: Rcode.BADSIG });
    const badBody = Buffer.from(s.wire);
    badBody[badBody.indexOf(hex('c0000201')) + 3] ^= 1; // 192.0.2.1 -> 192.0.2.0
    expect(verifyTsig(badBody, decoded(badBody), key, { now: T })).toMatchObject({ ok: false, error: Rcode.BADSIG });
    const wrong = TsigKey.create({ name: 'k1', algorithm: 'HMAC-SHA256', secret: randomBytes(18) });
    expect(verifyTsig(s.wire, decoded(s.wire), wrong, { now: T })).toMatchObject({ ok: false, error: Rcode.BADSIG });
  });

  it('outside the fudge window: BADTIME (checked after the MAC); inside: accepted', () => {
    const s = signMessage(request(), key, { now: T, fudge: 300 });
    const m = decoded(s.wire);
    expect(verifyTsig(s.wire, m, key, { now: T + 300 }).ok).toBe(true);
    expect(verifyTsig(s.wire, m, key, { now: T - 300 }).ok).toBe(true);
    expect(verifyTsig(s.wire, m, key, { now: T + 301 })).toMatchObject({ ok: false, error: Rcode.BADTIME });
    expect(verifyTsig(s.wire, m, key, { now: T - 301 })).toMatchObject({ ok: false, error: Rcode.BADTIME });
  });

  it('the peer\'s own errors: unsigned BADSIG/BADKEY, and a signed BADTIME', () => {
    for (const e of [Rcode.BADSIG, Rcode.BADKEY]) {
      const s = signMessage(encodeMessage({ ...decoded(request()), qr: true, rcode: Rcode.NOTAUTH }), key, { now: T, error: e });
      expect(s.mac.length).toBe(0);
      expect(verifyTsig(s.wire, decoded(s.wire), key, { now: T })).toMatchObject({ ok: false, error: e });
    }
    const otherData = hex('00006b084200');
    const bt = signMessage(encodeMessage({ ...decoded(request()), qr: true, rcode: Rcode.NOTAUTH }), key, { now: T, error: Rcode.BADTIME, otherData });
    expect(decoded(bt.wire).tsig?.rdata.otherData).toEqual(Uint8Array.from(otherData));
    expect(verifyTsig(bt.wire, decoded(bt.wire), key, { now: T })).toMatchObject({ ok: false, error: Rcode.BADTIME });
  });

  it('a context signs once', () => {
    const ctx = new TsigContext(key);
    ctx.sign(request());
    expect(() => ctx.sign(request())).toThrow(/already/);
  });

  it('keys: unknown algorithm, bad or empty secret are refused', () => {
    expect(() => TsigKey.create({ name: 'k', algorithm: 'HMAC-SHA3', secret: SECRET })).toThrow(/unknown TSIG algorithm/);
    expect(() => TsigKey.create({ name: 'k', algorithm: 'HMAC-MD5', secret: 'not base64!' })).toThrow(/base64/);
    expect(() => TsigKey.create({ name: 'k', algorithm: 'HMAC-MD5', secret: '' })).toThrow(/empty/);
  });
});

describe('interop with BIND\'s tools', () => {
  it('verifies a captured nsupdate -y hmac-sha256 request (compressed names), and refuses it with another secret', () => {
    const key = TsigKey.create({ name: 'k1', algorithm: 'HMAC-SHA256', secret: SECRET });
    const m = decoded(NSUPDATE_CAPTURE);
    expect(verifyTsig(NSUPDATE_CAPTURE, m, key, { now: 0x6b0841e9 }).ok).toBe(true);
    const other = TsigKey.create({ name: 'k1', algorithm: 'HMAC-SHA256', secret: 'b3RoZXJvdGhlcm90aGVy' });
    expect(verifyTsig(NSUPDATE_CAPTURE, m, other, { now: 0x6b0841e9 })).toMatchObject({ ok: false, error: Rcode.BADSIG });
    // Independently: HMAC over the message up to the TSIG RR (ARCOUNT 0) and the variables.
    const off = m.tsig!.offset;
    const body = Buffer.from(NSUPDATE_CAPTURE.subarray(0, off));
    body.writeUInt16BE(0, 10);
    const vars = hex(`${KEYNAME_WIRE} 00ff 00000000 0b686d61632d73686132353600 00006b0841e9 012c 0000 0000`);
    const mac = createHmac('sha256', Buffer.from(SECRET, 'base64')).update(Buffer.concat([body, vars])).digest();
    expect(Buffer.from(m.tsig!.rdata.mac).equals(mac)).toBe(true);
  });

  /** Runs a BIND tool against a UDP socket of ours on loopback; `reply` may answer each datagram. */
  function withTool(cmd: string, args: (port: number) => string[], stdin: ((port: number) => string) | null, reply: (m: Buffer) => Buffer | null) {
    return new Promise<{ received: Buffer[]; stdout: string; stderr: string }>((resolve, reject) => {
      const s = dgram.createSocket('udp4');
      const received: Buffer[] = [];
      s.on('message', (m, rinfo) => {
        received.push(m);
        const r = reply(m);
        if (r) s.send(r, rinfo.port, rinfo.address);
      });
      s.on('error', reject);
      s.bind(0, '127.0.0.1', () => {
        const child = execFile(cmd, args(s.address().port), { timeout: 15_000, encoding: 'utf8' }, (_e, stdout, stderr) => {
          s.close(() => resolve({ received, stdout, stderr }));
        });
        if (stdin !== null) child.stdin!.end(stdin(s.address().port));
      });
    });
  }

  it.each(ALGS)('live nsupdate -y %s: its request verifies, our signed answer is accepted', async (alg) => {
    const secret = randomBytes(32).toString('base64');
    const key = TsigKey.create({ name: 'nskey', algorithm: alg, secret });
    const results: boolean[] = [];
    const out = await withTool(
      'nsupdate',
      () => ['-y', `${alg.toLowerCase()}:nskey:${secret}`, '-t', '5', '-u', '2'],
      (port) => `server 127.0.0.1 ${port}\nzone example.com\nupdate add h.example.com 300 A 192.0.2.1\nsend\n`,
      (m) => {
        const d = decodeMessage(m);
        if (!d.ok || !d.value.tsig) return null;
        const v = verifyTsig(m, d.value, key);
        results.push(v.ok);
        const resp = encodeMessage({ ...d.value, qr: true, additional: [] });
        return signMessage(resp, key, { requestMac: d.value.tsig.rdata.mac }).wire;
      },
    );
    expect(results).toEqual([true]);
    // nsupdate verified our answer: it complains on stderr otherwise ("TSIG error ...", "tsig verify failure").
    expect(out.stdout + out.stderr).not.toMatch(/tsig|fail|error/i);
  });

  it('live dig -y: accepts our signed answer and refuses a corrupted one', async () => {
    const secret = randomBytes(32).toString('base64');
    const key = TsigKey.create({ name: 'digkey', algorithm: 'HMAC-SHA512', secret });
    const verified: boolean[] = [];
    const answer = (corrupt: boolean) => (m: Buffer) => {
      const d = decodeMessage(m);
      if (!d.ok || !d.value.tsig) return null;
      verified.push(verifyTsig(m, d.value, key).ok);
      const s = signMessage(encodeMessage({ ...d.value, qr: true, aa: true, additional: [] }), key, { requestMac: d.value.tsig.rdata.mac });
      if (corrupt) s.wire[s.wire.length - 10] ^= 1;
      return s.wire;
    };
    const args = (port: number) => ['@127.0.0.1', '-p', String(port), '+time=2', '+tries=1', '-y', `hmac-sha512:digkey:${secret}`, 'example.com', 'A'];
    const good = await withTool('dig', args, null, answer(false));
    expect(good.stdout).toMatch(/status: NOERROR/);
    expect(good.stdout + good.stderr).not.toMatch(/verify|could not be validated/i);
    const bad = await withTool('dig', args, null, answer(true));
    expect(bad.stdout + bad.stderr).toMatch(/tsig verify failure|could not be validated/i);
    expect(verified).toEqual([true, true]);
  });
});
