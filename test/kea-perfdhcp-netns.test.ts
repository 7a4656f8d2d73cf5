/**
 * The whole chain, for real, on a network of its own: Debian's `perfdhcp`
 * (kea-admin) plays a few dozen DHCPv4 clients doing DORA — and releasing some
 * of their leases — against Debian's `kea-dhcp4` configured for DDNS, which sends
 * its NameChangeRequests to the d2box daemon, which updates a real BIND 9.
 *
 * The network: two network namespaces made by this test (test/support/netns.ts)
 * joined by a veth pair, 192.0.2.1/24 (TEST-NET-1) on the server end and
 * 192.0.2.2/24 on the client end. perfdhcp runs in the client namespace and
 * broadcasts from its end of the veth (`-l <iface>`), as a directly attached
 * client would; kea-dhcp4 listens with its default raw sockets on the server end,
 * on the standard ports (the namespace is ours, so 67/68 are free). A namespace
 * has its own loopback, so d2box and named run inside the server namespace too,
 * next to kea-dhcp4, on that namespace's 127.0.0.1; we reach them from outside
 * only through files: d2box's unix control socket and kea-dhcp4's lease CSV. dig
 * runs inside the server namespace as well.
 *
 * The truth is what kea-dhcp4 wrote to its memfile lease CSV (the last line of an
 * address wins; a line with valid_lifetime 0 is memfile's record of a deleted
 * lease, i.e. a released one): after the run each zone must hold exactly the
 * records of the leases still active — A + DHCID forward, PTR + DHCID reverse,
 * with the DHCID kea-dhcp4 computed from the client identifier perfdhcp sends —
 * and nothing of the released ones. Checked by AXFR of both zones from BIND.
 *
 * What kea-dhcp4 2.2 does on DHCPRELEASE (found by running it, and what
 * Dhcpv4Srv::processRelease does): when the released lease had DDNS done
 * (fqdn_fwd/fqdn_rev set and a host name) it deletes the lease and queues a
 * CHG_REMOVE NCR for it, so every release perfdhcp gets through ends in a remove
 * and the records go; the test asserts one remove NCR per release.
 *
 * perfdhcp sends no client FQDN or host name option, so kea-dhcp4 names every
 * client itself: `ddns-replace-client-name: always` with `ddns-generated-prefix`
 * gives perf-192-0-2-N.<ddns-qualifying-suffix>.
 *
 * The second run loads the fault-injection sample library in d2box with
 * `"on-failure": "continue"`: some select_key callouts exit the library's worker
 * (and some throw); d2box replaces the worker, goes on with the key the
 * configuration names, and every record must still be right, while hooks-status
 * shows the crashes and the restarts.
 *
 * Everything the test starts is stopped by PID, both namespaces are deleted and
 * temp files removed, also on failure. If the machine cannot create network
 * namespaces the test fails saying so. D2BOX_NETNS_DEBUG=1 prints the logs.
 */
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reverseIpAddress } from '../src/config/domains.js';
import { readZone, startBind9, type Bind9Server, type DigRecord } from './support/bind9.js';
import { wrapCommand } from './support/child-process.js';
import { dhcidFromClientId, dhcpDdnsTo, startKeaDhcp4, type KeaDhcp4Server } from './support/kea-dhcp4.js';
import { createNetnsPair, listNetns, runBounded, type NetnsPair, type RunResult } from './support/netns.js';
import { Daemon, sleep, tempDir, writeJson, type Answer } from './control-daemon.js';

const FWD = 'kea.example';
const REV4 = '2.0.192.in-addr.arpa';
const KEY = 'kea-d2.key';
const D2_PORT = 53001;
const FAULT_LIB = resolve('dist/sample-hooks/fault-injection/index.js');
const DEBUG = !!process.env.D2BOX_NETNS_DEBUG;

/** perfdhcp's run: 40 DORA exchanges at 20/s from up to 1000 simulated clients, releases at 5/s. */
const PERF_EXCHANGES = 40;
const PERF_ARGS = (iface: string) => [
  '-4', '-g', 'single',
  '-l', iface, // broadcast from the client end of the veth, as a directly attached client
  '-r', '20', '-n', String(PERF_EXCHANGES), '-R', '1000',
  '-F', '5', // DHCPRELEASE for some of the leases it got, at 5/s
  '-W', '1000000', // after the last exchange, wait 1 s for answers before leaving
  '-x', 'e', // print why it exited
];

let net: NetnsPair | undefined;
let netError: unknown;

