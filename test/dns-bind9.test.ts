/**
 * Integration against a real BIND 9: our client's signed RFC 2136 updates are
 * applied by named (checked through dig, not through d2box), named's signed
 * answers verify with our TSIG, wrong keys are refused and reported, and a
 * silent server times out.
 */
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  D2UpdateMessage,
  DnsClient,
  Rcode,
  rdataA,
  rdataAAAA,
  rdataDHCID,
  rdataPTR,
  RRType,
  TsigKey,
  type TsigAlgorithm,
} from '../src/dns/index.js';
import { digRecords, readZone, startBind9, type Bind9Server } from './support/bind9.js';

const FWD = 'example.com';
const REV4 = '2.0.192.in-addr.arpa';
const REV6 = '8.b.d.0.1.0.0.2.ip6.arpa';

const ALGS: [TsigAlgorithm, string][] = [
  ['HMAC-MD5', 'hmac-md5'],
  ['HMAC-SHA1', 'hmac-sha1'],
  ['HMAC-SHA224', 'hmac-sha224'],
  ['HMAC-SHA256', 'hmac-sha256'],
  ['HMAC-SHA384', 'hmac-sha384'],
  ['HMAC-SHA512', 'hmac-sha512'],
];
const secrets = new Map(ALGS.map(([a]) => [a, randomBytes(32).toString('base64')]));
const keyName = (bindAlg: string) => `d2.${bindAlg}.key`;
const keyFor = (alg: TsigAlgorithm, digestBits = 0) =>
  TsigKey.create({ name: keyName(ALGS.find(([a]) => a === alg)![1]), algorithm: alg, secret: secrets.get(alg)!, digestBits });
const truncSecret = randomBytes(32).toString('base64');
const truncKey = TsigKey.create({ name: 'd2.trunc.key', algorithm: 'HMAC-SHA256', secret: truncSecret, digestBits: 128 });
const dhcidHex = (n: number) => '000101' + Buffer.alloc(32, n).toString('hex');

let bind: Bind9Server;
let client: DnsClient;
let server: { address: string; port: number };

beforeAll(async () => {
  const keys = [
    ...ALGS.map(([a, b]) => ({ name: keyName(b), algorithm: b, secret: secrets.get(a)! })),
    { name: 'd2.trunc.key', algorithm: 'hmac-sha256-128', secret: truncSecret },
  ];
  const names = keys.map((k) => k.name);
  bind = await startBind9({
    keys,
    zones: [
      { name: FWD, updateKeys: names, records: ['taken IN A 192.0.2.200'] },
      { name: REV4, updateKeys: names },
      { name: REV6, updateKeys: names },
    ],
  });
  server = { address: '127.0.0.1', port: bind.port };
  client = new DnsClient({ timeoutMs: 3000 });
}, 60_000);

afterAll(async () => {
  await client?.close();
  await bind?.stop();
});

