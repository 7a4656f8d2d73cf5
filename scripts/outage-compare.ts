/**
 * By hand (issue 21): Kea's kea-dhcp-ddns and d2box's daemon through the same DNS outage.
 * BIND up; 20 adds; BIND stopped; 10 removes of those + 30 new adds; 6 s later BIND started
 * again; 10 s after that, the A and PTR records are counted (expected: 40 + 40).
 *   npx tsx scripts/outage-compare.ts kea|d2box
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, readZone, startBind9 } from '../test/support/bind9.js';
import { stopChild } from '../test/support/child-process.js';
import { ncr, sleep } from '../test/fixtures/d2-harness.js';
import { NcrSender } from '../src/ncr/ncr-sender.js';

const which = process.argv[2] ?? 'kea';
const secret = randomBytes(32).toString('base64');
const FWD = 'burst.test';
const REV = '100.51.198.in-addr.arpa';
const bind = await startBind9({ keys: [{ name: 'd2.key', algorithm: 'hmac-sha256', secret }], zones: [{ name: FWD, updateKeys: ['d2.key'] }, { name: REV, updateKeys: ['d2.key'] }] });
const dir = mkdtempSync(join(tmpdir(), 'outage-'));
const port = await freePort();
const conf = {
  DhcpDdns: {
    'ip-address': '127.0.0.1',
    port,
    'dns-server-timeout': 250,
    'tsig-keys': [{ name: 'd2.key', algorithm: 'HMAC-SHA256', secret }],
    'forward-ddns': { 'ddns-domains': [{ name: `${FWD}.`, 'key-name': 'd2.key', 'dns-servers': [{ 'ip-address': '127.0.0.1', port: bind.port }] }] },
    'reverse-ddns': { 'ddns-domains': [{ name: `${REV}.`, 'key-name': 'd2.key', 'dns-servers': [{ 'ip-address': '127.0.0.1', port: bind.port }] }] },
    loggers: [{ name: 'kea-dhcp-ddns', severity: 'WARN', output_options: [{ output: join(dir, 'log') }] }],
  },
};
const file = join(dir, 'conf.json');
writeFileSync(file, JSON.stringify(conf));
const env = { ...process.env, KEA_PIDFILE_DIR: dir, KEA_LOCKFILE_DIR: dir };
const child = which === 'kea' ? spawn('kea-dhcp-ddns', ['-c', file], { stdio: 'ignore', env }) : spawn(process.execPath, ['dist/src/cli.js', '-c', file], { stdio: 'ignore', env });
try {
  // Listening once its port is taken (bounded).
  const dgram = await import('node:dgram');
  for (let i = 0; i < 100; i++) {
    const taken = await new Promise<boolean>((resolve) => {
      const s = dgram.createSocket('udp4');
      s.once('error', () => { s.close(); resolve(true); });
      s.bind(port, '127.0.0.1', () => s.close(() => resolve(false)));
    });
    if (taken) break;
    await sleep(100);
  }
  const sender = new NcrSender({ serverAddress: '127.0.0.1', serverPort: port });
  const old = Array.from({ length: 20 }, (_, i) => ncr({ fqdn: `old${i}.${FWD}.`, ipAddress: `198.51.100.${i + 1}` }));
  for (const n of old) await sender.send(n);
  await sleep(3000);
  const count = async () => {
    const recs = [...(await readZone(bind.port, FWD)), ...(await readZone(bind.port, REV))].filter((r) => !r.name.startsWith('ns.'));
    const a = recs.filter((r) => r.type === 'A');
    return {
      A: a.length,
      PTR: recs.filter((r) => r.type === 'PTR').length,
      'new adds present (of 30)': a.filter((r) => r.name.startsWith('new')).length,
      'removed names still present (of 10)': a.filter((r) => /^old\d\./.test(r.name)).length,
    };
  };
  console.log(which, 'before the outage', await count());
  await bind.halt();
  const t0 = Date.now();
  for (const o of old.slice(0, 10)) await sender.send(ncr({ fqdn: o.fqdn, ipAddress: o.ipAddress, dhcid: o.dhcidHex, changeType: 1 }));
  for (let i = 0; i < 30; i++) await sender.send(ncr({ fqdn: `new${i}.${FWD}.`, ipAddress: `198.51.100.${i + 101}` }));
  await sleep(6000 - (Date.now() - t0));
  await bind.resume();
  await sleep(10_000);
  console.log(which, '10 s after the outage (expected A 40, PTR 40)', await count());
  await sender.close();
} finally {
  await stopChild(child, child.pid!);
  await bind.stop();
}
