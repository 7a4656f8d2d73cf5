import { describe, expect, it } from 'vitest';
import { DdnsDomainMatcher, dnsNameError, matchDomain, reverseIpAddress, reverseV4Address, reverseV6Address } from '../src/config/domains.js';

describe('reverse names', () => {
  it('IPv4: octets reversed under in-addr.arpa.', () => {
    expect(reverseIpAddress('192.0.2.1')).toBe('1.2.0.192.in-addr.arpa.');
    expect(reverseV4Address('10.0.0.255')).toBe('255.0.0.10.in-addr.arpa.');
  });

  it('IPv6: 32 nibbles reversed under ip6.arpa.', () => {
    expect(reverseIpAddress('2001:db8::1')).toBe('1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.');
    expect(reverseV6Address('2001:DB8:1:2:3:4:5:6')).toBe('6.0.0.0.5.0.0.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.');
    expect(reverseV6Address('::')).toBe('0.'.repeat(32) + 'ip6.arpa.');
    expect(reverseV6Address('fe80::1%eth0')).toBe('1.' + '0.'.repeat(27) + '0.8.e.f.ip6.arpa.');
  });

  it('IPv4-mapped IPv6 stays under ip6.arpa., as Kea (IOAddress is v6)', () => {
    expect(reverseIpAddress('::ffff:192.0.2.1')).toBe('1.0.2.0.0.0.0.c.f.f.f.f.' + '0.'.repeat(20) + 'ip6.arpa.');
  });

  it('refuses what is not an address', () => {
    expect(() => reverseIpAddress('192.0.2')).toThrow(/cannot reverse/);
    expect(() => reverseIpAddress('host.example.com')).toThrow();
    expect(() => reverseV4Address('2001:db8::1')).toThrow();
    expect(() => reverseV6Address('1::2::3')).toThrow();
  });
});

const d = (name: string) => ({ name });

describe('matchDomain, as Kea DdnsDomainListMgr::matchDomain', () => {
  const list = [d('example.com.'), d('two.example.com.'), d('net.'), d('two.net.')];

  it('picks the longest suffix on a label boundary', () => {
    expect(matchDomain(list, 'host.two.example.com.')?.name).toBe('two.example.com.');
    expect(matchDomain(list, 'host.one.example.com.')?.name).toBe('example.com.');
    expect(matchDomain(list, 'example.com.')?.name).toBe('example.com.');
  });

  it('does not match across a label boundary ("onetwo.net" is not under "two.net")', () => {
    expect(matchDomain(list, 'onetwo.net.')?.name).toBe('net.');
    expect(matchDomain([d('two.net.')], 'onetwo.net.')).toBeUndefined();
    expect(matchDomain(list, 'xexample.com.')).toBeUndefined();
  });

  it('is case-insensitive and ignores one trailing dot on either side', () => {
    expect(matchDomain(list, 'HOST.Two.Example.COM.')?.name).toBe('two.example.com.');
    expect(matchDomain(list, 'host.two.example.com')?.name).toBe('two.example.com.');
    expect(matchDomain([d('example.org')], 'a.example.org.')?.name).toBe('example.org');
  });

  it('no match without a wildcard', () => {
    expect(matchDomain(list, 'host.example.org.')).toBeUndefined();
    expect(matchDomain([], 'host.example.org.')).toBeUndefined();
  });

  it('"*" alone matches everything; with others it is the fallback only', () => {
    expect(matchDomain([d('*')], 'anything.at.all.')?.name).toBe('*');
    const withStar = [d('*'), d('example.com.')];
    expect(matchDomain(withStar, 'h.example.com.')?.name).toBe('example.com.');
    expect(matchDomain(withStar, 'h.example.org.')?.name).toBe('*');
  });

  it('matches reverse names to reverse zones', () => {
    const rev = new DdnsDomainMatcher([d('2.0.192.in-addr.arpa.'), d('0.192.in-addr.arpa.'), d('8.b.d.0.1.0.0.2.ip6.arpa.')]);
    expect(rev.match(reverseIpAddress('192.0.2.7'))?.name).toBe('2.0.192.in-addr.arpa.');
    expect(rev.match(reverseIpAddress('192.0.3.7'))?.name).toBe('0.192.in-addr.arpa.');
    expect(rev.match(reverseIpAddress('192.1.2.7'))).toBeUndefined();
    expect(rev.match(reverseIpAddress('2001:db8:5::9'))?.name).toBe('8.b.d.0.1.0.0.2.ip6.arpa.');
    expect(rev.match(reverseIpAddress('2001:db9::9'))).toBeUndefined();
  });
});

describe('dnsNameError (TSIG key names, as dns::Name)', () => {
  it('accepts ordinary names, with or without the final dot, and escapes', () => {
    expect(dnsNameError('d2.md5.key')).toBeUndefined();
    expect(dnsNameError('key.example.')).toBeUndefined();
    expect(dnsNameError('a\\.b.c')).toBeUndefined();
    expect(dnsNameError('.')).toBeUndefined();
  });
  it('refuses empty labels and over-long labels or names', () => {
    expect(dnsNameError('a..b')).toBe('duplicate period in a..b');
    expect(dnsNameError('.a')).toMatch(/empty label/);
    expect(dnsNameError('x'.repeat(64))).toMatch(/label is too long/);
    expect(dnsNameError('x'.repeat(63))).toBeUndefined();
    expect(dnsNameError(Array(5).fill('y'.repeat(63)).join('.'))).toMatch(/name is too long/);
  });
});
