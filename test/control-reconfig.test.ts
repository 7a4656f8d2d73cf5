/**
 * Reconfiguration of the running daemon with NCRs in flight, against a real
 * BIND 9: config-set moving the NCR listener to another port and SIGHUP
 * rereading the file, both while NCRs are arriving. None is lost: every one
 * is counted in ncr-received and ends completed, its records in BIND.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NcrSender } from '../src/ncr/ncr-sender.js';
import type { NameChangeRequest } from '../src/ncr/name-change-request.js';
import { ncr } from './fixtures/d2-harness.js';
import { digRecords, freePort, startBind9, type Bind9Server } from './support/bind9.js';
import { Daemon, sleep, tempDir, writeJson } from './control-daemon.js';

const FWD = 'reconf.test';
const REV4 = '2.0.192.in-addr.arpa';
const secret = randomBytes(32).toString('base64');
const tmp = tempDir('d2box-reconf-');
let bind: Bind9Server;
let d: Daemon;
let file: string;

function config(port: number, timeout: number) {
  const servers = [{ 'ip-address': '127.0.0.1', port: bind.port }];
  return {
    DhcpDdns: {
      'ip-address': '127.0.0.1',
      port,
      'dns-server-timeout': timeout,
      'control-socket': { 'socket-type': 'unix', 'socket-name': join(tmp.dir, 'sock') },
      'tsig-keys': [{ name: 'd2.key', algorithm: 'HMAC-SHA256', secret }],
      'forward-ddns': { 'ddns-domains': [{ name: `${FWD}.`, 'key-name': 'd2.key', 'dns-servers': servers }] },
      'reverse-ddns': { 'ddns-domains': [{ name: `${REV4}.`, 'key-name': 'd2.key', 'dns-servers': servers }] },
    },
  };
}

beforeAll(async () => {
  bind = await startBind9({
    keys: [{ name: 'd2.key', algorithm: 'hmac-sha256', secret }],
    zones: [
      { name: FWD, updateKeys: ['d2.key'] },
      { name: REV4, updateKeys: ['d2.key'] },
    ],
  });
}, 60_000);

afterAll(async () => {
  if (d) expect(await d.stop()).toBe(0);
  await bind?.stop();
  tmp.cleanup();
});

let seq = 0;
function batch(count: number): NameChangeRequest[] {
  return Array.from({ length: count }, () => {
    seq++;
    return ncr({ fqdn: `h${seq}.${FWD}.`, ipAddress: `192.0.2.${seq}`, leaseLength: 600 });
  });
}

async function send(port: number, ncrs: NameChangeRequest[]): Promise<void> {
  const s = new NcrSender({ serverAddress: '127.0.0.1', serverPort: port });
  for (const n of ncrs) await s.send(n);
  await s.close();
}

/** Waits (bounded) until `total` NCRs have ended, completed or failed. */
async function waitEnded(total: number): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const ended = (await d.stat('d2box.ncr-completed')) + (await d.stat('d2box.ncr-failed'));
    if (ended >= total) return;
    await sleep(50);
  }
}

describe('reconfiguration with NCRs in flight', () => {
  it('config-set moving the listener and SIGHUP rereading the file lose no NCR', async () => {
    const port1 = await freePort();
    file = writeJson(join(tmp.dir, 'c.json'), config(port1, 1000));
    d = new Daemon(file, join(tmp.dir, 'sock'));
    await d.ready();

    // 1. NCRs to the first port, and config-set to a second port while they are being served.
    const first = batch(40);
    await send(port1, first);
    const port2 = await freePort();
    // The first batch is still being served (queued or in transactions) when config-set arrives.
    expect(await d.command('config-set', config(port2, 900))).toEqual({ result: 0, text: 'Configuration applied successfully.' });
    const second = batch(30);
    await send(port2, second);
    expect((await d.command('config-get')).arguments.DhcpDdns.port).toBe(port2);

    // 2. SIGHUP with the file changed, while more NCRs arrive.
    writeJson(file, config(port2, 800));
    const third = batch(30);
    const sending = send(port2, third);
    d.child.kill('SIGHUP');
    await sending;
    await d.waitLog(/DCTL_CONFIG_COMPLETE[^]*DCTL_CONFIG_COMPLETE[^]*DCTL_CONFIG_COMPLETE/);
    expect((await d.command('config-get')).arguments.DhcpDdns['dns-server-timeout']).toBe(800);

    const all = [...first, ...second, ...third];
    await waitEnded(all.length);
    expect(await d.stat('ncr-received')).toBe(all.length);
    expect(await d.stat('d2box.ncr-completed')).toBe(all.length);
    expect(await d.stat('d2box.ncr-failed')).toBe(0);
    // Two updates each (forward add, reverse replace), every one signed and successful.
    expect(await d.stat('update-sent')).toBe(2 * all.length);
    expect(await d.stat('update-success')).toBe(2 * all.length);
    expect(await d.stat('update-signed')).toBe(2 * all.length);
    expect(await d.stat('key[d2.key.].update-success')).toBe(2 * all.length);
    // And BIND has them: from before config-set, after it, and during SIGHUP.
    for (const n of [first[0]!, second[5]!, second[15]!, third[29]!]) {
      expect((await digRecords(bind.port, n.fqdn, 'A')).map((r) => r.data)).toEqual([n.ipAddress]);
    }
  });
});
