/**
 * NCRs through a DNS outage (issue 21): a real BIND 9 stopped and started
 * again by the test, NCRs to a D2Process over UDP, DNS read back through dig.
 *
 * Timers are the new `d2box-retry-*` keys made short (first delay 300 ms,
 * cap 1.5 s) so a 6 s outage costs seconds, not minutes; the maximum age stays
 * generous (2 min) so a slow, shared machine cannot make an NCR expire during
 * the outage. Waits are bounded by count and time, with room for a loaded
 * machine: they end as soon as the condition holds.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseD2Config } from '../src/config/d2-config.js';
import { reverseIpAddress } from '../src/config/domains.js';
import type { NcrDone } from '../src/d2/d2-update-mgr.js';
import { Logger, stderrSink, type LogRecord } from '../src/log/logger.js';
import type { NameChangeRequest } from '../src/ncr/name-change-request.js';
import { freePort, readZone, startBind9, type Bind9Server, type DigRecord } from './support/bind9.js';
import { configJson, D2Harness, ncr as makeNcr, newDhcid, silentServer, sleep, type ConfigSpec } from './fixtures/d2-harness.js';

const BURST = 'burst.test';
const BURST_REV = '100.51.198.in-addr.arpa';
const ORDER = 'order.test';
const ORDER_REV = '2.0.192.in-addr.arpa';
const REFUSING = 'refusing.test';
const BADKEY = 'badkey.test';
const HOOKED = 'hooked.test';
const DEAD = 'dead.test';
const SELECT_KEY = resolve('test/fixtures/d2-select-key.mjs');

const secret = randomBytes(32).toString('base64');
const D2_KEY = { name: 'd2.key', algorithm: 'HMAC-SHA256', secret };
/** BIND knows no key of this name: it answers NOTAUTH (BADKEY), unsigned. */
const UNKNOWN_KEY = { name: 'unknown.key', algorithm: 'HMAC-SHA256', secret: randomBytes(32).toString('base64') };

/** Short backoff, generous age (see the header). */
const FAST_RETRY = {
  'd2box-retry-first-delay-ms': 300,
  'd2box-retry-backoff-factor': 2,
  'd2box-retry-max-delay-ms': 1500,
  'd2box-retry-max-age-ms': 120_000,
};
/** One attempt fails after 3 tries × 250 ms on the only server. */
const TIMEOUT_MS = 250;
/** The outage: inside the 5-10 s the issue asks for. */
const OUTAGE_MS = 6_000;

let bind: Bind9Server;
let dead: Awaited<ReturnType<typeof silentServer>>;
const harnesses: D2Harness[] = [];
const dir = mkdtempSync(join(tmpdir(), 'd2box-outage-'));
const logs: LogRecord[] = [];

beforeAll(async () => {
  Logger.setSink((r) => {
    if (logs.length < 200_000) logs.push(r);
  });
  bind = await startBind9({
    keys: [{ name: 'd2.key', algorithm: 'hmac-sha256', secret }],
    zones: [
      { name: BURST, updateKeys: ['d2.key'] },
      { name: BURST_REV, updateKeys: ['d2.key'] },
      { name: ORDER, updateKeys: ['d2.key'] },
      { name: ORDER_REV, updateKeys: ['d2.key'] },
      { name: HOOKED, updateKeys: ['d2.key'] },
      // allow-update { none; }: every update is answered REFUSED.
      { name: REFUSING, updateKeys: [] },
      { name: BADKEY, updateKeys: ['d2.key'] },
    ],
  });
  dead = await silentServer();
}, 60_000);

afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
});

