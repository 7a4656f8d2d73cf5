import { describe, expect, it } from 'vitest';
import { decodeName, Name } from '../src/dns/index.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('Name: presentation form', () => {
  it('parses relative and absolute names alike and prints them absolute', () => {
    expect(Name.fromText('Host.Example.COM').toText()).toBe('Host.Example.COM.');
    expect(Name.fromText('host.example.com.').toText()).toBe('host.example.com.');
    expect(Name.fromText('.').toText()).toBe('.');
    expect(Name.fromText('.').labels).toHaveLength(0);
  });

  it('handles \\. \\\\ and \\DDD escapes both ways', () => {
    const n = Name.fromText('a\\.b.c\\\\d.e\\032f.x');
    expect(n.labels.map((l) => Buffer.from(l).toString('latin1'))).toEqual(['a.b', 'c\\d', 'e f', 'x']);
    expect(n.toText()).toBe('a\\.b.c\\\\d.e\\032f.x.');
    expect(Name.fromText(n.toText()).equals(n)).toBe(true);
  });

  it('reads raw bytes and the root as Kea\'s isc::dns::Name does', () => {
    expect(Name.fromText('a b.c').toText()).toBe('a\\032b.c.');
    expect(Name.fromText('é.com').toText()).toBe('\\233.com.');
    expect(Name.fromText('@')).toBe(Name.ROOT);
  });

  it('rejects empty labels, bad escapes, bitstring labels, non-latin1 text and oversize names', () => {
    for (const bad of ['', 'a..b', '.a', 'a\\', 'a\\25', 'a\\256.b', '\\[x.com', 'ā.com']) {
      const r = Name.parse(bad);
      expect(r.ok, bad).toBe(false);
    }
    expect(Name.parse('x'.repeat(63) + '.com').ok).toBe(true);
    expect(Name.parse('x'.repeat(64) + '.com').ok).toBe(false);
    // 4 labels of 63 = 4*64 + 1 = 257 octets: too long; 3 of 63 + one of 61 = 255: fits.
    const l63 = 'a'.repeat(63);
    expect(Name.parse([l63, l63, l63, l63].join('.')).ok).toBe(false);
    const ok255 = Name.fromText([l63, l63, l63, 'b'.repeat(61)].join('.'));
    expect(ok255.wireLength).toBe(255);
    expect(() => Name.fromText('a..b')).toThrow(/duplicate period in a\.\.b/);
  });

  it('compares case-insensitively and lowercases to canonical form', () => {
    const a = Name.fromText('WWW.Example.Com');
    expect(a.equals(Name.fromText('www.example.com.'))).toBe(true);
    expect(a.equals(Name.fromText('www.example.org'))).toBe(false);
    expect(a.canonical().toText()).toBe('www.example.com.');
    expect(a.toText()).toBe('WWW.Example.Com.'); // case preserved
    expect(a.isSubdomainOf(Name.fromText('EXAMPLE.com'))).toBe(true);
    expect(a.isSubdomainOf(Name.fromText('ample.com'))).toBe(false);
  });

  it('encodes uncompressed wire form', () => {
    expect(Name.fromText('www.example.com').toWire().toString('hex')).toBe('03777777076578616d706c6503636f6d00');
    expect(Name.ROOT.toWire().toString('hex')).toBe('00');
  });
});

describe('decodeName', () => {
  // Header-sized padding, then "example.com" at 12, then "www" + pointer to 12 at 25.
  const msg = Buffer.concat([Buffer.alloc(12), hex('076578616d706c6503636f6d00'), hex('03777777 c00c'), hex('c019')]);

  it('reads a plain name and reports the offset after it', () => {
    const r = decodeName(msg, 12);
    expect(r.ok && r.value.name.toText()).toBe('example.com.');
    expect(r.ok && r.value.next).toBe(25);
  });

  it('follows compression pointers; next is just after the first pointer', () => {
    const r = decodeName(msg, 25);
    expect(r.ok && r.value.name.toText()).toBe('www.example.com.');
    expect(r.ok && r.value.next).toBe(31);
    const chained = decodeName(msg, 31); // pointer to a pointer
    expect(chained.ok && chained.value.name.toText()).toBe('www.example.com.');
    expect(chained.ok && chained.value.next).toBe(33);
  });

  it('rejects loops, forward and self pointers', () => {
    const self = Buffer.concat([Buffer.alloc(12), hex('c00c')]);
    expect(decodeName(self, 12).ok).toBe(false);
    const fwd = Buffer.concat([Buffer.alloc(12), hex('c00e 00')]);
    expect(decodeName(fwd, 12).ok).toBe(false);
    // a -> b -> a: the second pointer points forward, refused.
    const loop = Buffer.concat([Buffer.alloc(12), hex('01 61 c0 10 01 62 c0 0c')]);
    const r = decodeName(loop, 12);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error.kind).toBe('malformed');
  });

  it('rejects truncation, reserved label types and names over 255 octets via pointers', () => {
    expect(decodeName(hex('03 7777'), 0).ok).toBe(false);
    expect(decodeName(hex('03 777777'), 0).ok).toBe(false); // no root label
    expect(decodeName(hex('c0'), 0).ok).toBe(false);
    expect(decodeName(hex('41 00'), 0).ok).toBe(false);
    expect(decodeName(hex('81 00'), 0).ok).toBe(false);
    // Each block is a 63-octet label followed by a pointer to the previous block: 5 blocks exceed 255.
    const blocks: Buffer[] = [Buffer.concat([hex('3f'), Buffer.alloc(63, 0x61), hex('00')])];
    let at = 0;
    let len = blocks[0]!.length;
    for (let i = 0; i < 4; i++) {
      const b = Buffer.concat([hex('3f'), Buffer.alloc(63, 0x61), Buffer.from([0xc0 | (at >> 8), at & 0xff])]);
      at = len;
      len += b.length;
      blocks.push(b);
    }
    const long = Buffer.concat(blocks);
    const r = decodeName(long, at);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error.message).toMatch(/255/);
    expect(decodeName(long, 65).ok).toBe(true); // block 1: two labels, fine
  });
});
