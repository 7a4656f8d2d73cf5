/**
 * Every TSIG algorithm of Kea's D2 through d2box end to end: NCRs over UDP to
 * the d2box daemon (`node dist/src/cli.js -c FILE`), which signs its RFC 2136
 * updates with the key of the matching domain and sends them to a real BIND 9.
 * Each algorithm (and two digest-bits truncations) has its own forward and
 * reverse zone that only its key may update, so a record appearing (checked
 * through dig) proves BIND verified that very signature; update-success per
 * key proves d2box verified BIND's signed answer. A key whose secret differs
 * from BIND's is refused: nothing appears, update-error counts it.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reverseIpAddress } from '../src/config/domains.js';
import { NcrSender } from '../src/ncr/ncr-sender.js';
import { digRecords, freePort, startBind9, type Bind9Server } from './support/bind9.js';
import { Daemon, sleep, tempDir, writeJson } from './control-daemon.js';
import { ncr } from './fixtures/d2-harness.js';

interface Case {
  /** Label used for the key name and the zones. */
  label: string;
  /** Kea's spelling (d2box configuration). */
  algorithm: string;
  /** BIND's spelling, with the truncation suffix when digest-bits is set. */
  bind: string;
  digestBits?: number;
  /** Secret BIND has; d2box gets the same unless `wrongSecret`. */
  secret: string;
  wrongSecret?: boolean;
  /** Third octet of the 10.0.x.0/24 reverse zone. */
  net: number;
}

const secret = () => randomBytes(32).toString('base64');
const CASES: Case[] = [
  { label: 'md5', algorithm: 'HMAC-MD5', bind: 'hmac-md5', secret: secret(), net: 1 },
  { label: 'sha1', algorithm: 'HMAC-SHA1', bind: 'hmac-sha1', secret: secret(), net: 2 },
  { label: 'sha224', algorithm: 'HMAC-SHA224', bind: 'hmac-sha224', secret: secret(), net: 3 },
  { label: 'sha256', algorithm: 'HMAC-SHA256', bind: 'hmac-sha256', secret: secret(), net: 4 },
  { label: 'sha384', algorithm: 'HMAC-SHA384', bind: 'hmac-sha384', secret: secret(), net: 5 },
  { label: 'sha512', algorithm: 'HMAC-SHA512', bind: 'hmac-sha512', secret: secret(), net: 6 },
  { label: 'sha256-128', algorithm: 'HMAC-SHA256', bind: 'hmac-sha256-128', digestBits: 128, secret: secret(), net: 7 },
  { label: 'sha512-256', algorithm: 'HMAC-SHA512', bind: 'hmac-sha512-256', digestBits: 256, secret: secret(), net: 8 },
  { label: 'wrong', algorithm: 'HMAC-SHA256', bind: 'hmac-sha256', secret: secret(), wrongSecret: true, net: 9 },
];
const keyName = (c: Case) => `${c.label}.tsig.key`;
const fwdZone = (c: Case) => `${c.label}.tsig.test`;
const revZone = (c: Case) => `${c.net}.0.10.in-addr.arpa`;

let bind: Bind9Server;
let d2: Daemon;
let sender: NcrSender;
const tmp = tempDir('d2box-tsig-');

beforeAll(async () => {
  bind = await startBind9({
    keys: CASES.map((c) => ({ name: keyName(c), algorithm: c.bind, secret: c.secret })),
    zones: CASES.flatMap((c) => [
      { name: fwdZone(c), updateKeys: [keyName(c)] },
      { name: revZone(c), updateKeys: [keyName(c)] },
    ]),
  });
  const port = await freePort();
  const socket = `${tmp.dir}/d2.sock`;
  const domain = (c: Case, name: string) => ({ name: `${name}.`, 'key-name': keyName(c), 'dns-servers': [{ 'ip-address': '127.0.0.1', port: bind.port }] });
  const file = writeJson(`${tmp.dir}/d2box.json`, {
    DhcpDdns: {
      'ip-address': '127.0.0.1',
      port,
      'dns-server-timeout': 1000,
      'control-socket': { 'socket-type': 'unix', 'socket-name': socket },
      'tsig-keys': CASES.map((c) => ({
        name: keyName(c),
        algorithm: c.algorithm,
        ...(c.digestBits ? { 'digest-bits': c.digestBits } : {}),
        secret: c.wrongSecret ? secret() : c.secret,
      })),
      'forward-ddns': { 'ddns-domains': CASES.map((c) => domain(c, fwdZone(c))) },
      'reverse-ddns': { 'ddns-domains': CASES.map((c) => domain(c, revZone(c))) },
    },
  });
  d2 = new Daemon(file, socket);
  await d2.ready();
  sender = new NcrSender({ serverAddress: '127.0.0.1', serverPort: port });
}, 60_000);

afterAll(async () => {
  await sender?.close();
  await d2?.stop();
  await bind?.stop();
  tmp.cleanup();
});

async function stats(): Promise<Record<string, number>> {
  const a = await d2.command('statistic-get-all');
  expect(a.result).toBe(0);
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(a.arguments as Record<string, [number, string][]>)) out[k] = v[0]![0];
  return out;
}