beforeAll(async () => {
  // createNetnsPair throws "this machine cannot create network namespaces ..." when it cannot; kept
  // here and thrown by each test, so each one fails with that message (a throwing beforeAll would
  // fail the file but report the tests as skipped).
  try {
    net = await createNetnsPair();
  } catch (e) {
    netError = e;
  }
}, 30_000);

afterAll(async () => {
  const names = net ? [net.server, net.client] : [];
  await net?.destroy();
  const left = await listNetns();
  for (const n of names) expect(left, 'namespaces left behind').not.toContain(n);
}, 20_000);

interface CsvLease {
  address: string;
  hwaddr: string;
  clientId: string;
  validLifetime: number;
  fqdnFwd: boolean;
  fqdnRev: boolean;
  hostname: string;
}

/** kea-dhcp4's memfile CSV, every line (header: address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context). */
function parseLeaseCsv(text: string): CsvLease[] {
  const lines = text.split('\n').filter((l) => l.trim());
  expect(lines[0]).toMatch(/^address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state/);
  return lines.slice(1).map((l) => {
    const f = l.split(',');
    return { address: f[0]!, hwaddr: f[1]!, clientId: f[2]!, validLifetime: Number(f[3]), fqdnFwd: f[6] === '1', fqdnRev: f[7] === '1', hostname: f[8]! };
  });
}

const recText = (r: DigRecord) => `${r.name} ${r.type} ${r.data}`;

interface ChainResult {
  perf: RunResult;
  active: CsvLease[];
  released: CsvLease[];
  keaAdds: number;
  keaRemoves: number;
  keaReleases: string[];
  stats: Record<string, number>;
  hooksStatus?: Answer;
  zone: { fwd: string[]; rev: string[] };
  expected: { fwd: string[]; rev: string[] };
  d2Log: string;
}

