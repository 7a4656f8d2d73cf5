/**
 * The compatibility contract end to end: a real ISC kea-dhcp4 (Debian's
 * kea-dhcp4-server, Kea 2.2) configured for DDNS sends its NameChangeRequests
 * to the d2box daemon (`node dist/src/cli.js -c FILE`), which updates a real
 * BIND 9. DHCP traffic reaches kea-dhcp4 on loopback only: it listens with
 * UDP sockets on `lo` and our client speaks to it as a relay agent
 * (test/support/kea-dhcp4.ts). What BIND serves is read through dig; what
 * d2box counted through statistic-get-all on its control socket.
 * KEA_E2E_DEBUG=1 prints kea-dhcp4's debug log at the end.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reverseIpAddress } from '../src/config/domains.js';
import { digRecords, freePort, startBind9, type Bind9Server } from './support/bind9.js';
import { Daemon, sleep, tempDir, writeJson } from './control-daemon.js';
import { DhcpRelayClient, dhcidFromHwaddr, dhcpDdnsTo, FQDN_E, FQDN_N, FQDN_S, newMac, RELAY_ADDRESS, startKeaDhcp4, type KeaDhcp4Server, type Lease } from './support/kea-dhcp4.js';

const FWD = 'kea.example';
const REV4 = '2.0.192.in-addr.arpa';
const VALID_LIFETIME = 3600;
/** kea-dhcp4 2.2 puts max(600, valid-lifetime / 3) in the NCR's lease-length (ncr_generator.cc, RFC 4702 §5); D2 uses it as the TTL. */
const DNS_TTL = 1200;
const RESERVED_MAC = newMac();
const RESERVED_IP = '192.0.2.200';
const secret = randomBytes(32).toString('base64');

let bind: Bind9Server;
let d2: Daemon;
let kea: KeaDhcp4Server;
let client: DhcpRelayClient;
const tmp = tempDir('d2box-kea4e2e-');

beforeAll(async () => {
  bind = await startBind9({
    keys: [{ name: 'kea-d2.key', algorithm: 'hmac-sha256', secret }],
    zones: [
      { name: FWD, updateKeys: ['kea-d2.key'] },
      { name: REV4, updateKeys: ['kea-d2.key'] },
    ],
  });
  const d2Port = await freePort();
  const socket = `${tmp.dir}/d2.sock`;
  const file = writeJson(`${tmp.dir}/d2box.json`, {
    DhcpDdns: {
      'ip-address': '127.0.0.1',
      port: d2Port,
      'dns-server-timeout': 1000,
      'control-socket': { 'socket-type': 'unix', 'socket-name': socket },
      'tsig-keys': [{ name: 'kea-d2.key', algorithm: 'HMAC-SHA256', secret }],
      'forward-ddns': { 'ddns-domains': [{ name: `${FWD}.`, 'key-name': 'kea-d2.key', 'dns-servers': [{ 'ip-address': '127.0.0.1', port: bind.port }] }] },
      'reverse-ddns': { 'ddns-domains': [{ name: `${REV4}.`, 'key-name': 'kea-d2.key', 'dns-servers': [{ 'ip-address': '127.0.0.1', port: bind.port }] }] },
    },
  });
  d2 = new Daemon(file, socket);
  await d2.ready();
  // kea-dhcp4 as a Kea operator configures it for DDNS; only the ports are ours.
  kea = await startKeaDhcp4({
    Dhcp4: {
      'valid-lifetime': VALID_LIFETIME,
      'dhcp-ddns': dhcpDdnsTo(d2Port),
      'ddns-send-updates': true,
      'ddns-qualifying-suffix': `${FWD}.`,
      'ddns-override-client-update': false,
      'ddns-replace-client-name': 'never',
      subnet4: [
        {
          id: 1,
          subnet: '192.0.2.0/24',
          relay: { 'ip-addresses': [RELAY_ADDRESS] },
          pools: [{ pool: '192.0.2.10 - 192.0.2.99' }],
          reservations: [{ 'hw-address': RESERVED_MAC.toString('hex').match(/../g)!.join(':'), 'ip-address': RESERVED_IP, hostname: 'reserved-host' }],
        },
      ],
    },
  });
  client = await DhcpRelayClient.open(kea.port);
}, 60_000);

afterAll(async () => {
  if (process.env.KEA_E2E_DEBUG) console.log(kea?.log().slice(-8000));
  await client?.close();
  await kea?.stop();
  await d2?.stop();
  await bind?.stop();
  tmp.cleanup();
});

const data = async (name: string, type: string) => (await digRecords(bind.port, name, type)).map((r) => r.data).sort();