afterAll(async () => {
  Logger.setSink(stderrSink);
  await dead?.close();
  await bind?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function spec(port: number, over: Partial<ConfigSpec> = {}): ConfigSpec {
  const server = [{ port: bind.port }];
  return {
    port,
    timeoutMs: TIMEOUT_MS,
    keys: [D2_KEY, UNKNOWN_KEY],
    forward: [
      { name: `${BURST}.`, key: 'd2.key', servers: server },
      { name: `${ORDER}.`, key: 'd2.key', servers: server },
      { name: `${HOOKED}.`, key: 'd2.key', servers: server },
      { name: `${REFUSING}.`, key: 'd2.key', servers: server },
      { name: `${BADKEY}.`, key: 'unknown.key', servers: server },
      { name: `${DEAD}.`, servers: [{ port: dead.port }] },
    ],
    reverse: [
      { name: `${BURST_REV}.`, key: 'd2.key', servers: server },
      { name: `${ORDER_REV}.`, key: 'd2.key', servers: server },
    ],
    extra: FAST_RETRY,
    ...over,
  };
}

async function startD2(over: Partial<ConfigSpec> = {}): Promise<D2Harness> {
  const h = new D2Harness();
  harnesses.push(h);
  expect(await h.configure(spec(await freePort(), over))).toEqual({ ok: true });
  return h;
}

/** Waits (bounded) until `n` NCRs have ended in all. */
async function waitEnded(d2: D2Harness, n: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 20_000 && d2.done.length < n && Date.now() < deadline; i++) await sleep(10);
  if (d2.done.length < n) throw new Error(`only ${d2.done.length} of ${n} NCRs ended within ${timeoutMs} ms`);
}

/** The A and PTR records of a zone pair, as "name TYPE data" lines, sorted. */
async function addressRecords(fwd: string, rev: string): Promise<string[]> {
  const recs: DigRecord[] = [...(await readZone(bind.port, fwd)), ...(await readZone(bind.port, rev))];
  return recs
    // The zone's own name server (support/bind9.ts puts ns.<zone> A 127.0.0.1 in every zone) is not the NCRs'.
    .filter((r) => (r.type === 'A' || r.type === 'PTR') && r.name !== `ns.${fwd}.` && r.name !== `ns.${rev}.`)
    .map((r) => `${r.name} ${r.type} ${r.data.toLowerCase()}`)
    .sort();
}

function expectedRecords(present: NameChangeRequest[]): string[] {
  return present.flatMap((n) => [`${n.fqdn.toLowerCase()} A ${n.ipAddress}`, `${reverseIpAddress(n.ipAddress)} PTR ${n.fqdn.toLowerCase()}`]).sort();
}

/**
 * NCRs as the tests send them, each with a lease length of its own: what the daemon received is
 * parsed from the wire (another object), and one client's add, remove and add again are
 * otherwise alike; the lease length (the records' TTL) tells them apart.
 */
let lease = 1000;
const ncr = (init: Parameters<typeof makeNcr>[0]) => makeNcr({ leaseLength: ++lease, ...init });
const sameNcr = (a: NameChangeRequest, b: NameChangeRequest) => a.dhcidHex === b.dhcidHex && a.leaseLength === b.leaseLength;
const doneOf = (d2: D2Harness, n: NameChangeRequest): NcrDone | undefined => d2.done.find((d) => sameNcr(d.ncr, n));

describe('a burst during an outage', () => {
  it('converges to exactly the records the NCRs ask for once BIND is back', async () => {
    const d2 = await startD2();
    // Before: 20 names that exist.
    const old = Array.from({ length: 20 }, (_, i) => ncr({ fqdn: `old${i}.${BURST}.`, ipAddress: `198.51.100.${i + 1}` }));
    await d2.send(...old);
    await waitEnded(d2, old.length, 30_000);
    expect(d2.done.every((d) => d.status === 'completed')).toBe(true);

    await bind.halt();
    const haltedAt = Date.now();
    // During: 10 of them removed (same client, same DHCID), 30 new names added.
    const removes = old.slice(0, 10).map((o) => ncr({ fqdn: o.fqdn, ipAddress: o.ipAddress, dhcid: o.dhcidHex, changeType: 1 }));
    const adds = Array.from({ length: 30 }, (_, i) => ncr({ fqdn: `new${i}.${BURST}.`, ipAddress: `198.51.100.${i + 101}` }));
    await d2.send(...removes, ...adds);
    await sleep(OUTAGE_MS - (Date.now() - haltedAt));
    // Nothing ended while no server answered: every NCR of the burst waits or is being tried.
    expect(d2.done.length).toBe(old.length);
    expect(d2.stat('d2box.ncr-retry-waiting')).toBeGreaterThan(0);
    await bind.resume();

    await waitEnded(d2, old.length + removes.length + adds.length, 60_000);
    for (const n of [...removes, ...adds]) expect(doneOf(d2, n), n.fqdn).toMatchObject({ status: 'completed' });
    expect(await addressRecords(BURST, BURST_REV)).toEqual(expectedRecords([...old.slice(10), ...adds]));
    expect(d2.stat('d2box.ncr-retried')).toBeGreaterThanOrEqual(removes.length + adds.length);
    expect(d2.stat('d2box.ncr-given-up')).toBe(0);
    expect(d2.stat('d2box.ncr-retry-waiting')).toBe(0);
    expect(d2.stat('d2box.ncr-completed')).toBe(60);
  }, 120_000);
});

type Phase = 'before' | 'during' | 'after';
const PHASES: Phase[] = ['before', 'during', 'after'];

/** Every sequence of 1-3 adds and removes for one name, each placed before, during or after the outage (in order, at least one during). */
function orderings(): { ops: ('add' | 'remove')[]; phases: Phase[] }[] {
  const out: { ops: ('add' | 'remove')[]; phases: Phase[] }[] = [];
  for (let len = 1; len <= 3; len++) {
    for (let opBits = 0; opBits < 1 << len; opBits++) {
      const ops = Array.from({ length: len }, (_, i) => ((opBits >> i) & 1 ? 'remove' : 'add') as 'add' | 'remove');
      const place = (i: number, from: number, acc: Phase[]): void => {
        if (i === len) {
          if (acc.includes('during')) out.push({ ops, phases: [...acc] });
          return;
        }
        for (let p = from; p < PHASES.length; p++) place(i + 1, p, [...acc, PHASES[p]!]);
      };
      place(0, 0, []);
    }
  }
  return out;
}

describe('order per name around an outage', () => {
  it('every ordering of add and remove ends in the state of the last NCR (one client per name; and two clients on one name)', async () => {
    // Longer delays here: the NCRs of the outage fail at about 0.75 s and 4.5 s and would next be
    // tried at about 10.5 s, so those sent right after named is back (at 6-7 s) find them waiting.
    const d2 = await startD2({ extra: { ...FAST_RETRY, 'd2box-retry-first-delay-ms': 3_000, 'd2box-retry-max-delay-ms': 6_000 } });
    interface Case { label: string; ncrs: { ncr: NameChangeRequest; phase: Phase }[] }
    const cases: Case[] = orderings().map((o, i) => {
      const fqdn = `o${i}.${ORDER}.`;
      const ipAddress = `192.0.2.${i + 2}`;
      const dhcid = newDhcid();
      return {
        label: `${o.ops.map((op, j) => `${op}@${o.phases[j]}`).join(' ')}`,
        ncrs: o.ops.map((op, j) => ({ ncr: ncr({ fqdn, ipAddress, dhcid, changeType: op === 'add' ? 0 : 1 }), phase: o.phases[j]! })),
      };
    });
    // Two clients (two DHCIDs) on one name, both during the outage: the newer NCR wins. Had client A's
    // add landed first, RFC 4703 would refuse client B's add as a conflict.
    const twoClients = (k: number, second: 'add' | 'remove'): Case => {
      const fqdn = `c${k}.${ORDER}.`;
      return {
        label: `client A add@during, client B ${second}@during`,
        ncrs: [
          { ncr: ncr({ fqdn, ipAddress: `192.0.2.${200 + k}` }), phase: 'during' },
          { ncr: ncr({ fqdn, ipAddress: `192.0.2.${210 + k}`, changeType: second === 'add' ? 0 : 1 }), phase: 'during' },
        ],
      };
    };
    cases.push(twoClients(1, 'add'), twoClients(2, 'remove'));
    expect(cases.length).toBe(64);

    const inPhase = (p: Phase) => cases.flatMap((c) => c.ncrs.filter((x) => x.phase === p).map((x) => x.ncr));
    const total = cases.reduce((s, c) => s + c.ncrs.length, 0);
    const before = inPhase('before');
    await d2.send(...before);
    await waitEnded(d2, before.length, 30_000);
    await bind.halt();
    const haltedAt = Date.now();
    await d2.send(...inPhase('during'));
    await sleep(OUTAGE_MS - (Date.now() - haltedAt));
    await bind.resume();
    // Right away, while the NCRs of the outage still wait for their next attempt.
    await d2.send(...inPhase('after'));
    await waitEnded(d2, total, 90_000);

    const lastOf = (c: Case) => c.ncrs[c.ncrs.length - 1]!.ncr;
    const present = cases.map(lastOf).filter((n) => n.changeType === 0);
    expect(await addressRecords(ORDER, ORDER_REV)).toEqual(expectedRecords(present));
    for (const c of cases) {
      expect(doneOf(d2, lastOf(c)), c.label).toMatchObject({ status: 'completed' });
      // Whatever came before the last one was applied or replaced, never given up.
      for (const { ncr: n } of c.ncrs) {
        const d = doneOf(d2, n);
        expect(d?.status === 'completed' || d?.reason === 'superseded', `${c.label}: ${n.changeType ? 'remove' : 'add'} ended ${d?.status} ${d?.reason ?? ''}`).toBe(true);
      }
    }
    expect(d2.stat('d2box.ncr-superseded')).toBeGreaterThan(0);
    expect(d2.stat('d2box.ncr-given-up')).toBe(0);
  }, 150_000);
});

describe('definite answers are final', () => {
  it('a server that keeps REFUSING is tried once per NCR; a TSIG failure (BADKEY) is not retried either', async () => {
    const d2 = await startD2();
    const refused = Array.from({ length: 5 }, (_, i) => ncr({ fqdn: `r${i}.${REFUSING}.`, ipAddress: `203.0.113.${i + 1}`, reverseChange: false }));
    await d2.send(...refused);
    await waitEnded(d2, refused.length, 30_000);
    for (const n of refused) expect(doneOf(d2, n)).toMatchObject({ status: 'failed', reason: 'rejected' });
    expect(doneOf(d2, refused[0]!)!.detail).toMatch(/REFUSED/);
    const badKey = Array.from({ length: 3 }, (_, i) => ncr({ fqdn: `b${i}.${BADKEY}.`, ipAddress: `203.0.113.${i + 11}`, reverseChange: false }));
    await d2.send(...badKey);
    await waitEnded(d2, refused.length + badKey.length, 30_000);
    // Kea's rule: an answer that does not verify is tried 3 times on the server, then the next one.
    for (const n of badKey) expect(doneOf(d2, n)).toMatchObject({ status: 'failed', reason: 'no-more-servers' });
    // Long enough for several retries to have happened had any been scheduled (first delay 300 ms, then 600, 1200).
    await sleep(3_000);
    expect(d2.stat('update-sent')).toBe(refused.length * 1 + badKey.length * 3);
    expect(d2.stat('d2box.ncr-retried')).toBe(0);
    expect(d2.stat('d2box.ncr-retry-waiting')).toBe(0);
    expect(d2.done.length).toBe(refused.length + badKey.length);
  }, 60_000);
});

describe('retries are new transactions', () => {
  it('each attempt goes through select_key with a fresh callout handle and counts its updates', async () => {
    const trace = join(dir, 'select-key-trace');
    const d2 = await startD2({ hooks: [{ library: SELECT_KEY, parameters: { trace } }] });
    await bind.halt();
    const n = ncr({ fqdn: `h1.${HOOKED}.`, ipAddress: '203.0.113.50', reverseChange: false });
    await d2.send(n);
    // At least two attempts inside the outage (each 750 ms of timeouts, then 300 ms, 600 ms ...).
    const deadline = Date.now() + 30_000;
    for (let i = 0; i < 3_000 && d2.stat('d2box.ncr-retried') < 2 && Date.now() < deadline; i++) await sleep(10);
    await bind.resume();
    await waitEnded(d2, 1, 30_000);
    expect(doneOf(d2, n)).toMatchObject({ status: 'completed' });
    const retried = d2.stat('d2box.ncr-retried');
    expect(retried).toBeGreaterThanOrEqual(2);
    // The library counts calls per callout handle: a line "1 ..." starts each transaction.
    const lines = readFileSync(trace, 'utf8').trim().split('\n');
    expect(lines.filter((l) => l.startsWith('1 ')).length).toBe(retried + 1);
    // Every attempt's updates are counted: 3 timeouts for each failed attempt; the last attempt
    // may have timed out up to twice more while named came back. (An update named took in while
    // starting may be answered too late: the last attempt then finds the name already there,
    // YXDOMAIN, and replaces it with its own DHCID, two answers.)
    expect(d2.stat('update-timeout')).toBeGreaterThanOrEqual(3 * retried);
    expect(d2.stat('update-timeout')).toBeLessThanOrEqual(3 * retried + 2);
    expect(d2.stat('update-sent')).toBe(d2.stat('update-timeout') + d2.stat('update-success'));
    expect(d2.stat('update-success')).toBeGreaterThanOrEqual(1);
  }, 90_000);
});

describe('bounds', () => {
  const deadNcrs = (k: number, tag: string) =>
    Array.from({ length: k }, (_, i) => ncr({ fqdn: `${tag}${i}.${DEAD}.`, ipAddress: `203.0.113.${100 + i}`, reverseChange: false }));

  it('past d2box-retry-max-waiting the oldest are given up and counted; the rest after d2box-retry-max-age-ms, logged with their FQDN', async () => {
    const d2 = await startD2({ extra: { ...FAST_RETRY, 'd2box-retry-max-waiting': 5, 'd2box-retry-max-age-ms': 4_000 } });
    const ncrs = deadNcrs(12, 'm');
    const from = logs.length;
    let maxWaiting = 0;
    const sampler = setInterval(() => (maxWaiting = Math.max(maxWaiting, d2.stat('d2box.ncr-retry-waiting'))), 5);
    try {
      await d2.send(...ncrs);
      await waitEnded(d2, ncrs.length, 60_000);
    } finally {
      clearInterval(sampler);
    }
    expect(maxWaiting).toBe(5);
    expect(d2.stat('d2box.ncr-failed.retry-overflow')).toBe(7);
    expect(d2.stat('d2box.ncr-failed.retry-expired')).toBe(5);
    expect(d2.stat('d2box.ncr-given-up')).toBe(12);
    expect(d2.stat('d2box.ncr-retry-waiting')).toBe(0);
    const givenUp = logs.slice(from).filter((r) => r.id === 'D2BOX_NCR_GIVEN_UP');
    for (const n of ncrs) expect(givenUp.some((r) => r.text.includes(n.fqdn)), n.fqdn).toBe(true);
    // The oldest go first: the 7 that failed first (as logged) overflowed.
    const firstFailures = logs
      .slice(from)
      .filter((r) => r.id === 'D2BOX_NCR_RETRY_SCHEDULED' && r.text.includes('(attempt 1)'))
      .map((r) => ncrs.find((n) => r.text.includes(` ${n.fqdn} `))!.fqdn);
    expect(firstFailures).toHaveLength(12);
    const overflowed = d2.done.filter((d) => d.reason === 'retry-overflow').map((d) => d.ncr.fqdn);
    expect(overflowed.sort()).toEqual(firstFailures.slice(0, 7).sort());
  }, 90_000);

  it('past d2box-retry-max-waiting-bytes the oldest are given up and counted', async () => {
    const bytes = 1_500;
    const d2 = await startD2({ extra: { ...FAST_RETRY, 'd2box-retry-max-waiting-bytes': bytes, 'd2box-retry-max-age-ms': 3_000 } });
    const ncrs = deadNcrs(10, 'b');
    let maxWaiting = 0;
    const sampler = setInterval(() => (maxWaiting = Math.max(maxWaiting, d2.stat('d2box.ncr-retry-waiting'))), 5);
    try {
      await d2.send(...ncrs);
      await waitEnded(d2, ncrs.length, 60_000);
    } finally {
      clearInterval(sampler);
    }
    // An NCR costs more than its ~100 bytes of strings: at most a few fit in 1500 bytes.
    expect(maxWaiting).toBeGreaterThanOrEqual(1);
    expect(maxWaiting).toBeLessThanOrEqual(bytes / 300);
    expect(d2.stat('d2box.ncr-failed.retry-overflow')).toBe(ncrs.length - maxWaiting);
    expect(d2.stat('d2box.ncr-failed.retry-expired')).toBe(maxWaiting);
    expect(d2.stat('d2box.ncr-given-up')).toBe(ncrs.length);
  }, 90_000);

  it("with d2box-retry-unanswered false an unanswered NCR fails at once, as in Kea", async () => {
    const d2 = await startD2({ extra: { 'd2box-retry-unanswered': false } });
    const [n] = deadNcrs(1, 'k');
    await d2.send(n!);
    await waitEnded(d2, 1, 30_000);
    expect(d2.done[0]).toMatchObject({ status: 'failed', reason: 'no-more-servers', transaction: { unanswered: true } });
    expect(d2.stat('d2box.ncr-retried')).toBe(0);
    expect(d2.stat('d2box.ncr-retry-waiting')).toBe(0);
  }, 60_000);

  it('shutdown ends the waiting NCRs failed (shutdown), counted', async () => {
    // A first delay far past the test, so the three are still waiting when shutdown comes.
    const d2 = await startD2({ extra: { ...FAST_RETRY, 'd2box-retry-first-delay-ms': 60_000, 'd2box-retry-max-delay-ms': 60_000 } });
    const ncrs = deadNcrs(3, 's');
    await d2.send(...ncrs);
    const deadline = Date.now() + 30_000;
    for (let i = 0; i < 3_000 && d2.stat('d2box.ncr-retry-waiting') < 3 && Date.now() < deadline; i++) await sleep(10);
    expect(d2.stat('d2box.ncr-retry-waiting')).toBe(3);
    await d2.process.shutdown('now');
    expect(d2.done.map((d) => d.reason)).toEqual(['shutdown', 'shutdown', 'shutdown']);
    expect(d2.stat('d2box.ncr-failed.shutdown')).toBe(3);
  }, 60_000);
});

describe('configuration', () => {
  const parse = (extra: Record<string, unknown>) => parseD2Config(JSON.stringify(configJson({ port: 53001, extra })));

  it('takes the d2box-retry-* keys, refuses bad values and unknown d2box-retry keys, and leaves config-get Kea\'s when unused', () => {
    const ok = parse({ 'd2box-retry-first-delay-ms': 10, 'd2box-retry-backoff-factor': 1.5, 'd2box-retry-max-waiting': 3 });
    expect(ok.ok).toBe(true);
    const bad = parse({ 'd2box-retry-backoff-factor': 0.5 });
    expect(bad).toMatchObject({ ok: false });
    expect(!bad.ok && bad.error).toMatch(/d2box-retry-backoff-factor must be between 1 and 100/);
    const zero = parse({ 'd2box-retry-max-age-ms': 0 });
    expect(!zero.ok && zero.error).toMatch(/d2box-retry-max-age-ms must be greater than zero/);
    const unknown = parse({ 'd2box-retry-forever': true });
    expect(!unknown.ok && unknown.error).toMatch(/got unexpected keyword "d2box-retry-forever" in DhcpDdns map/);
    const plain = parse({});
    expect(plain.ok && Object.keys(plain.json.DhcpDdns as object).some((k) => k.startsWith('d2box-'))).toBe(false);
  });
});
