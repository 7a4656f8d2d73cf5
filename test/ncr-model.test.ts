import { describe, expect, it } from 'vitest';
import {
  CONFLICT_RESOLUTION_MODES,
  createNcr,
  ncrEquals,
  ncrFromJSON,
  ncrToJSON,
  type ChangeType,
  type NameChangeRequest,
  type NcrJsonDialect,
} from '../src/ncr/name-change-request.js';
import { decodeNcr, encodeNcr, frameJson } from '../src/ncr/wire.js';
import { Name } from '../src/dns/name.js';
import { parseIpAddress } from '../src/dns/ip-address.js';
import { parseKeaJson, KeaReal } from '../src/ncr/kea-json.js';

function must(r: ReturnType<typeof createNcr>): NameChangeRequest {
  if (!r.ok) throw new Error(r.reason);
  return r.ncr;
}

describe('NameChangeRequest JSON', () => {
  it("writes Kea's exact text for each dialect", () => {
    const ncr = must(
      createNcr({
        changeType: 0,
        forwardChange: true,
        reverseChange: false,
        fqdn: 'myhost.example.com',
        ipAddress: '192.168.2.1',
        dhcid: '010203040A7F8E3D',
        leaseExpiresOn: Date.UTC(2013, 0, 21, 13, 24, 5) / 1000,
        leaseLength: 1300,
      }),
    );
    // the JSON of Kea 2.2's ncr_unittests (valid_msgs[0]), as its toJSON writes it
    expect(ncrToJSON(ncr, 'kea-2.2')).toBe(
      '{"change-type":0,"forward-change":true,"reverse-change":false,"fqdn":"myhost.example.com.","ip-address":"192.168.2.1","dhcid":"010203040A7F8E3D","lease-expires-on":"20130121132405","lease-length":1300,"use-conflict-resolution":true}',
    );
    expect(ncrToJSON(ncr, 'kea-2.6')).toBe(
      '{"change-type":0,"forward-change":true,"reverse-change":false,"fqdn":"myhost.example.com.","ip-address":"192.168.2.1","dhcid":"010203040A7F8E3D","lease-expires-on":"20130121132405","lease-length":1300,"conflict-resolution-mode":"check-with-dhcid"}',
    );
    expect(ncrToJSON(ncr, 'kea-3.2')).toBe(
      '{"change-type":0,"forward-change":true,"reverse-change":false,"fqdn":"myhost.example.com.","ip-address":"192.168.2.1","dhcid":"010203040A7F8E3D","lease-length":1300,"conflict-resolution-mode":"check-with-dhcid"}',
    );
    const framed = encodeNcr(ncr, 'kea-2.2');
    expect(framed.readUInt16BE(0)).toBe(framed.length - 2);
  });

  it('round-trips every field combination in every dialect', () => {
    let n = 0;
    const dialects: NcrJsonDialect[] = ['kea-2.2', 'kea-2.6', 'kea-3.2'];
    for (const changeType of [0, 1] as ChangeType[])
      for (const [forwardChange, reverseChange] of [[true, true], [true, false], [false, true]] as const)
        for (const ipAddress of ['192.0.2.7', '2001:db8::7'])
          for (const mode of CONFLICT_RESOLUTION_MODES)
            for (const leaseExpiresOn of [undefined, 1893456000])
              for (const dialect of dialects) {
                const ncr = must(
                  createNcr({
                    changeType,
                    forwardChange,
                    reverseChange,
                    fqdn: 'h.example.org.',
                    ipAddress,
                    dhcid: new Uint8Array([0, 1, 1, 0xab, 0xcd]),
                    leaseExpiresOn,
                    leaseLength: 86400,
                    conflictResolutionMode: mode,
                  }),
                );
                const back = decodeNcr(encodeNcr(ncr, dialect));
                expect(back.ok).toBe(true);
                if (!back.ok) continue;
                const b = back.ncr;
                expect([b.changeType, b.forwardChange, b.reverseChange, b.fqdn, b.ipAddress, b.dhcidHex, b.leaseLength]).toEqual([
                  changeType, forwardChange, reverseChange, 'h.example.org.', ipAddress, '000101ABCD', 86400,
                ]);
                expect(b.ipVersion).toBe(ipAddress.includes(':') ? 6 : 4);
                expect([...b.dhcid]).toEqual([0, 1, 1, 0xab, 0xcd]);
                // kea-2.2 carries only use-conflict-resolution: the checking modes come back as check-with-dhcid
                const expectedMode =
                  dialect === 'kea-2.2' ? (mode === 'check-with-dhcid' || mode === 'check-exists-with-dhcid' ? 'check-with-dhcid' : 'no-check-with-dhcid') : mode;
                expect(b.conflictResolutionMode).toBe(expectedMode);
                expect(b.leaseExpiresOn).toBe(dialect === 'kea-3.2' ? undefined : (leaseExpiresOn ?? 0));
                if (dialect === 'kea-2.6' && leaseExpiresOn !== undefined) expect(ncrEquals(b, ncr)).toBe(true);
                n++;
              }
    expect(n).toBe(2 * 3 * 2 * 4 * 2 * 3);
  });

  it('normalizes as Kea: trailing dot, case kept, IPv6 compressed, DHCID upper-case hex', () => {
    const r = ncrFromJSON(
      '{"change-type":1,"forward-change":true,"reverse-change":true,"fqdn":"Web.Example.COM","ip-address":"2001:0DB8:0:0:0:0:0:0001","dhcid":"ab cd ef 01","lease-expires-on":"20301231235960","lease-length":5}',
    );
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.ncr.fqdn).toBe('Web.Example.COM.');
    expect(r.ncr.ipAddress).toBe('2001:db8::1');
    expect(r.ncr.dhcidHex).toBe('ABCDEF01');
    expect(r.ncr.conflictResolutionMode).toBe('check-with-dhcid');
    // second 60 is kept as Kea's arithmetic does: it prints as the next minute
    expect(ncrToJSON(r.ncr)).toContain('"lease-expires-on":"20310101000000"');
  });

  it('conflict-resolution-mode wins over use-conflict-resolution, which is then not even type-checked', () => {
    const r = ncrFromJSON(
      '{"change-type":0,"forward-change":true,"reverse-change":false,"fqdn":"a.b.","ip-address":"10.0.0.1","dhcid":"01","lease-length":1,"use-conflict-resolution":"junk","conflict-resolution-mode":"no-check-without-dhcid"}',
    );
    expect(r.ok && r.ncr.conflictResolutionMode).toBe('no-check-without-dhcid');
  });

  it('createNcr validates like fromJSON and names the field', () => {
    const r = createNcr({ changeType: 0, forwardChange: true, reverseChange: true, fqdn: 'x.', ipAddress: '1.2.3', dhcid: '01', leaseLength: 1 });
    expect(r.ok).toBe(false);
    if (!r.ok) expect([r.code, r.field]).toEqual(['bad-value', 'ip-address']);
    const r2 = createNcr({ changeType: 0, forwardChange: true, reverseChange: true, fqdn: 'x.', ipAddress: '1.2.3.4', dhcid: '01', leaseLength: 1.5 });
    expect(!r2.ok && r2.field).toBe('lease-length');
  });

  it('writes names with special characters as valid JSON that reads back to the same name', () => {
    const ncr = must(createNcr({ changeType: 0, forwardChange: true, reverseChange: false, fqdn: 'a\\.b\\"c\\032d.example.', ipAddress: '10.0.0.1', dhcid: '01', leaseLength: 1 }));
    expect(ncr.fqdn).toBe('a\\.b\\"c\\032d.example.');
    const back = ncrFromJSON(ncrToJSON(ncr));
    expect(back.ok && back.ncr.fqdn).toBe(ncr.fqdn);
  });

  it('frameJson refuses text a Kea listener could not receive', () => {
    expect(() => frameJson('x'.repeat(4095))).toThrow(RangeError);
    expect(frameJson('x'.repeat(4094)).length).toBe(4096);
  });
});

