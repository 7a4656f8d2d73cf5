import { describe, expect, it } from 'vitest';
import {
  D2UpdateMessage,
  decodeMessage,
  emptyHeader,
  encodeMessage,
  Name,
  Opcode,
  Rcode,
  rdataA,
  rdataAAAA,
  rdataDHCID,
  rdataPTR,
  RRClass,
  RRType,
  validateUpdateResponse,
  type DecodedMessage,
  type Message,
} from '../src/dns/index.js';
// The loadtest's seeded generator (mulberry32), so a failing fuzz case can be replayed.
import { seededRandom } from '../src/loadtest/arguments.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/**
 * Hand-assembled from RFC 1035 §4.1 and RFC 2136 §2.4/§2.5 tables: every
 * prerequisite and update form, class NONE/ANY and empty RDATA included.
 */
const H = '0168026578 00'; // h.ex.
const UPDATE_VECTOR = hex(`
  1234 2800 0001 0005 0005 0000
  026578 00 0006 0001
  ${H} 00ff 00ff 00000000 0000
  ${H} 00ff 00fe 00000000 0000
  ${H} 0001 00ff 00000000 0000
  ${H} 0031 0001 00000000 0003 000102
  ${H} 001c 00fe 00000000 0000
  ${H} 0001 0001 00000e10 0004 c0000201
  ${H} 0001 00ff 00000000 0000
  ${H} 00ff 00ff 00000000 0000
  ${H} 001c 00fe 00000000 0010 20010db8000000000000000000000001
  ${H} 000c 0001 0000012c 0006 ${H}
`);

function buildVector(): D2UpdateMessage {
  return new D2UpdateMessage(0x1234)
    .setZone('ex')
    .requireNameInUse('h.ex')
    .requireNameNotInUse('h.ex')
    .requireRRsetExists('h.ex', RRType.A)
    .requireRRsetExistsWithValue('h.ex', rdataDHCID('000102'))
    .requireRRsetNotExists('h.ex', RRType.AAAA)
    .addRR('h.ex', 3600, rdataA('192.0.2.1'))
    .deleteRRset('h.ex', RRType.A)
    .deleteAllRRsets('h.ex')
    .deleteRR('h.ex', rdataAAAA('2001:db8::1'))
    .addRR('h.ex', 300, rdataPTR('h.ex'));
}

/**
 * Captured from `nsupdate -y hmac-sha256:k1:c2VjcmV0c2VjcmV0c2VjcmV0` (BIND 9.18)
 * sending "prereq nxdomain host.example.com / update add host.example.com 3600 A
 * 192.0.2.1 / update delete host.example.com AAAA" for zone example.com. BIND
 * compresses owner names (c00c, c01d). Time signed 0x6b0841e9.
 */
const NSUPDATE_CAPTURE = hex(
  'b7a828000001000100020001076578616d706c6503636f6d000006000104686f7374c00c00ff00fe000000000000c01d0001000100000e100004c0000201c01d001c00ff000000000000026b310000fa00ff00000000003d0b686d61632d7368613235360000006b0841e9012c0020f49e60664ceee577482c082f2538fca3a4e9a7c10039c2d8b4cacbdd9e0d8c29b7a800000000',
);

describe('encoding UPDATE messages', () => {
  it('matches the hand-assembled RFC 2136 vector byte for byte', () => {
    expect(buildVector().toWire().toString('hex')).toBe(UPDATE_VECTOR.toString('hex'));
  });

  it('writes class NONE as 254 and empty RDATA as RDLENGTH 0 (the cases dns-packet gets wrong)', () => {
    const w = new D2UpdateMessage(1).setZone('ex').requireNameNotInUse('h.ex').deleteRRset('h.ex', RRType.A).toWire();
    expect(w.subarray(w.length - 10).toString('hex')).toBe('000100ff000000000000');
    expect(w.includes(hex('00ff00fe000000000000'))).toBe(true);
  });

  it('needs exactly one zone, as Kea', () => {
    expect(() => new D2UpdateMessage().addRR('h.ex', 1, rdataA('192.0.2.1')).toWire()).toThrow(/exactly one record/);
    const m = new D2UpdateMessage(7).setZone('a').setZone('b');
    expect(m.toMessage().question.map((q) => q.name.toText())).toEqual(['b.']);
  });

  it('rejects bad values instead of writing wrong bytes', () => {
    expect(() => new D2UpdateMessage().setZone('ex').addRR('h.ex', 1, rdataA('192.0.2.300')).toWire()).toThrow(/IPv4/);
    expect(() => new D2UpdateMessage().setZone('ex').addRR('h.ex', -1, rdataA('192.0.2.3')).toWire()).toThrow(/TTL/);
    expect(() => new D2UpdateMessage().setZone('ex').addRR('h.ex', 1, { kind: 'raw', data: new Uint8Array(1) })).toThrow(/explicit RR type/);
    expect(() => new D2UpdateMessage().setZone('ex').addRR('h.ex', 1, rdataA('192.0.2.3'), RRType.AAAA).toWire()).toThrow(/kind A/);
    expect(() => rdataDHCID('abc')).toThrow(/hex/);
  });
});

