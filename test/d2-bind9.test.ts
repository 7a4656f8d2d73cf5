/**
 * d2box doing D2's job end to end against a real BIND 9: NCRs over UDP to a
 * D2Process, RFC 2136 updates signed with TSIG to named, and the records
 * checked through dig (never through d2box's own view).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { reverseIpAddress } from '../src/config/domains.js';
import { digRecords, freePort, startBind9, type Bind9Server } from './support/bind9.js';
import { spawn } from 'node:child_process';
import { NcrSender } from '../src/ncr/ncr-sender.js';
import { configJson, D2Harness, ncr, silentServer, type ConfigSpec } from './fixtures/d2-harness.js';

const FWD = 'example.com';
const REV4 = '2.0.192.in-addr.arpa';
const REV6 = '8.b.d.0.1.0.0.2.ip6.arpa';
const HOOKZONE = 'hooked.test';
const SELECT_KEY = resolve('test/fixtures/d2-select-key.mjs');

const d2Secret = randomBytes(32).toString('base64');
const hookSecret = randomBytes(32).toString('base64');
const D2_KEY = { name: 'd2.key', algorithm: 'HMAC-SHA256', secret: d2Secret };
const HOOK_KEY = { name: 'hook.key', algorithm: 'HMAC-SHA256', secret: hookSecret };

let bind: Bind9Server;
let dead: Awaited<ReturnType<typeof silentServer>>;
const harnesses: D2Harness[] = [];
const dir = mkdtempSync(join(tmpdir(), 'd2box-d2-'));

beforeAll(async () => {
  bind = await startBind9({
    keys: [
      { name: 'd2.key', algorithm: 'hmac-sha256', secret: d2Secret },
      { name: 'hook.key', algorithm: 'hmac-sha256', secret: hookSecret },
    ],
    zones: [
      { name: FWD, updateKeys: ['d2.key'] },
      { name: REV4, updateKeys: ['d2.key'] },
      { name: REV6, updateKeys: ['d2.key'] },
      // Only the key a select_key library hands out may update this one.
      { name: HOOKZONE, updateKeys: ['hook.key'] },
    ],
  });
  dead = await silentServer();
}, 60_000);

afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
});

afterAll(async () => {
  await dead?.close();
  await bind?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function baseSpec(port: number, over: Partial<ConfigSpec> = {}): ConfigSpec {
  return {
    port,
    timeoutMs: 1000,
    keys: [D2_KEY, HOOK_KEY],
    forward: [
      { name: `${FWD}.`, key: 'd2.key', servers: [{ port: bind.port }] },
      { name: `${HOOKZONE}.`, key: 'd2.key', servers: [{ port: bind.port }] },
    ],
    reverse: [
      { name: `${REV4}.`, key: 'd2.key', servers: [{ port: bind.port }] },
      { name: `${REV6}.`, key: 'd2.key', servers: [{ port: bind.port }] },
    ],
    ...over,
  };
}

async function startD2(over: Partial<ConfigSpec> = {}, opts: ConstructorParameters<typeof D2Harness>[0] = {}): Promise<D2Harness> {
  const h = new D2Harness(opts);
  harnesses.push(h);
  const r = await h.configure(baseSpec(await freePort(), over));
  expect(r).toEqual({ ok: true });
  return h;
}

const data = async (name: string, type: string) => (await digRecords(bind.port, name, type)).map((r) => r.data).sort();
let seq = 0;
const host = (label = 'h') => `${label}${++seq}.${FWD}.`;
const v4 = () => `192.0.2.${(seq % 250) + 2}`;

describe('add and remove, check-with-dhcid (Kea default)', () => {
  it('an IPv4 add puts A + DHCID at the FQDN and PTR + DHCID at the reverse name, TTL = lease length; stats as Kea', async () => {
    const d2 = await startD2();
    const n = ncr({ fqdn: host(), ipAddress: v4(), leaseLength: 1234 });
    await d2.send(n);
    const [done] = await d2.waitDone([n]);
    expect(done).toMatchObject({ status: 'completed', transaction: { forwardCompleted: true, reverseCompleted: true } });
    expect(done!.transaction!.trail).toEqual(['READY_ST', 'SELECTING_FWD_SERVER_ST', 'ADDING_FWD_ADDRS_ST', 'SELECTING_REV_SERVER_ST', 'REPLACING_REV_PTRS_ST', 'PROCESS_TRANS_OK_ST']);
    const a = await digRecords(bind.port, n.fqdn, 'A');
    expect(a.map((r) => [r.data, r.ttl])).toEqual([[n.ipAddress, 1234]]);
    expect(await data(n.fqdn, 'DHCID')).toEqual([Buffer.from(n.dhcid).toString('base64')]);
    const rev = reverseIpAddress(n.ipAddress);
    expect(await data(rev, 'PTR')).toEqual([n.fqdn]);
    expect(await data(rev, 'DHCID')).toEqual([Buffer.from(n.dhcid).toString('base64')]);
    expect(d2.stat('ncr-received')).toBe(1);
    expect(d2.stat('update-sent')).toBe(2);
    expect(d2.stat('update-signed')).toBe(2);
    expect(d2.stat('update-unsigned')).toBe(0);
    expect(d2.stat('update-success')).toBe(2);
    expect(d2.stat('key[d2.key.].update-sent')).toBe(2);
    expect(d2.stat('key[d2.key.].update-success')).toBe(2);
    expect(d2.stat('d2box.ncr-completed')).toBe(1);
  });

  it('an IPv6 add puts AAAA + DHCID and an ip6.arpa PTR', async () => {
    const d2 = await startD2();
    const n = ncr({ fqdn: host('v6-'), ipAddress: `2001:db8::${seq}` });
    await d2.send(n);
    expect((await d2.waitDone([n]))[0]!.status).toBe('completed');
    expect(await data(n.fqdn, 'AAAA')).toEqual([n.ipAddress]);
    const rev = reverseIpAddress(n.ipAddress);
    expect(rev.endsWith(`${REV6}.`)).toBe(true);
    expect(await data(rev, 'PTR')).toEqual([n.fqdn]);
  });

  it('a remove with another DHCID leaves every record (YXRRSET on the RR step: failed, as Kea); with the same DHCID takes them away', async () => {
    const d2 = await startD2();
    const add = ncr({ fqdn: host(), ipAddress: v4() });
    await d2.send(add);
    await d2.waitDone([add]);
    const rev = reverseIpAddress(add.ipAddress);
    const stranger = ncr({ fqdn: add.fqdn, ipAddress: add.ipAddress, changeType: 1 });
    await d2.send(stranger);
    const [s] = await d2.waitDone([stranger]);
    // Its DHCID does not match: the A/AAAA step gets NXRRSET (taken as done, as Kea), the RR step
    // finds the owner's A still there (BIND checks value-independent prerequisites first): YXRRSET.
    expect(s).toMatchObject({ status: 'failed', reason: 'rejected' });
    expect(s!.detail).toMatch(/YXRRSET/);
    expect(s!.transaction!.trail).toEqual(['READY_ST', 'SELECTING_FWD_SERVER_ST', 'REMOVING_FWD_ADDRS_ST', 'REMOVING_FWD_RRS_ST', 'PROCESS_TRANS_FAILED_ST']);
    expect(await data(add.fqdn, 'A')).toEqual([add.ipAddress]);
    expect(await data(rev, 'PTR')).toEqual([add.fqdn]);

    const remove = ncr({ fqdn: add.fqdn, ipAddress: add.ipAddress, dhcid: add.dhcidHex, changeType: 1 });
    await d2.send(remove);
    const r = (await d2.waitDone([add, remove]))[1]; // same DHCID as the add: its second ending
    expect(r).toMatchObject({ status: 'completed' });
    expect(r!.transaction!.trail).toEqual([
      'READY_ST', 'SELECTING_FWD_SERVER_ST', 'REMOVING_FWD_ADDRS_ST', 'REMOVING_FWD_RRS_ST', 'SELECTING_REV_SERVER_ST', 'REMOVING_REV_PTRS_ST', 'PROCESS_TRANS_OK_ST',
    ]);
    expect(await data(add.fqdn, 'A')).toEqual([]);
    expect(await data(add.fqdn, 'DHCID')).toEqual([]);
    expect(await data(rev, 'PTR')).toEqual([]);
    expect(await data(rev, 'DHCID')).toEqual([]);
  });

  it('the same client re-adding with a new address replaces it (YXDOMAIN → REPLACING_FWD_ADDRS_ST)', async () => {
    const d2 = await startD2();
    const first = ncr({ fqdn: host(), ipAddress: '192.0.2.201' });
    await d2.send(first);
    await d2.waitDone([first]);
    const again = ncr({ fqdn: first.fqdn, ipAddress: '192.0.2.202', dhcid: first.dhcidHex });
    await d2.send(again);
    const endings = await d2.waitDone([first, again]);
    expect(endings[1]!.transaction!.trail).toContain('REPLACING_FWD_ADDRS_ST');
    expect(endings[1]!.status).toBe('completed');
    expect(await data(first.fqdn, 'A')).toEqual(['192.0.2.202']);
  });

  it("conflict: another client's DHCID owns the name, so the add fails and the records stay untouched", async () => {
    const d2 = await startD2();
    const owner = ncr({ fqdn: host(), ipAddress: '192.0.2.210' });
    await d2.send(owner);
    await d2.waitDone([owner]);
    const intruder = ncr({ fqdn: owner.fqdn, ipAddress: '192.0.2.211' });
    await d2.send(intruder);
    const [x] = await d2.waitDone([intruder]);
    expect(x).toMatchObject({ status: 'failed', reason: 'conflict', transaction: { forwardCompleted: false, reverseCompleted: false } });
    expect(x!.detail).toMatch(/NXRRSET/);
    expect(x!.transaction!.trail).toEqual(['READY_ST', 'SELECTING_FWD_SERVER_ST', 'ADDING_FWD_ADDRS_ST', 'REPLACING_FWD_ADDRS_ST', 'PROCESS_TRANS_FAILED_ST']);
    expect(await data(owner.fqdn, 'A')).toEqual(['192.0.2.210']);
    expect(await data(owner.fqdn, 'DHCID')).toEqual([Buffer.from(owner.dhcid).toString('base64')]);
    expect(await data(reverseIpAddress('192.0.2.211'), 'PTR')).toEqual([]);
    expect(d2.stat('d2box.ncr-failed.conflict')).toBe(1);
    // Both answers (YXDOMAIN, NXRRSET) were valid DNS answers: update-success counts them, as Kea.
    expect(d2.stat('update-success')).toBe(4);
  });

  it('forward-change false changes only the reverse zone; reverse-change false only the forward', async () => {
    const d2 = await startD2();
    const revOnly = ncr({ fqdn: host(), ipAddress: '192.0.2.220', forwardChange: false });
    const fwdOnly = ncr({ fqdn: host(), ipAddress: '192.0.2.221', reverseChange: false });
    await d2.send(revOnly, fwdOnly);
    await d2.waitDone([revOnly, fwdOnly]);
    expect(await data(revOnly.fqdn, 'A')).toEqual([]);
    expect(await data(reverseIpAddress('192.0.2.220'), 'PTR')).toEqual([revOnly.fqdn]);
    expect(await data(fwdOnly.fqdn, 'A')).toEqual(['192.0.2.221']);
    expect(await data(reverseIpAddress('192.0.2.221'), 'PTR')).toEqual([]);
  });

  it('an FQDN no forward domain matches fails counted, sends nothing, and does not hold up the next NCR', async () => {
    const d2 = await startD2();
    const lost = ncr({ fqdn: 'host.nowhere.org.', ipAddress: '192.0.2.230' });
    const fine = ncr({ fqdn: host(), ipAddress: '192.0.2.231' });
    await d2.send(lost, fine);
    const endings = await d2.waitDone([lost, fine]);
    expect(endings.find((e) => e.ncr.dhcidHex === lost.dhcidHex)).toMatchObject({ status: 'failed', reason: 'no-forward-match' });
    expect(endings.find((e) => e.ncr.dhcidHex === fine.dhcidHex)).toMatchObject({ status: 'completed' });
    expect(d2.stat('update-sent')).toBe(2);
    expect(d2.stat('d2box.ncr-failed.no-forward-match')).toBe(1);
    expect(await data(reverseIpAddress('192.0.2.230'), 'PTR')).toEqual([]);
  });
});

describe('the other conflict-resolution modes', () => {
  it("no-check-with-dhcid overwrites another client's name (Kea's SimpleAdd), and SimpleRemove deletes it", async () => {
    const d2 = await startD2();
    const owner = ncr({ fqdn: host(), ipAddress: '192.0.2.240' });
    await d2.send(owner);
    await d2.waitDone([owner]);
    const taker = ncr({ fqdn: owner.fqdn, ipAddress: '192.0.2.241', conflictResolutionMode: 'no-check-with-dhcid' });
    await d2.send(taker);
    const [t] = await d2.waitDone([taker]);
    expect(t!.status).toBe('completed');
    expect(t!.transaction!.trail).toContain('REPLACING_FWD_ADDRS_ST');
    expect(await data(owner.fqdn, 'A')).toEqual(['192.0.2.241']);
    expect(await data(owner.fqdn, 'DHCID')).toEqual([Buffer.from(taker.dhcid).toString('base64')]);
    const gone = ncr({ fqdn: owner.fqdn, ipAddress: '192.0.2.241', changeType: 1, conflictResolutionMode: 'no-check-with-dhcid' });
    await d2.send(gone);
    expect((await d2.waitDone([gone]))[0]!.status).toBe('completed');
    expect(await data(owner.fqdn, 'A')).toEqual([]);
    expect(await data(owner.fqdn, 'DHCID')).toEqual([]);
    expect(await data(reverseIpAddress('192.0.2.241'), 'PTR')).toEqual([]);
  });

  it('check-exists-with-dhcid takes over a name that has any DHCID; no-check-without-dhcid writes no DHCID at all', async () => {
    const d2 = await startD2();
    const owner = ncr({ fqdn: host(), ipAddress: '192.0.2.242' });
    await d2.send(owner);
    await d2.waitDone([owner]);
    const exists = ncr({ fqdn: owner.fqdn, ipAddress: '192.0.2.243', conflictResolutionMode: 'check-exists-with-dhcid' });
    await d2.send(exists);
    expect((await d2.waitDone([exists]))[0]!.status).toBe('completed');
    expect(await data(owner.fqdn, 'A')).toEqual(['192.0.2.243']);
    expect(await data(owner.fqdn, 'DHCID')).toEqual([Buffer.from(exists.dhcid).toString('base64')]);

    const bare = ncr({ fqdn: host(), ipAddress: '192.0.2.244', conflictResolutionMode: 'no-check-without-dhcid' });
    await d2.send(bare);
    expect((await d2.waitDone([bare]))[0]!.status).toBe('completed');
    expect(await data(bare.fqdn, 'A')).toEqual(['192.0.2.244']);
    expect(await data(bare.fqdn, 'DHCID')).toEqual([]);
    expect(await data(reverseIpAddress('192.0.2.244'), 'PTR')).toEqual([bare.fqdn]);
    expect(await data(reverseIpAddress('192.0.2.244'), 'DHCID')).toEqual([]);
    const unbare = ncr({ fqdn: bare.fqdn, ipAddress: '192.0.2.244', changeType: 1, conflictResolutionMode: 'no-check-without-dhcid' });
    await d2.send(unbare);
    expect((await d2.waitDone([unbare]))[0]!.status).toBe('completed');
    expect(await data(bare.fqdn, 'A')).toEqual([]);
    expect(await data(reverseIpAddress('192.0.2.244'), 'PTR')).toEqual([]);
  });
});

describe('servers: fail-over, TSIG keys, select_key', () => {
  it('a dead first server: 3 tries time out (update-timeout), then the second server gets the update', async () => {
    const d2 = await startD2({
      // The dead server never answers, so its three timeouts happen at any timeout; the real BIND
      // must answer within it every time for the counts to be exact, and on two busy cores it can
      // take hundreds of ms: a second leaves room (the test costs 3 s).
      timeoutMs: 1000,
      forward: [{ name: `${FWD}.`, key: 'd2.key', servers: [{ port: dead.port }, { port: bind.port }] }],
    });
    const before = dead.received();
    const n = ncr({ fqdn: host(), ipAddress: '192.0.2.250', reverseChange: false });
    await d2.send(n);
    const [done] = await d2.waitDone([n]);
    expect(done!.status).toBe('completed');
    expect(dead.received() - before).toBe(3);
    expect(d2.stat('update-timeout')).toBe(3);
    expect(d2.stat('key[d2.key.].update-timeout')).toBe(3);
    expect(d2.stat('update-success')).toBe(1);
    expect(d2.stat('update-sent')).toBe(4);
    expect(await data(n.fqdn, 'A')).toEqual(['192.0.2.250']);
  });

  it('every server dead: the NCR fails with no-more-servers after 3 timeouts per server', async () => {
    const d2 = await startD2({
      timeoutMs: 100,
      // Kea's single attempt; d2box's retries of such NCRs are test/dns-outage.test.ts's.
      extra: { 'd2box-retry-unanswered': false },
      forward: [{ name: `${FWD}.`, key: 'd2.key', servers: [{ port: dead.port }, { port: dead.port }] }],
    });
    const n = ncr({ fqdn: host(), ipAddress: '192.0.2.251' });
    await d2.send(n);
    const [done] = await d2.waitDone([n]);
    expect(done).toMatchObject({ status: 'failed', reason: 'no-more-servers', transaction: { forwardCompleted: false } });
    expect(d2.stat('update-timeout')).toBe(6);
    expect(d2.stat('d2box.ncr-failed.no-more-servers')).toBe(1);
    expect(await data(reverseIpAddress('192.0.2.251'), 'PTR')).toEqual([]);
  });

  it("select_key's key signs the update: BIND accepts it for a zone only that key may change", async () => {
    const trace = join(dir, 'trace-sign');
    writeFileSync(trace, '');
    const d2 = await startD2({
      hooks: [{ library: SELECT_KEY, parameters: { trace, keys: { [`127.0.0.1:${bind.port}`]: HOOK_KEY } } }],
    });
    const n = ncr({ fqdn: `h${++seq}.${HOOKZONE}.`, ipAddress: '192.0.2.252', reverseChange: false });
    await d2.send(n);
    expect((await d2.waitDone([n]))[0]!.status).toBe('completed');
    expect(await data(n.fqdn, 'A')).toEqual(['192.0.2.252']);
    expect(d2.stat('key[hook.key.].update-sent')).toBe(1);
    expect(d2.stat('key[hook.key.].update-success')).toBe(1);
    expect(d2.stat('key[d2.key.].update-sent')).toBe(0);
    // The library saw the configured key name of the server.
    expect(readFileSync(trace, 'utf8')).toBe(`1 127.0.0.1:${bind.port} d2.key\n`);
  });

  it('without the hook the configured key is used and BIND refuses that zone (REFUSED: rejected)', async () => {
    const d2 = await startD2();
    const n = ncr({ fqdn: `h${++seq}.${HOOKZONE}.`, ipAddress: '192.0.2.253', reverseChange: false });
    await d2.send(n);
    const [done] = await d2.waitDone([n]);
    expect(done).toMatchObject({ status: 'failed', reason: 'rejected' });
    expect(done!.detail).toMatch(/REFUSED/);
    expect(await data(n.fqdn, 'A')).toEqual([]);
  });

  it('a wrong key from select_key: BIND refuses the signature, update-error counts each of the 3 tries', async () => {
    const wrong = { ...HOOK_KEY, secret: randomBytes(32).toString('base64') };
    const d2 = await startD2({
      hooks: [{ library: SELECT_KEY, parameters: { keys: { [`127.0.0.1:${bind.port}`]: wrong } } }],
    });
    const n = ncr({ fqdn: `h${++seq}.${HOOKZONE}.`, ipAddress: '192.0.2.254', reverseChange: false });
    await d2.send(n);
    const [done] = await d2.waitDone([n]);
    expect(done).toMatchObject({ status: 'failed', reason: 'no-more-servers' });
    expect(done!.detail).toMatch(/tsig-error/);
    expect(d2.stat('update-error')).toBe(3);
    expect(d2.stat('key[hook.key.].update-error')).toBe(3);
    expect(d2.stat('update-success')).toBe(0);
    expect(await data(n.fqdn, 'A')).toEqual([]);
  });

  it('SKIP from select_key skips a server; the library context lives for the whole NCR (one handle per NCR)', async () => {
    const trace = join(dir, 'trace-skip');
    writeFileSync(trace, '');
    const d2 = await startD2({
      timeoutMs: 2000,
      forward: [{ name: `${FWD}.`, key: 'd2.key', servers: [{ port: dead.port }, { port: bind.port }] }],
      hooks: [{ library: SELECT_KEY, parameters: { trace, skip: [`127.0.0.1:${dead.port}`] } }],
    });
    const before = dead.received();
    const a = ncr({ fqdn: host(), ipAddress: '192.0.2.120' });
    await d2.send(a);
    expect((await d2.waitDone([a]))[0]!.status).toBe('completed');
    const b = ncr({ fqdn: host(), ipAddress: '192.0.2.121', reverseChange: false });
    await d2.send(b);
    expect((await d2.waitDone([b]))[0]!.status).toBe('completed');
    expect(dead.received()).toBe(before);
    expect(d2.stat('update-timeout')).toBe(0);
    expect(await data(a.fqdn, 'A')).toEqual(['192.0.2.120']);
    // NCR a: dead (skipped), bind, then the reverse server: calls 1, 2, 3 on one handle; NCR b starts again at 1.
    expect(readFileSync(trace, 'utf8')).toBe(
      `1 127.0.0.1:${dead.port} d2.key\n2 127.0.0.1:${bind.port} d2.key\n3 127.0.0.1:${bind.port} d2.key\n` +
        `1 127.0.0.1:${dead.port} d2.key\n2 127.0.0.1:${bind.port} d2.key\n`,
    );
  });

  it('select_key skipping every server fails the NCR with no-more-servers, nothing sent', async () => {
    const d2 = await startD2({
      hooks: [{ library: SELECT_KEY, parameters: { skip: [`127.0.0.1:${bind.port}`] } }],
    });
    const n = ncr({ fqdn: host(), ipAddress: '192.0.2.122' });
    await d2.send(n);
    const [done] = await d2.waitDone([n]);
    expect(done).toMatchObject({ status: 'failed', reason: 'no-more-servers' });
    expect(done!.detail).toMatch(/skipped by select_key/);
    expect(d2.stat('update-sent')).toBe(0);
  });
});

describe('hook library failures and the sample library', () => {
  it('select_key that throws on every call: on-failure drop skips each server (nothing sent); continue signs with the configured key', async () => {
    const dropping = await startD2({ hooks: [{ library: SELECT_KEY, parameters: { throw: true } }] });
    const a = ncr({ fqdn: host(), ipAddress: '192.0.2.130', reverseChange: false });
    await dropping.send(a);
    expect((await dropping.waitDone([a]))[0]).toMatchObject({ status: 'failed', reason: 'no-more-servers' });
    expect(dropping.stat('update-sent')).toBe(0);
    expect(await data(a.fqdn, 'A')).toEqual([]);

    const continuing = await startD2({ hooks: [{ library: SELECT_KEY, parameters: { throw: true }, sandbox: { 'on-failure': 'continue' } }] });
    const b = ncr({ fqdn: host(), ipAddress: '192.0.2.131', reverseChange: false });
    await continuing.send(b);
    expect((await continuing.waitDone([b]))[0]!.status).toBe('completed');
    expect(continuing.stat('key[d2.key.].update-success')).toBe(1);
    expect(await data(b.fqdn, 'A')).toEqual(['192.0.2.131']);
  });

  it('the sample select-key-policy library maps a server to its own key, which BIND accepts', async () => {
    const d2 = await startD2({
      hooks: [{ library: resolve('dist/sample-hooks/select-key-policy/index.js'), parameters: { 'by-server': { [`127.0.0.1:${bind.port}`]: 'hook.key' } } }],
    });
    const n = ncr({ fqdn: `h${++seq}.${HOOKZONE}.`, ipAddress: '192.0.2.132', reverseChange: false });
    await d2.send(n);
    expect((await d2.waitDone([n]))[0]!.status).toBe('completed');
    expect(d2.stat('key[hook.key.].update-success')).toBe(1);
    expect(await data(n.fqdn, 'A')).toEqual(['192.0.2.132']);
  });
});

describe('the daemon (kea-dhcp-ddns -c) end to end', () => {
  it('receives NCRs over UDP, updates BIND, reloads on SIGHUP, exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const file = join(dir, 'daemon.json');
    writeFileSync(file, JSON.stringify(configJson(baseSpec(port))));
    const daemon = spawn(process.execPath, [resolve('dist/src/cli.js'), '-c', file], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    daemon.stderr!.on('data', (d) => (log += d));
    const exited = new Promise<number | null>((r) => daemon.on('exit', (code) => r(code)));
    const waitLog = async (re: RegExp) => {
      for (let i = 0; i < 400 && !re.test(log); i++) await new Promise((r) => setTimeout(r, 25));
      expect(log).toMatch(re);
    };
    const sender = new NcrSender({ serverAddress: '127.0.0.1', serverPort: port });
    try {
      await waitLog(/DCTL_CONFIG_COMPLETE/);
      const n = ncr({ fqdn: host('daemon'), ipAddress: '192.0.2.140' });
      await sender.send(n);
      await waitLog(/DHCP_DDNS_ADD_SUCCEEDED/);
      expect(await data(n.fqdn, 'A')).toEqual(['192.0.2.140']);
      expect(await data(reverseIpAddress('192.0.2.140'), 'PTR')).toEqual([n.fqdn]);
      // A reload that drops the reverse domains: the next add changes only the forward zone.
      writeFileSync(file, JSON.stringify(configJson(baseSpec(port, { reverse: [] }))));
      daemon.kill('SIGHUP');
      await waitLog(/DCTL_CONFIG_COMPLETE[^]*DCTL_CONFIG_COMPLETE/);
      const m = ncr({ fqdn: host('daemon'), ipAddress: '192.0.2.141' });
      await sender.send(m);
      await waitLog(/DHCP_DDNS_ADD_SUCCEEDED[^]*DHCP_DDNS_ADD_SUCCEEDED/);
      expect(await data(m.fqdn, 'A')).toEqual(['192.0.2.141']);
      expect(await data(reverseIpAddress('192.0.2.141'), 'PTR')).toEqual([]);
      daemon.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      await sender.close();
      if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
    }
  });

  it('add results are logged on kea-dhcp-ddns.d2-to-dns, as Kea does: that logger at WARN hides them while the root stays at INFO', async () => {
    const port = await freePort();
    const file = join(dir, 'd2-to-dns-warn.json');
    const config = configJson(baseSpec(port)) as { DhcpDdns: Record<string, unknown> };
    config.DhcpDdns.loggers = [
      { name: 'kea-dhcp-ddns', severity: 'INFO', 'output-options': [{ output: 'stderr' }] },
      { name: 'kea-dhcp-ddns.d2-to-dns', severity: 'WARN', 'output-options': [{ output: 'stderr' }] },
    ];
    writeFileSync(file, JSON.stringify(config));
    const daemon = spawn(process.execPath, [resolve('dist/src/cli.js'), '-c', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    daemon.stdout!.on('data', (d) => (log += d));
    daemon.stderr!.on('data', (d) => (log += d));
    const exited = new Promise<number | null>((r) => daemon.on('exit', (code) => r(code)));
    const sender = new NcrSender({ serverAddress: '127.0.0.1', serverPort: port });
    try {
      // Bounded: 400 × 25 ms, generous for a loaded 2-core machine.
      for (let i = 0; i < 400 && !/DCTL_CONFIG_COMPLETE/.test(log); i++) await new Promise((r) => setTimeout(r, 25));
      expect(log).toMatch(/DCTL_CONFIG_COMPLETE/);
      const n = ncr({ fqdn: host('quiet'), ipAddress: '192.0.2.150', reverseChange: false });
      await sender.send(n);
      let records: string[] = [];
      for (let i = 0; i < 200 && records.length === 0; i++) {
        records = await data(n.fqdn, 'A');
        if (records.length === 0) await new Promise((r) => setTimeout(r, 25));
      }
      expect(records).toEqual(['192.0.2.150']);
      // The shutdown flushes every line logged before it, so an ADD_SUCCEEDED would be in the log by then.
      daemon.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(log).toMatch(/INFO {2}\[kea-dhcp-ddns\.dctl\/[\d.]+\] DCTL_SHUTDOWN /);
      expect(log).not.toMatch(/DHCP_DDNS_ADD_SUCCEEDED/);
    } finally {
      await sender.close();
      if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
    }
  });
});

describe('queue, configuration, shutdown', () => {
  it('queue full: every NCR ends counted — done, or failed with reason queue-full and queue-mgr-queue-full', async () => {
    const d2 = await startD2({}, { maxQueueSize: 4, maxTransactions: 1 });
    const ncrs = Array.from({ length: 20 }, (_, i) => ncr({ fqdn: host('q'), ipAddress: `192.0.2.${100 + i}`, reverseChange: false }));
    // Handed over in one go, as the listener does with a burst: 1 starts, 4 wait, 15 find the queue full.
    for (const n of ncrs) d2.process.receive(n);
    const endings = await d2.waitDone(ncrs);
    expect(endings).toHaveLength(20);
    const completed = endings.filter((e) => e.status === 'completed').map((e) => e.ncr.fqdn);
    const refused = endings.filter((e) => e.status === 'failed');
    expect(completed).toEqual(ncrs.slice(0, 5).map((n) => n.fqdn));
    expect(refused.every((e) => e.reason === 'queue-full')).toBe(true);
    expect(refused).toHaveLength(15);
    expect(d2.stat('queue-mgr-queue-full')).toBe(15);
    expect(d2.stat('d2box.ncr-failed.queue-full')).toBe(15);
    expect(d2.stat('d2box.ncr-completed')).toBe(5);
    expect(d2.stat('ncr-received')).toBe(20);
    expect(await data(ncrs[4]!.fqdn, 'A')).toEqual(['192.0.2.104']);
    expect(await data(ncrs[5]!.fqdn, 'A')).toEqual([]);
  });

  it('reconfiguration with NCRs in flight loses none, and a rejected one leaves the old configuration serving', async () => {
    const d2 = await startD2({}, { maxTransactions: 4 });
    const port = d2.process.port!;
    const batch = Array.from({ length: 24 }, (_, i) => ncr({ fqdn: host('r'), ipAddress: `192.0.2.${20 + i}`, reverseChange: false }));
    await d2.send(...batch.slice(0, 12));
    // A new configuration (another timeout, a hook library) applied while those are in flight.
    const applied = d2.configure({ ...baseSpec(port, { timeoutMs: 900 }), hooks: [{ library: SELECT_KEY, parameters: {} }] });
    await d2.send(...batch.slice(12));
    expect(await applied).toEqual({ ok: true });
    const endings = await d2.waitDone(batch);
    expect(endings.filter((e) => e.status === 'completed')).toHaveLength(24);
    for (const n of [batch[0]!, batch[11]!, batch[23]!]) expect(await data(n.fqdn, 'A')).toEqual([n.ipAddress]);

    // d2_srv_configured DROP: refused with the library's text; the old configuration keeps serving.
    const late = ncr({ fqdn: host('r'), ipAddress: '192.0.2.60', reverseChange: false });
    const rejected = d2.configure({ ...baseSpec(port, { forward: [] }), hooks: [{ library: SELECT_KEY, parameters: { 'drop-config': 'no thanks' } }] });
    await d2.send(late);
    expect(await rejected).toEqual({ ok: false, error: 'no thanks' });
    expect(d2.process.port).toBe(port);
    expect((await d2.waitDone([late]))[0]!.status).toBe('completed');
    expect(await data(late.fqdn, 'A')).toEqual(['192.0.2.60']);
    expect(d2.process.hooks.getLibraryNames()).toEqual([SELECT_KEY]);
    expect(d2.stat('ncr-received')).toBe(25);
  });

  it('a listener port already taken rejects the configuration; the old listener stays', async () => {
    const d2 = await startD2();
    const port = d2.process.port!;
    const other = await startD2();
    const r = await other.configure(baseSpec(port));
    expect(r.ok).toBe(false);
    const n = ncr({ fqdn: host(), ipAddress: '192.0.2.61', reverseChange: false });
    await other.send(n);
    expect((await other.waitDone([n]))[0]!.status).toBe('completed');
  });

  it('shutdown stops receiving; queued NCRs end failed (shutdown), transactions past the bound end failed (stopped)', async () => {
    const d2 = await startD2(
      { timeoutMs: 5000, forward: [{ name: `${FWD}.`, key: 'd2.key', servers: [{ port: dead.port }] }] },
      { maxTransactions: 2, shutdownTimeoutMs: 100 },
    );
    const ncrs = Array.from({ length: 10 }, (_, i) => ncr({ fqdn: host('s'), ipAddress: `192.0.2.${70 + i}` }));
    for (const n of ncrs) d2.process.receive(n);
    await d2.process.shutdown();
    const endings = await d2.waitDone(ncrs, 2000);
    expect(endings.filter((e) => e.reason === 'stopped')).toHaveLength(2);
    expect(endings.filter((e) => e.reason === 'shutdown')).toHaveLength(8);
    expect(d2.stat('d2box.ncr-failed')).toBe(10);
  });
});