/** Polls BIND (bounded) until `check` holds; returns its last value. */
async function until<T>(read: () => Promise<T>, check: (v: T) => boolean, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let v = await read();
  for (let i = 0; i < 400 && !check(v) && Date.now() < deadline; i++) {
    await sleep(50);
    v = await read();
  }
  return v;
}

async function stats(): Promise<Record<string, number>> {
  const a = await d2.command('statistic-get-all');
  expect(a.result).toBe(0);
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(a.arguments as Record<string, [number, string][]>)) out[k] = v[0]![0];
  return out;
}

/** Waits (bounded) until d2box has ended `n` NCRs in success, as its statistics say. */
async function waitCompleted(n: number): Promise<Record<string, number>> {
  return until(stats, (s) => (s['d2box.ncr-completed'] ?? 0) >= n || (s['update-error'] ?? 0) > 0);
}

/** Every record BIND serves for a lease: forward A + DHCID, reverse PTR + DHCID. */
async function records(fqdn: string, address: string) {
  const rev = reverseIpAddress(address);
  return {
    a: await digRecords(bind.port, fqdn, 'A'),
    fwdDhcid: await data(fqdn, 'DHCID'),
    ptr: await data(rev, 'PTR'),
    revDhcid: await data(rev, 'DHCID'),
  };
}