describe('Kea text forms', () => {
  it('DNS names as isc::dns::Name', () => {
    const ok = (s: string): string | undefined => {
      const r = Name.parse(s);
      return r.ok ? r.value.toText() : undefined;
    };
    expect(ok('.')).toBe('.');
    expect(ok('@')).toBe('.');
    expect(ok('a.b')).toBe('a.b.');
    expect(ok('a\\065b.')).toBe('aAb.');
    expect(ok('a b.')).toBe('a\\032b.');
    expect(ok('x@y.')).toBe('x\\@y.');
    expect(ok('\u00e9.')).toBe('\\233.');
    expect(ok('')).toBeUndefined();
    expect(ok('a\\25')).toBeUndefined();
    expect(ok('\\[x')).toBeUndefined();
    expect(ok('a\\2x.')).toBeUndefined();
    // wire length limit: 4 labels of 63 + 1 label of 1 = 4*64 + 2 + 1 = 259 > 255
    expect(ok(Array(4).fill('a'.repeat(63)).join('.') + '.b')).toBeUndefined();
    // 3*64 + 62 + 1 + 1 = 256 > 255, and one less fits
    expect(ok(Array(3).fill('a'.repeat(63)).join('.') + '.' + 'a'.repeat(62))).toBeUndefined();
    expect(ok(Array(3).fill('a'.repeat(63)).join('.') + '.' + 'a'.repeat(61))).toBeDefined();
  });

  it('IP addresses as inet_pton/inet_ntop', () => {
    const t = (s: string): string | undefined => {
      const r = parseIpAddress(s);
      return r.ok ? r.text : undefined;
    };
    expect(t('::')).toBe('::');
    expect(t('::1')).toBe('::1');
    expect(t('1::')).toBe('1::');
    expect(t('1:0:0:2:0:0:0:3')).toBe('1:0:0:2::3');
    expect(t('1:0:0:2:0:0:3:4')).toBe('1::2:0:0:3:4');
    expect(t('::ffff:1.2.3.4')).toBe('::ffff:1.2.3.4');
    expect(t('::1.2.3.4')).toBe('::1.2.3.4');
    expect(t('0:0:0:0:0:1:1.2.3.4')).toBe('::1:102:304');
    expect(t('1:2:3:4:5:6:7:8')).toBe('1:2:3:4:5:6:7:8');
    expect(t('0.0.0.0')).toBe('0.0.0.0');
    for (const bad of ['1:2:3:4:5:6:7:8:9', ':1::', '1::2::3', '12345::', '1.2.3.04', '1.2.3.4.5', 'fe80::1%lo', '1:2:3:4:5:6:7:', ' 1.2.3.4'])
      expect(t(bad), bad).toBeUndefined();
  });

  it("Kea's JSON dialect", () => {
    const v = (s: string): unknown => {
      const r = parseKeaJson(Buffer.from(s, 'latin1'));
      return r.ok ? r.value : 'ERR';
    };
    expect(v('+5')).toBe(5);
    expect(v('007')).toBe(7);
    expect(v('1.0')).toEqual(new KeaReal(1));
    expect(v('.5')).toEqual(new KeaReal(0.5));
    expect(v('[1,]')).toEqual([1]);
    expect(v('{"a":1,}')).toBe('ERR');
    expect(v('"\\u00e9"')).toBe('\u00e9');
    expect(v('"\\u0100"')).toBe('ERR');
    expect(v('9223372036854775807')).toBe(9223372036854775807n);
    expect(v('9223372036854775808')).toBe('ERR');
    expect(v('{"a":1,"a":2}')).toEqual(new Map([['a', 2]]));
    expect(v('e5')).toBe('ERR');
    expect(v('nul')).toBe('ERR');
    // deep nesting is handled without recursion
    expect(v('['.repeat(4000) + ']'.repeat(4000))).not.toBe('ERR');
  });
});