/** Starts BIND, d2box (with `hooks`), kea-dhcp4 in the server namespace, runs perfdhcp in the client one, and gathers what happened; stops everything it started, also when it fails. */
async function runChain(hooks?: unknown[]): Promise<ChainResult> {
  if (netError) throw netError;
  const ns = net;
  if (!ns) throw new Error('no network namespaces');
  const secret = randomBytes(32).toString('base64');
  const tmp = tempDir('d2box-netns-');
  let bind: Bind9Server | undefined;
  let d2: Daemon | undefined;
  let kea: KeaDhcp4Server | undefined;
  try {
    bind = await startBind9({
      keys: [{ name: KEY, algorithm: 'hmac-sha256', secret }],
      zones: [
        { name: FWD, updateKeys: [KEY] },
        { name: REV4, updateKeys: [KEY] },
      ],
      wrap: ns.serverExec,
    });
    const dns = [{ 'ip-address': '127.0.0.1', port: bind.port }];
    const socket = join(tmp.dir, 'd2.sock');
    const conf = writeJson(join(tmp.dir, 'd2box.json'), {
      DhcpDdns: {
        'ip-address': '127.0.0.1',
        port: D2_PORT,
        'dns-server-timeout': 1000,
        'control-socket': { 'socket-type': 'unix', 'socket-name': socket },
        'tsig-keys': [{ name: KEY, algorithm: 'HMAC-SHA256', secret }],
        'forward-ddns': { 'ddns-domains': [{ name: `${FWD}.`, 'key-name': KEY, 'dns-servers': dns }] },
        'reverse-ddns': { 'ddns-domains': [{ name: `${REV4}.`, 'key-name': KEY, 'dns-servers': dns }] },
        ...(hooks ? { 'hooks-libraries': hooks } : {}),
      },
    });
    d2 = new Daemon(conf, socket, { wrap: ns.serverExec });
    await d2.ready();

    kea = await startKeaDhcp4(
      {
        Dhcp4: {
          'valid-lifetime': 3600,
          'dhcp-ddns': dhcpDdnsTo(D2_PORT),
          'ddns-send-updates': true,
          'ddns-qualifying-suffix': `${FWD}.`,
          // perfdhcp sends neither option 81 nor 12: kea-dhcp4 makes up every name.
          'ddns-replace-client-name': 'always',
          'ddns-generated-prefix': 'perf',
          subnet4: [{ id: 1, subnet: '192.0.2.0/24', pools: [{ pool: '192.0.2.10 - 192.0.2.199' }] }],
        },
      },
      { wrap: ns.serverExec, interfacesConfig: { interfaces: [ns.serverIf] }, port: 67 },
    );

    const perf = await runBounded(...wrapCommand(ns.clientExec, 'perfdhcp', PERF_ARGS(ns.clientIf)), 30_000);
    if (DEBUG) console.log(perf.stdout, perf.stderr);
    // 0, or 3 ("one or more exchanges are not successfully completed"): a RELEASE has no answer, so perfdhcp counts every one as a drop.
    expect([0, 3], `perfdhcp exited ${perf.code} ${perf.signal ?? ''}:\n${perf.stdout}\n${perf.stderr}`).toContain(perf.code);

    // Settle: every NCR kea-dhcp4 sent has reached d2box and ended, and nothing new came for a while. Bounded.
    const keaSent = () => kea!.log().match(/DHCPSRV_DHCP_DDNS_NCR_SENT/g)?.length ?? 0;
    let stats = await d2.stats();
    let quiet = 0;
    const deadline = Date.now() + 20_000;
    for (let i = 0; i < 200 && Date.now() < deadline && quiet < 3; i++) {
      await sleep(100);
      const before = stats;
      stats = await d2.stats();
      const done = stats['ncr-received'] === keaSent() && (stats['d2box.ncr-completed'] ?? 0) + (stats['d2box.ncr-failed'] ?? 0) === stats['ncr-received'];
      quiet = done && before['ncr-received'] === stats['ncr-received'] ? quiet + 1 : 0;
    }
    expect(quiet, `NCRs never settled: kea-dhcp4 sent ${keaSent()}, d2box ${JSON.stringify(stats)}`).toBe(3);

    // The leases as kea-dhcp4 left them: the last line of each address.
    const all = parseLeaseCsv(kea.leases());
    const last = new Map<string, CsvLease>();
    for (const l of all) last.set(l.address, l);
    const active = [...last.values()].filter((l) => l.validLifetime > 0);
    const released = [...last.values()].filter((l) => l.validLifetime === 0);

    const expected = { fwd: [`ns.${FWD}. A 127.0.0.1`, `${FWD}. NS ns.${FWD}.`], rev: [`${REV4}. NS ns.${REV4}.`, `ns.${REV4}. A 127.0.0.1`] };
    // (test/support/bind9.ts gives every zone an NS and its A.)
    for (const l of active) {
      const fqdn = `${l.hostname}.`;
      const dhcid = dhcidFromClientId(Buffer.from(l.clientId.replace(/:/g, ''), 'hex'), fqdn).toString('base64');
      expected.fwd.push(`${fqdn} A ${l.address}`, `${fqdn} DHCID ${dhcid}`);
      expected.rev.push(`${reverseIpAddress(l.address)} PTR ${fqdn}`, `${reverseIpAddress(l.address)} DHCID ${dhcid}`);
    }
    const zone = {
      fwd: (await readZone(bind.port, FWD, ns.serverExec)).map(recText),
      rev: (await readZone(bind.port, REV4, ns.serverExec)).map(recText),
    };
    const log = kea.log();
    const result: ChainResult = {
      perf,
      active,
      released,
      // kea-dhcp4 2.2's debug line: "DHCPSRV_DHCP_DDNS_NCR_SENT NameChangeRequest sent to DHCP DDNS service: Type: 0 (CHG_ADD) ..."
      keaAdds: log.match(/DHCPSRV_DHCP_DDNS_NCR_SENT[^\n]*\n?[^\n]*CHG_ADD/g)?.length ?? 0,
      keaRemoves: log.match(/DHCPSRV_DHCP_DDNS_NCR_SENT[^\n]*\n?[^\n]*CHG_REMOVE/g)?.length ?? 0,
      keaReleases: [...log.matchAll(/DHCP4_RELEASE .*address (\S+) was released properly/g)].map((m) => m[1]!),
      stats,
      ...(hooks ? { hooksStatus: await d2.command('hooks-status') } : {}),
      zone,
      expected,
      d2Log: (d2.stderr() + d2.stdout()),
    };
    if (DEBUG) console.log(kea.log().slice(-6000), (d2.stderr() + d2.stdout()).slice(-6000));
    if (DEBUG) console.log({ active: active.length, released: released.length, adds: result.keaAdds, removes: result.keaRemoves, stats, hooks: JSON.stringify(result.hooksStatus) });
    return result;
  } catch (e) {
    if (DEBUG) console.log(kea?.log().slice(-6000), (d2 ? d2.stderr() + d2.stdout() : '').slice(-6000), bind?.log().slice(-3000));
    throw e;
  } finally {
    await kea?.stop();
    await d2?.stop();
    await bind?.stop();
    tmp.cleanup();
  }
}