describe('kea-dhcp4 → d2box → BIND 9', () => {
  const leases: { lease: Lease; fqdn: string }[] = [];

  it('leases kea-dhcp4 grants get A + DHCID and PTR + DHCID in BIND, with the DHCID kea-dhcp4 computed (RFC 4701) and TTL = the NCR lease-length', async () => {
    const clients = [
      // A fully qualified name in option 81.
      { mac: newMac(), fqdn: `laptop-${randomBytes(3).toString('hex')}.${FWD}.`, expect: '' },
      // A partial name: kea-dhcp4 appends ddns-qualifying-suffix.
      { mac: newMac(), fqdn: `printer-${randomBytes(3).toString('hex')}`, expect: '' },
      // A reservation: kea-dhcp4 uses the reserved hostname, qualified, and the reserved address.
      { mac: RESERVED_MAC, fqdn: 'whatever-the-client-says', expect: `reserved-host.${FWD}.` },
    ];
    for (const c of clients) {
      const lease = await client.obtain({ mac: c.mac, fqdn: c.fqdn, fqdnFlags: FQDN_S | FQDN_E });
      const fqdn = c.expect || (c.fqdn.endsWith('.') ? c.fqdn : `${c.fqdn}.${FWD}.`);
      // kea-dhcp4 tells the client it does both updates (S set, N clear) under the name it chose.
      expect(lease.fqdn).toBeDefined();
      expect(lease.fqdn!.name).toBe(fqdn);
      expect(lease.fqdn!.flags & (FQDN_S | FQDN_N)).toBe(FQDN_S);
      expect(lease.leaseTime).toBe(VALID_LIFETIME);
      leases.push({ lease, fqdn });
    }
    expect(leases[2]!.lease.address).toBe(RESERVED_IP);
    expect(new Set(leases.map((l) => l.lease.address)).size).toBe(3);

    const s = await waitCompleted(3);
    for (const { lease, fqdn } of leases) {
      const dhcid = dhcidFromHwaddr(lease.mac, fqdn).toString('base64');
      const r = await until(() => records(fqdn, lease.address), (x) => x.a.length > 0 && x.ptr.length > 0 && x.revDhcid.length > 0);
      expect(r.a.map((x) => [x.data, x.ttl]), fqdn).toEqual([[lease.address, DNS_TTL]]);
      expect(r.fwdDhcid, fqdn).toEqual([dhcid]);
      expect(r.ptr, fqdn).toEqual([fqdn]);
      expect(r.revDhcid, fqdn).toEqual([dhcid]);
    }
    // The lease file kea-dhcp4 wrote names the same hosts, with both update flags.
    for (const { lease, fqdn } of leases) expect(kea.leases()).toMatch(new RegExp(`^${lease.address.replace(/\./g, '\\.')},[^\\n]*,1,1,${fqdn.replace(/\./g, '\\.')},`, 'm'));

    expect(s['ncr-received']).toBe(3);
    expect(s['ncr-invalid']).toBe(0);
    expect(s['ncr-error']).toBe(0);
    expect(s['d2box.ncr-completed']).toBe(3);
    expect(s['update-success']).toBe(6);
    expect(s['update-signed']).toBe(6);
    expect(s['update-error']).toBe(0);
    expect(s['update-timeout']).toBe(0);
    expect(s['key[kea-d2.key.].update-success']).toBe(6);
    // kea-dhcp4 itself says it handed over exactly those 3 requests, none failed.
    expect(kea.log().match(/DHCPSRV_DHCP_DDNS_NCR_SENT/g)?.length).toBe(3);
    expect([...kea.log().matchAll(/DHCPSRV_DHCP_DDNS_NCR_SENT[^]*?Lease Length: (\d+)/g)].map((m) => Number(m[1]))).toEqual([DNS_TTL, DNS_TTL, DNS_TTL]);
    expect(kea.log()).not.toMatch(/DHCP_DDNS_NCR_SEND|DHCPSRV_DHCP_DDNS_ERROR|DHCPSRV_DHCP_DDNS_HANDLER_NULL/);
    expect(d2.stderr() + d2.stdout()).toMatch(/DHCP_DDNS_ADD_SUCCEEDED/);
  }, 40_000);

  it('DHCPRELEASE makes kea-dhcp4 send removes: A, PTR and both DHCIDs disappear; d2box counts every NCR, none invalid', async () => {
    expect(leases).toHaveLength(3);
    for (const { lease } of leases) await client.release(lease);
    for (const { lease, fqdn } of leases) {
      const r = await until(() => records(fqdn, lease.address), (x) => !x.a.length && !x.fwdDhcid.length && !x.ptr.length && !x.revDhcid.length);
      expect(r, fqdn).toEqual({ a: [], fwdDhcid: [], ptr: [], revDhcid: [] });
    }
    const s = await waitCompleted(6);
    expect(s['ncr-received']).toBe(6);
    expect(s['ncr-invalid']).toBe(0);
    expect(s['ncr-error']).toBe(0);
    expect(s['d2box.ncr-completed']).toBe(6);
    expect(s['update-error']).toBe(0);
    expect(s['update-timeout']).toBe(0);
    expect(kea.log().match(/DHCPSRV_DHCP_DDNS_NCR_SENT/g)?.length).toBe(6);
    expect(d2.stderr() + d2.stdout()).toMatch(/DHCP_DDNS_REMOVE_SUCCEEDED/);
    // The other records of the zones are untouched.
    expect(await data(`ns.${FWD}`, 'A')).toEqual(['127.0.0.1']);
  }, 40_000);

  it('a burst of 16 clients at once, half naming themselves with option 12 (host name) instead of 81: every NCR kea-dhcp4 sends is applied, then removed', async () => {
    const before = await stats();
    const specs = Array.from({ length: 16 }, (_, i) => {
      const label = `burst${i}-${randomBytes(2).toString('hex')}`;
      return { mac: newMac(), label, ...(i % 2 ? { hostname: label } : { fqdn: label }) };
    });
    const got = await Promise.all(specs.map((s) => client.obtain(s)));
    for (const [i, l] of got.entries()) {
      // Option 12 in, option 12 out (qualified); option 81 in, option 81 out.
      if (i % 2) expect(l.hostname).toBe(`${specs[i]!.label}.${FWD}`);
      else expect(l.fqdn?.name).toBe(`${specs[i]!.label}.${FWD}.`);
    }
    expect(new Set(got.map((l) => l.address)).size).toBe(16);
    const s = await waitCompleted(before['d2box.ncr-completed']! + 16);
    expect(s['ncr-received']).toBe(before['ncr-received']! + 16);
    for (const [i, l] of got.entries()) {
      const fqdn = `${specs[i]!.label}.${FWD}.`;
      const dhcid = dhcidFromHwaddr(l.mac, fqdn).toString('base64');
      const r = await until(() => records(fqdn, l.address), (x) => x.a.length > 0 && x.revDhcid.length > 0);
      expect({ ...r, a: r.a.map((x) => x.data) }, fqdn).toEqual({ a: [l.address], fwdDhcid: [dhcid], ptr: [fqdn], revDhcid: [dhcid] });
    }
    await Promise.all(got.map((l) => client.release(l)));
    const t = await waitCompleted(before['d2box.ncr-completed']! + 32);
    for (const [i, l] of got.entries()) {
      const fqdn = `${specs[i]!.label}.${FWD}.`;
      const r = await until(() => records(fqdn, l.address), (x) => !x.a.length && !x.fwdDhcid.length && !x.ptr.length && !x.revDhcid.length);
      expect(r, fqdn).toEqual({ a: [], fwdDhcid: [], ptr: [], revDhcid: [] });
    }
    expect(t['ncr-received']).toBe(before['ncr-received']! + 32);
    expect(t['ncr-invalid']).toBe(0);
    expect(t['ncr-error']).toBe(0);
    expect(t['d2box.ncr-failed'] ?? 0).toBe(0);
    expect(t['update-error']).toBe(0);
    expect(kea.log().match(/DHCPSRV_DHCP_DDNS_NCR_SENT/g)?.length).toBe(t['ncr-received']);
    expect(d2.stderr() + d2.stdout()).not.toMatch(/DHCP_DDNS_INVALID_NCR/);
  }, 50_000);
});