/** Waits (bounded) until d2box has ended `n` NCRs, completed or failed. */
async function waitEnded(n: number, timeoutMs = 30_000): Promise<Record<string, number>> {
  const deadline = Date.now() + timeoutMs;
  let s = await stats();
  const ended = (x: Record<string, number>) => (x['d2box.ncr-completed'] ?? 0) + (x['d2box.ncr-failed'] ?? 0);
  for (let i = 0; i < 600 && ended(s) < n && Date.now() < deadline; i++) {
    await sleep(50);
    s = await stats();
  }
  return s;
}

const data = async (name: string, type: string) => (await digRecords(bind.port, name, type)).map((r) => r.data).sort();
const keyStat = (s: Record<string, number>, c: Case, stat: string) => s[`key[${keyName(c)}.].${stat}`];

describe('TSIG algorithms through d2box to BIND 9', () => {
  const good = CASES.filter((c) => !c.wrongSecret);
  const wrong = CASES.filter((c) => c.wrongSecret);
  const adds = CASES.map((c) => ({ c, n: ncr({ fqdn: `host.${fwdZone(c)}.`, ipAddress: `10.0.${c.net}.10` }) }));

  it('each algorithm (HMAC-MD5 … HMAC-SHA512, and digest-bits truncations) signs adds BIND accepts; a wrong secret is refused', async () => {
    for (const { n } of adds) await sender.send(n);
    const s = await waitEnded(adds.length);
    expect(s['ncr-received']).toBe(adds.length);
    expect(s['ncr-invalid']).toBe(0);

    for (const { c, n } of adds.filter((a) => !a.c.wrongSecret)) {
      const rev = reverseIpAddress(n.ipAddress);
      const dhcid = Buffer.from(n.dhcid).toString('base64');
      expect(await data(n.fqdn, 'A'), c.label).toEqual([n.ipAddress]);
      expect(await data(n.fqdn, 'DHCID'), c.label).toEqual([dhcid]);
      expect(await data(rev, 'PTR'), c.label).toEqual([n.fqdn]);
      expect(await data(rev, 'DHCID'), c.label).toEqual([dhcid]);
      // Forward add and reverse replace, each signed with this key, each answer verified.
      expect(keyStat(s, c, 'update-sent'), c.label).toBe(2);
      expect(keyStat(s, c, 'update-success'), c.label).toBe(2);
      expect(keyStat(s, c, 'update-error'), c.label).toBe(0);
    }
    for (const { c, n } of adds.filter((a) => a.c.wrongSecret)) {
      expect(await data(n.fqdn, 'A'), c.label).toEqual([]);
      expect(await data(n.fqdn, 'DHCID'), c.label).toEqual([]);
      expect(await data(reverseIpAddress(n.ipAddress), 'PTR'), c.label).toEqual([]);
      expect(keyStat(s, c, 'update-success'), c.label).toBe(0);
      expect(keyStat(s, c, 'update-error'), c.label).toBeGreaterThanOrEqual(1);
      expect(keyStat(s, c, 'update-error'), c.label).toBe(keyStat(s, c, 'update-sent'));
    }
    expect(s['d2box.ncr-completed']).toBe(good.length);
    expect(s['d2box.ncr-failed']).toBe(wrong.length);
    expect(s['update-signed']).toBe(s['update-sent']);
    expect(s['update-unsigned']).toBe(0);
    expect(s['update-success']).toBe(2 * good.length);
    expect(s['update-error']).toBe(wrong.reduce((t, c) => t + keyStat(s, c, 'update-error')!, 0));
    // BIND itself says why it refused the wrong key's update.
    expect(bind.log()).toMatch(new RegExp(`${wrong[0]!.label}\\.tsig\\.key[^\\n]*(bad|signature|BADSIG|failed)`, 'i'));
  }, 45_000);

  it('each algorithm signs removes BIND accepts: A, PTR and DHCIDs disappear', async () => {
    const removes = adds.filter((a) => !a.c.wrongSecret).map(({ c, n }) => ({ c, n: ncr({ fqdn: n.fqdn, ipAddress: n.ipAddress, dhcid: n.dhcidHex, changeType: 1 }) }));
    const before = await stats();
    for (const { n } of removes) await sender.send(n);
    const s = await waitEnded((before['d2box.ncr-completed'] ?? 0) + (before['d2box.ncr-failed'] ?? 0) + removes.length);
    for (const { c, n } of removes) {
      const rev = reverseIpAddress(n.ipAddress);
      expect(await data(n.fqdn, 'A'), c.label).toEqual([]);
      expect(await data(n.fqdn, 'DHCID'), c.label).toEqual([]);
      expect(await data(rev, 'PTR'), c.label).toEqual([]);
      expect(await data(rev, 'DHCID'), c.label).toEqual([]);
      expect(keyStat(s, c, 'update-error'), c.label).toBe(0);
      expect(keyStat(s, c, 'update-success'), c.label).toBeGreaterThan(keyStat(before, c, 'update-success')!);
    }
    expect(s['d2box.ncr-completed']).toBe(before['d2box.ncr-completed']! + removes.length);
    expect(s['ncr-invalid']).toBe(0);
  }, 45_000);
});