/** What both runs must show: every ACKed lease still held has its records, no released one has any, nothing failed. */
function checkChain(r: ChainResult): void {
  // perfdhcp did what it was asked: a few dozen DORAs, some releases.
  expect(r.perf.stdout).toMatch(/Statistics for: REQUEST-ACK\*+\s*sent packets: \d+\s*received packets: (\d+)/);
  const acks = Number(/Statistics for: REQUEST-ACK\*+\s*sent packets: \d+\s*received packets: (\d+)/.exec(r.perf.stdout)![1]);
  expect(acks).toBeGreaterThanOrEqual(PERF_EXCHANGES * 0.75);
  expect(r.active.length + r.released.length).toBeGreaterThanOrEqual(PERF_EXCHANGES * 0.75);
  expect(r.released.length, 'perfdhcp released some leases').toBeGreaterThan(0);
  expect(r.active.length).toBeGreaterThan(0);
  // Every lease got a name from kea-dhcp4 and both updates.
  for (const l of [...r.active, ...r.released]) {
    expect(l.hostname).toBe(`perf-${l.address.replace(/\./g, '-')}.${FWD}`);
    expect([l.fqdnFwd, l.fqdnRev]).toEqual([true, true]);
    expect(l.clientId).toMatch(/^01:/); // perfdhcp sends option 61: htype 1 + its MAC
  }
  // kea-dhcp4 sent a remove for every release it logged, and those are the deleted leases.
  expect([...new Set(r.keaReleases)].sort()).toEqual(r.released.map((l) => l.address).sort());
  expect(r.keaRemoves).toBe(r.keaReleases.length);
  expect(r.keaAdds).toBeGreaterThanOrEqual(r.active.length + r.released.length);
  expect(r.stats['ncr-received']).toBe(r.keaAdds + r.keaRemoves);

  // BIND holds exactly the records of the active leases.
  expect([...r.zone.fwd].sort()).toEqual([...r.expected.fwd].sort());
  expect([...r.zone.rev].sort()).toEqual([...r.expected.rev].sort());

  expect(r.stats['ncr-invalid']).toBe(0);
  expect(r.stats['ncr-error']).toBe(0);
  expect(r.stats['d2box.ncr-failed'] ?? 0).toBe(0);
  expect(r.stats['d2box.ncr-completed']).toBe(r.stats['ncr-received']);
  expect(r.stats['update-error']).toBe(0);
  expect(r.stats['update-timeout']).toBe(0);
  expect(r.stats['update-signed']).toBe(r.stats['update-sent']);
  expect(r.d2Log).not.toMatch(/DHCP_DDNS_INVALID_NCR/);
}

describe('perfdhcp → kea-dhcp4 → d2box → BIND 9, in network namespaces of their own', () => {
  it('every lease kea-dhcp4 ACKed and still holds has A, PTR and DHCID in BIND; every released one has none', async () => {
    const r = await runChain();
    checkChain(r);
  }, 50_000);

  it('the same with the fault-injection library crashing some select_key callouts under "on-failure": "continue": records all right, hooks-status shows the crashes and restarts', async () => {
    const r = await runChain([
      {
        library: FAULT_LIB,
        // Without "key" the library leaves the key alone when it behaves; a failed callout under
        // "continue" leaves it too, so every update is signed with the domain's key either way.
        parameters: { faults: { exit: 0.2, throw: 0.1 }, seed: 7 },
        sandbox: { 'on-failure': 'continue', 'callout-timeout-ms': 2000, 'max-restarts': 1000, 'restart-window-s': 60 },
      },
    ]);
    checkChain(r);
    expect(r.hooksStatus?.result).toBe(0);
    const lib = r.hooksStatus!.arguments.libraries[0];
    expect(lib.library).toBe(FAULT_LIB);
    expect(lib.state).not.toBe('quarantined');
    expect(lib.calls).toBeGreaterThan(0);
    expect(lib.failures.exit, 'select_key callouts that took their worker down').toBeGreaterThan(0);
    expect(lib.failures.throw).toBeGreaterThan(0);
    expect(lib.restarts, 'replacement workers').toBeGreaterThan(0);
    // A worker's exit fails every select_key callout it had in flight (d2box sends the callouts begun in
    // one turn of the loop together), so there are at least as many exit failures as replacements.
    expect(lib.restarts).toBeLessThanOrEqual(lib.failures.exit);
  }, 50_000);
});