describe('BIND 9 accepts our updates', () => {
  it.each(ALGS)('%s: add A + DHCID, BIND signs the answer and we verify it, then delete', async (alg) => {
    const key = keyFor(alg);
    const host = `host-${alg.toLowerCase()}.${FWD}`;
    const add = new D2UpdateMessage()
      .setZone(FWD)
      .requireNameNotInUse(host)
      .addRR(host, 1200, rdataA('192.0.2.10'))
      .addRR(host, 1200, rdataDHCID(dhcidHex(7)));
    const r = await client.update(server, add, { key });
    expect(r.status).toBe('success');
    if (r.status !== 'success') return;
    expect(r.rcode).toBe(Rcode.NOERROR);
    expect(r.signed).toBe(true);
    expect(r.response.tsig?.rdata.mac.length).toBe(key.fullMacLength);
    expect(r.response.tsig?.rdata.algorithm.equals(key.algorithmName)).toBe(true);

    const a = await digRecords(bind.port, host, 'A');
    expect(a.map((x) => [x.data, x.ttl])).toEqual([['192.0.2.10', 1200]]);
    const d = await digRecords(bind.port, host, 'DHCID');
    expect(d.map((x) => x.data.replace(/\s+/g, ''))).toEqual([Buffer.from(dhcidHex(7), 'hex').toString('base64')]);

    // Kea's remove: prerequisite DHCID (value dependent), delete the A RR, then the rest.
    const del = new D2UpdateMessage()
      .setZone(FWD)
      .requireRRsetExistsWithValue(host, rdataDHCID(dhcidHex(7)))
      .deleteRR(host, rdataA('192.0.2.10'))
      .deleteAllRRsets(host);
    const r2 = await client.update(server, del, { key });
    expect(r2.status === 'success' && r2.rcode).toBe(Rcode.NOERROR);
    expect(await digRecords(bind.port, host, 'A')).toEqual([]);
    expect(await digRecords(bind.port, host, 'DHCID')).toEqual([]);
  });

  it('adds PTR records in IPv4 and IPv6 reverse zones', async () => {
    const key = keyFor('HMAC-SHA256');
    const r4 = await client.update(
      server,
      new D2UpdateMessage().setZone(REV4).deleteRRset(`10.${REV4}`, RRType.PTR).addRR(`10.${REV4}`, 600, rdataPTR('host.example.com.')),
      { key },
    );
    expect(r4.status === 'success' && r4.rcode).toBe(Rcode.NOERROR);
    const v6name = `1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.${REV6}`;
    const r6 = await client.update(server, new D2UpdateMessage().setZone(REV6).addRR(v6name, 600, rdataPTR('host6.example.com')), { key });
    expect(r6.status === 'success' && r6.rcode).toBe(Rcode.NOERROR);
    const zone4 = await readZone(bind.port, REV4);
    expect(zone4).toContainEqual({ name: `10.${REV4}.`, ttl: 600, class: 'IN', type: 'PTR', data: 'host.example.com.' });
    const p6 = await digRecords(bind.port, v6name, 'PTR');
    expect(p6.map((x) => x.data)).toEqual(['host6.example.com.']);
  });

  it('adds an AAAA', async () => {
    const host = `v6.${FWD}`;
    const r = await client.update(server, new D2UpdateMessage().setZone(FWD).addRR(host, 300, rdataAAAA('2001:db8::1')), { key: keyFor('HMAC-SHA512') });
    expect(r.status === 'success' && r.rcode).toBe(Rcode.NOERROR);
    expect((await digRecords(bind.port, host, 'AAAA')).map((x) => x.data)).toEqual(['2001:db8::1']);
  });

  it('prerequisites fail with the RFC 2136 rcodes, in a signed answer', async () => {
    const key = keyFor('HMAC-SHA1');
    // Name in use where "not in use" is required: YXDOMAIN.
    const y = await client.update(server, new D2UpdateMessage().setZone(FWD).requireNameNotInUse(`taken.${FWD}`).addRR(`taken.${FWD}`, 300, rdataA('192.0.2.201')), { key });
    expect(y.status === 'success' && y.rcode).toBe(Rcode.YXDOMAIN);
    // RRset must exist but does not: NXRRSET.
    const n = await client.update(server, new D2UpdateMessage().setZone(FWD).requireRRsetExists(`taken.${FWD}`, RRType.DHCID).deleteAllRRsets(`taken.${FWD}`), { key });
    expect(n.status === 'success' && n.rcode).toBe(Rcode.NXRRSET);
    // Name must be in use but is not: NXDOMAIN.
    const x = await client.update(server, new D2UpdateMessage().setZone(FWD).requireNameInUse(`nobody.${FWD}`).addRR(`nobody.${FWD}`, 300, rdataA('192.0.2.9')), { key });
    expect(x.status === 'success' && x.rcode).toBe(Rcode.NXDOMAIN);
    // RRset must not exist but does: YXRRSET.
    const yx = await client.update(server, new D2UpdateMessage().setZone(FWD).requireRRsetNotExists(`taken.${FWD}`, RRType.A).addRR(`taken.${FWD}`, 300, rdataA('192.0.2.9')), { key });
    expect(yx.status === 'success' && yx.rcode).toBe(Rcode.YXRRSET);
    // Nothing changed.
    expect((await digRecords(bind.port, `taken.${FWD}`, 'A')).map((r) => r.data)).toEqual(['192.0.2.200']);
    expect(await digRecords(bind.port, `nobody.${FWD}`, 'A')).toEqual([]);
  });

  it('digest-bits: a 128-bit truncated HMAC-SHA256 is accepted, and BIND answers with a truncated MAC we verify', async () => {
    const host = `trunc.${FWD}`;
    const r = await client.update(server, new D2UpdateMessage().setZone(FWD).addRR(host, 300, rdataA('192.0.2.77')), { key: truncKey });
    expect(r.status).toBe('success');
    if (r.status !== 'success') return;
    expect(r.rcode).toBe(Rcode.NOERROR);
    expect(r.response.tsig?.rdata.mac.length).toBe(16);
    expect((await digRecords(bind.port, host, 'A')).map((x) => x.data)).toEqual(['192.0.2.77']);
  });

  it('many updates in flight on one socket are all matched to their answers', async () => {
    const key = keyFor('HMAC-SHA384');
    const n = 24;
    const outcomes = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        client.update(server, new D2UpdateMessage().setZone(FWD).addRR(`bulk${i}.${FWD}`, 300, rdataA(`192.0.2.${i + 1}`)), { key }),
      ),
    );
    expect(outcomes.map((o) => o.status === 'success' && o.rcode)).toEqual(Array(n).fill(Rcode.NOERROR));
    expect(new Set(outcomes.map((o) => o.id)).size).toBe(n);
    const zone = await readZone(bind.port, FWD);
    for (let i = 0; i < n; i++) expect(zone).toContainEqual(expect.objectContaining({ name: `bulk${i}.${FWD}.`, type: 'A', data: `192.0.2.${i + 1}` }));
    expect(client.inFlight).toBe(0);
  });
});