describe('decoding', () => {
  it('decodes our vector back to the same message', () => {
    const r = decodeMessage(UPDATE_VECTOR);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const m = r.value;
    expect(m.opcode).toBe(Opcode.UPDATE);
    expect(m.question).toHaveLength(1);
    expect(m.answer.map((x) => [x.type, x.class, x.rdata.kind])).toEqual([
      [RRType.ANY, RRClass.ANY, 'raw'],
      [RRType.ANY, RRClass.NONE, 'raw'],
      [RRType.A, RRClass.ANY, 'raw'],
      [RRType.DHCID, RRClass.IN, 'DHCID'],
      [RRType.AAAA, RRClass.NONE, 'raw'],
    ]);
    expect(m.authority[0]!.rdata).toEqual({ kind: 'A', address: '192.0.2.1' });
    expect(m.authority[3]!.rdata).toEqual({ kind: 'AAAA', address: '2001:db8::1' });
    expect(m.authority[4]!.rdata.kind === 'PTR' && m.authority[4]!.rdata.name.toText()).toBe('h.ex.');
    expect(encodeMessage(m).equals(UPDATE_VECTOR)).toBe(true);
  });

  it('decodes nsupdate\'s compressed update and its TSIG; re-encoded it equals our builder\'s', () => {
    const r = decodeMessage(NSUPDATE_CAPTURE);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const m = r.value;
    expect(m.answer[0]!.name.toText()).toBe('host.example.com.');
    expect(m.tsig?.name.toText()).toBe('k1.');
    expect(m.tsig?.rdata.algorithm.toText()).toBe('hmac-sha256.');
    expect(m.tsig?.rdata.timeSigned).toBe(0x6b0841e9);
    expect(m.tsig?.offset).toBe(NSUPDATE_CAPTURE.indexOf(hex('026b310000fa')));
    expect(m.additional).toEqual([]);
    const ours = new D2UpdateMessage(m.id)
      .setZone('example.com')
      .requireNameNotInUse('host.example.com')
      .addRR('host.example.com', 3600, rdataA('192.0.2.1'))
      .deleteRRset('host.example.com', RRType.AAAA);
    expect(encodeMessage(m).toString('hex')).toBe(ours.toWire().toString('hex'));
  });

  it('decompresses names in PTR and SOA RDATA of responses', () => {
    // A response: question example.com SOA, answer SOA with compressed mname/rname, then a PTR pointing into the question.
    const msg = hex(`
      abcd 8580 0001 0002 0000 0000
      076578616d706c6503636f6d00 0006 0001
      c00c 0006 0001 00000e10 0021 026e73 c00c 0561646d696e c00c 00000001 00000e10 00000384 00093a80 0000012c
      0131c00c 000c 0001 0000012c 0005 026832 c00c`);
    const r = decodeMessage(msg);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const soa = r.value.answer[0]!;
    expect(soa.rdata.kind).toBe('raw');
    const soaWire = soa.rdata.kind === 'raw' ? Buffer.from(soa.rdata.data) : Buffer.alloc(0);
    expect(soaWire.toString('hex')).toBe(
      Buffer.concat([Name.fromText('ns.example.com').toWire(), Name.fromText('admin.example.com').toWire(), hex('00000001 00000e10 00000384 00093a80 0000012c')]).toString('hex'),
    );
    const ptr = r.value.answer[1]!;
    expect(ptr.name.toText()).toBe('1.example.com.');
    expect(ptr.rdata.kind === 'PTR' && ptr.rdata.name.toText()).toBe('h2.example.com.');
    expect(r.value.qr && r.value.aa && r.value.rd && r.value.ra).toBe(true);
  });

  it('reports structural errors as values', () => {
    const cases: [string, Buffer][] = [
      ['short header', hex('1234 2800 0001')],
      ['counts beyond the data', hex('1234 2800 ffff ffff ffff ffff')],
      ['trailing garbage', Buffer.concat([UPDATE_VECTOR, hex('00')])],
      ['truncated', UPDATE_VECTOR.subarray(0, UPDATE_VECTOR.length - 3)],
      ['A with 3 octets', hex('0001 8000 0000 0001 0000 0000 00 0001 0001 00000000 0003 010203')],
      ['TSIG not last', Buffer.concat([hex('0001 8000 0000 0000 0000 0002'), NSUPDATE_CAPTURE.subarray(NSUPDATE_CAPTURE.indexOf(hex('026b310000fa'))), hex('00 0001 0001 00000000 0004 01020304')])],
      ['TSIG in the answer section', Buffer.concat([hex('0001 8000 0000 0001 0000 0000'), NSUPDATE_CAPTURE.subarray(NSUPDATE_CAPTURE.indexOf(hex('026b310000fa')))])],
    ];
    for (const [what, bytes] of cases) {
      const r = decodeMessage(bytes);
      expect(r.ok, what).toBe(false);
      expect(!r.ok && r.error.kind, what).toBe('malformed');
    }
  });

  it('validates update responses as Kea does', () => {
    const base: DecodedMessage = { ...emptyHeader(1, Opcode.UPDATE), qr: true, question: [], answer: [], authority: [], additional: [] };
    expect(validateUpdateResponse(base).ok).toBe(true);
    expect(validateUpdateResponse({ ...base, qr: false }).ok).toBe(false);
    expect(validateUpdateResponse({ ...base, opcode: Opcode.QUERY }).ok).toBe(false);
    const z = { name: Name.fromText('ex'), type: RRType.SOA, class: RRClass.IN };
    expect(validateUpdateResponse({ ...base, question: [z] }).ok).toBe(true);
    expect(validateUpdateResponse({ ...base, question: [z, z] }).ok).toBe(false);
  });

  it('round-trips header flags and rcodes', () => {
    const m: Message = { ...emptyHeader(0xfffe, Opcode.UPDATE), qr: true, aa: true, tc: true, rd: true, ra: true, ad: true, cd: true, rcode: Rcode.NOTZONE, question: [], answer: [], authority: [], additional: [] };
    const w = encodeMessage(m);
    expect(w.subarray(0, 4).toString('hex')).toBe('fffe' + 'af' + 'ba');
    const r = decodeMessage(w);
    expect(r.ok && r.value).toMatchObject({ id: 0xfffe, qr: true, opcode: 5, aa: true, tc: true, rd: true, ra: true, ad: true, cd: true, rcode: 10 });
  });
});