describe('BIND 9 refuses what it must', () => {
  it('a wrong secret: BIND answers NOTAUTH/BADSIG unsigned, reported as a tsig-error, nothing added', async () => {
    const bad = TsigKey.create({ name: keyName('hmac-sha256'), algorithm: 'HMAC-SHA256', secret: randomBytes(32).toString('base64') });
    const host = `wrongkey.${FWD}`;
    const r = await client.update(server, new D2UpdateMessage().setZone(FWD).addRR(host, 300, rdataA('192.0.2.66')), { key: bad });
    expect(r.status).toBe('tsig-error');
    if (r.status === 'success') return;
    expect(r.tsigError).toBe(Rcode.BADSIG);
    expect(r.response?.rcode).toBe(Rcode.NOTAUTH);
    expect(r.response?.tsig?.rdata.error).toBe(Rcode.BADSIG);
    expect(await digRecords(bind.port, host, 'A')).toEqual([]);
  });

  it('a key BIND does not know: BADKEY', async () => {
    const unknown = TsigKey.create({ name: 'nobody.key', algorithm: 'HMAC-SHA256', secret: randomBytes(32).toString('base64') });
    const r = await client.update(server, new D2UpdateMessage().setZone(FWD).addRR(`unknownkey.${FWD}`, 300, rdataA('192.0.2.67')), { key: unknown });
    expect(r.status).toBe('tsig-error');
    expect(r.status !== 'success' && r.tsigError).toBe(Rcode.BADKEY);
    expect(await digRecords(bind.port, `unknownkey.${FWD}`, 'A')).toEqual([]);
  });

  it('a truncated MAC from a key BIND holds untruncated is refused', async () => {
    const shortKey = keyFor('HMAC-SHA256', 128);
    const r = await client.update(server, new D2UpdateMessage().setZone(FWD).addRR(`shortmac.${FWD}`, 300, rdataA('192.0.2.68')), { key: shortKey });
    expect(r.status).not.toBe('success');
    expect(await digRecords(bind.port, `shortmac.${FWD}`, 'A')).toEqual([]);
  });

  it('an unsigned update to a key-protected zone is REFUSED', async () => {
    const r = await client.update(server, new D2UpdateMessage().setZone(FWD).addRR(`unsigned.${FWD}`, 300, rdataA('192.0.2.69')));
    expect(r.status === 'success' && r.rcode).toBe(Rcode.REFUSED);
    expect(r.status === 'success' && r.signed).toBe(false);
    expect(await digRecords(bind.port, `unsigned.${FWD}`, 'A')).toEqual([]);
  });

  it('an update for a zone BIND does not serve is NOTAUTH', async () => {
    const r = await client.update(server, new D2UpdateMessage().setZone('other.test').addRR('x.other.test', 300, rdataA('192.0.2.70')), { key: keyFor('HMAC-SHA256') });
    expect(r.status).toBe('success');
    expect(r.status === 'success' && r.rcode).toBe(Rcode.NOTAUTH);
  });
});

describe('a server that never answers', () => {
  it('times out after dns-server-timeout, with nothing left in flight', async () => {
    const silent = dgram.createSocket('udp4');
    let received = 0;
    silent.on('message', () => received++);
    await new Promise<void>((r) => silent.bind(0, '127.0.0.1', () => r()));
    const c = new DnsClient({ timeoutMs: 200 });
    try {
      const r = await c.update({ address: '127.0.0.1', port: silent.address().port }, new D2UpdateMessage().setZone(FWD).addRR(`t.${FWD}`, 1, rdataA('192.0.2.1')), { key: keyFor('HMAC-MD5') });
      expect(r.status).toBe('timeout');
      expect(received).toBe(1);
      expect(c.inFlight).toBe(0);
      expect(c.stats).toMatchObject({ sent: 1, signed: 1, timeout: 1, success: 0 });
    } finally {
      await c.close();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });
});