describe('fuzzing the decoder', () => {
  const seeds: Buffer[] = [UPDATE_VECTOR, NSUPDATE_CAPTURE, buildVector().toWire()];

  function check(bytes: Buffer, label: string): boolean {
    let r: ReturnType<typeof decodeMessage>;
    try {
      r = decodeMessage(bytes);
    } catch (e) {
      throw new Error(`decoder threw on ${label} ${bytes.toString('hex')}: ${(e as Error).message}`);
    }
    if (r.ok) {
      // Whatever decodes must re-encode and decode again to the same sections.
      const again = decodeMessage(encodeMessage(r.value));
      expect(again.ok, label).toBe(true);
      if (again.ok) expect(again.value.authority.length, label).toBe(r.value.authority.length);
    } else {
      expect(r.error.kind, label).toBe('malformed');
    }
    return r.ok;
  }

  it('random packets: always a result, never a throw', () => {
    const rnd = seededRandom(1);
    let errors = 0;
    for (let i = 0; i < 3000; i++) {
      const len = Math.floor(rnd() * 80);
      const b = Buffer.alloc(len);
      for (let j = 0; j < len; j++) b[j] = Math.floor(rnd() * 256);
      // Keep counts small now and then, so decoding gets past the header.
      if (len >= 12 && rnd() < 0.7) for (let c = 4; c < 12; c += 2) b.writeUInt16BE(Math.floor(rnd() * 3), c);
      if (!check(b, `random#${i}`)) errors++;
    }
    expect(errors).toBeGreaterThan(2000);
  });

  it('mutated valid packets (bit flips, truncation, splices, pointer bytes): always a result', () => {
    const rnd = seededRandom(2);
    let oks = 0;
    let errors = 0;
    for (let i = 0; i < 6000; i++) {
      const src = seeds[i % seeds.length]!;
      let b = Buffer.from(src);
      const op = Math.floor(rnd() * 5);
      const at = Math.floor(rnd() * b.length);
      if (op === 0) b[at] = b[at]! ^ (1 << Math.floor(rnd() * 8));
      else if (op === 1) b = b.subarray(0, at);
      else if (op === 2) b[at] = Math.floor(rnd() * 256);
      else if (op === 3) { b[at] = 0xc0; if (at + 1 < b.length) b[at + 1] = Math.floor(rnd() * b.length); }
      else b = Buffer.concat([b.subarray(0, at), src.subarray(Math.floor(rnd() * src.length))]);
      if (check(b, `mutation#${i} op${op}@${at}`)) oks++;
      else errors++;
    }
    // Both paths were exercised.
    expect(oks).toBeGreaterThan(100);
    expect(errors).toBeGreaterThan(1000);
  });
});
