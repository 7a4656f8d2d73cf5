/**
 * The transactions against a scripted in-process UDP responder: the exact
 * prerequisite and update sections of every mode (as Kea's nc_add.cc,
 * nc_remove.cc, simple_*.cc, check_exists_*.cc build them), and the state
 * transitions on RCODEs BIND is not easily made to return (REFUSED on an add,
 * SERVFAIL, an endless YXDOMAIN/NXDOMAIN bounce), on malformed answers, and on
 * timeouts in the step that fails without trying another server.
 */
import dgram from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DdnsDomainConfig } from '../src/config/ddns-domains.js';
import { createTransaction } from '../src/d2/d2-update-mgr.js';
import { MAX_TRANSITIONS, type TransactionContext } from '../src/d2/name-change-transaction.js';
import { decodeMessage, DnsClient, Rcode, rrClassToText, rrTypeToText, type ResourceRecord } from '../src/dns/index.js';
import { Logger } from '../src/log/logger.js';
import { bytesToHex, type ConflictResolutionMode, type NameChangeRequest } from '../src/ncr/name-change-request.js';
import { StatsMgr } from '../src/stats/stats-mgr.js';
import { D2Harness, ncr, sleep } from './fixtures/d2-harness.js';
import { freePort } from './support/bind9.js';

type Reply = number | 'silent' | 'garbage' | 'hold';

/** A DNS server that records every update and answers as scripted. */
class ScriptedServer {
  readonly requests: { zone: string; prereq: string[]; update: string[] }[] = [];
  /** Requests answered only on release(). */
  readonly held: { id: number; port: number; address: string }[] = [];
  script: (index: number) => Reply = () => Rcode.NOERROR;
  private socket = dgram.createSocket('udp4');
  port = 0;
  ncr: NameChangeRequest | undefined;

  async start(): Promise<void> {
    this.socket.on('message', (msg, rinfo) => {
      const index = this.requests.length;
      const d = decodeMessage(msg);
      if (!d.ok) return;
      this.requests.push({
        zone: d.value.question[0]!.name.toText(),
        prereq: d.value.answer.map((r) => this.rr(r)),
        update: d.value.authority.map((r) => this.rr(r)),
      });
      const reply = this.script(index);
      if (reply === 'silent') return;
      if (reply === 'hold') {
        this.held.push({ id: msg.readUInt16BE(0), port: rinfo.port, address: rinfo.address });
        return;
      }
      const out = Buffer.alloc(12);
      out.writeUInt16BE(msg.readUInt16BE(0), 0);
      if (reply === 'garbage') {
        out.writeUInt16BE(0x8000 | (0 << 11), 2); // a QUERY answer to an UPDATE: invalid
      } else {
        out.writeUInt16BE(0x8000 | (5 << 11) | reply, 2);
      }
      this.socket.send(out, rinfo.port, rinfo.address);
    });
    await new Promise<void>((r) => this.socket.bind(0, '127.0.0.1', () => r()));
    this.port = this.socket.address().port;
  }

  /** Answers every held request with NOERROR. */
  release(): void {
    for (const h of this.held.splice(0)) {
      const out = Buffer.alloc(12);
      out.writeUInt16BE(h.id, 0);
      out.writeUInt16BE(0x8000 | (5 << 11) | Rcode.NOERROR, 2);
      this.socket.send(out, h.port, h.address);
    }
  }

  reset(script: (index: number) => Reply, n: NameChangeRequest | undefined): void {
    this.requests.length = 0;
    this.held.length = 0;
    this.script = script;
    this.ncr = n;
  }

  private rr(r: ResourceRecord): string {
    const rd = r.rdata;
    let data = '';
    if (rd.kind === 'A' || rd.kind === 'AAAA') data = rd.address;
    else if (rd.kind === 'PTR') data = rd.name.toText();
    else if (rd.kind === 'DHCID') data = bytesToHex(rd.data) === this.ncr?.dhcidHex ? 'ours' : 'other';
    else if (rd.kind === 'raw' && rd.data.length > 0) data = rrTypeToText(r.type) === 'DHCID' ? (bytesToHex(rd.data) === this.ncr?.dhcidHex ? 'ours' : 'other') : 'raw';
    return `${r.name.toText()} ${rrClassToText(r.class)} ${rrTypeToText(r.type)} ${r.ttl}${data ? ' ' + data : ''}`;
  }

  close(): Promise<void> {
    return new Promise((r) => this.socket.close(() => r()));
  }
}

const servers: ScriptedServer[] = [];
let client: DnsClient;
let stats: StatsMgr;

beforeAll(async () => {
  for (let i = 0; i < 2; i++) {
    const s = new ScriptedServer();
    await s.start();
    servers.push(s);
  }
  client = new DnsClient();
});

afterAll(async () => {
  await client.close();
  for (const s of servers) await s.close();
});

const FQDN = 'host.example.com.';
const IP = '192.0.2.7';
const REV = '7.2.0.192.in-addr.arpa.';

function domain(name: string, count = 1): DdnsDomainConfig {
  return {
    name,
    'key-name': '',
    'dns-servers': servers.slice(0, count).map((s) => ({ hostname: '', 'ip-address': '127.0.0.1', port: s.port, 'key-name': '' })),
  } as DdnsDomainConfig;
}

async function run(
  mode: ConflictResolutionMode,
  changeType: 0 | 1,
  script: (index: number) => Reply,
  opts: { servers?: number; timeoutMs?: number; forward?: boolean; reverse?: boolean } = {},
) {
  const n = ncr({ fqdn: FQDN, ipAddress: IP, changeType, conflictResolutionMode: mode, leaseLength: 777, forwardChange: opts.forward ?? true, reverseChange: opts.reverse ?? true });
  for (const s of servers) s.reset(script, n);
  stats = new StatsMgr();
  const ctx: TransactionContext = { dnsClient: client, dnsServerTimeout: opts.timeoutMs ?? 200, keys: new Map(), stats, log: new Logger('test-d2') };
  const t = createTransaction(n, n.forwardChange ? domain('example.com.', opts.servers) : undefined, n.reverseChange ? domain('2.0.192.in-addr.arpa.', opts.servers) : undefined, ctx);
  const outcome = await t.run();
  return { outcome, requests: servers[0]!.requests, second: servers[1]!.requests };
}

describe('the exact sections each mode sends (all answered NOERROR)', () => {
  const revReplace = (dhcid: boolean) => ({
    zone: '2.0.192.in-addr.arpa.',
    prereq: [],
    update: [
      `${REV} ANY PTR 0`,
      ...(dhcid ? [`${REV} ANY DHCID 0`] : []),
      `${REV} IN PTR 777 ${FQDN}`,
      ...(dhcid ? [`${REV} IN DHCID 777 ours`] : []),
    ],
  });

  it('check-with-dhcid add (NameAddTransaction)', async () => {
    const { outcome, requests } = await run('check-with-dhcid', 0, () => Rcode.NOERROR);
    expect(outcome.status).toBe('completed');
    expect(requests).toEqual([
      { zone: 'example.com.', prereq: [`${FQDN} NONE ANY 0`], update: [`${FQDN} IN A 777 ${IP}`, `${FQDN} IN DHCID 777 ours`] },
      revReplace(true),
    ]);
  });

  it('check-with-dhcid add after YXDOMAIN: the replace request', async () => {
    const { outcome, requests } = await run('check-with-dhcid', 0, (i) => (i === 0 ? Rcode.YXDOMAIN : Rcode.NOERROR));
    expect(outcome.status).toBe('completed');
    expect(requests[1]).toEqual({
      zone: 'example.com.',
      prereq: [`${FQDN} ANY ANY 0`, `${FQDN} IN DHCID 0 ours`],
      update: [`${FQDN} ANY A 0`, `${FQDN} IN A 777 ${IP}`],
    });
    expect(outcome.trail).toEqual(['READY_ST', 'SELECTING_FWD_SERVER_ST', 'ADDING_FWD_ADDRS_ST', 'REPLACING_FWD_ADDRS_ST', 'SELECTING_REV_SERVER_ST', 'REPLACING_REV_PTRS_ST', 'PROCESS_TRANS_OK_ST']);
  });

  it('check-with-dhcid remove (NameRemoveTransaction)', async () => {
    const { outcome, requests } = await run('check-with-dhcid', 1, () => Rcode.NOERROR);
    expect(outcome.status).toBe('completed');
    expect(requests).toEqual([
      { zone: 'example.com.', prereq: [`${FQDN} IN DHCID 0 ours`], update: [`${FQDN} NONE A 0 ${IP}`] },
      { zone: 'example.com.', prereq: [`${FQDN} IN DHCID 0 ours`, `${FQDN} NONE A 0`, `${FQDN} NONE AAAA 0`], update: [`${FQDN} ANY ANY 0`] },
      { zone: '2.0.192.in-addr.arpa.', prereq: [`${REV} IN PTR 0 ${FQDN}`], update: [`${REV} ANY ANY 0`] },
    ]);
  });

  it('no-check-with-dhcid add and remove (SimpleAdd/SimpleRemove)', async () => {
    const add = await run('no-check-with-dhcid', 0, () => Rcode.NOERROR);
    expect(add.requests).toEqual([
      { zone: 'example.com.', prereq: [], update: [`${FQDN} ANY A 0`, `${FQDN} ANY DHCID 0`, `${FQDN} IN A 777 ${IP}`, `${FQDN} IN DHCID 777 ours`] },
      revReplace(true),
    ]);
    const remove = await run('no-check-with-dhcid', 1, () => Rcode.NOERROR);
    expect(remove.requests).toEqual([
      { zone: 'example.com.', prereq: [], update: [`${FQDN} ANY A 0`, `${FQDN} ANY DHCID 0`] },
      { zone: '2.0.192.in-addr.arpa.', prereq: [], update: [`${REV} ANY PTR 0`, `${REV} ANY DHCID 0`] },
    ]);
  });

  it('check-exists-with-dhcid add (after YXDOMAIN) and remove', async () => {
    const add = await run('check-exists-with-dhcid', 0, (i) => (i === 0 ? Rcode.YXDOMAIN : Rcode.NOERROR));
    expect(add.requests.slice(0, 2)).toEqual([
      { zone: 'example.com.', prereq: [`${FQDN} NONE ANY 0`], update: [`${FQDN} IN A 777 ${IP}`, `${FQDN} IN DHCID 777 ours`] },
      { zone: 'example.com.', prereq: [`${FQDN} ANY DHCID 0`], update: [`${FQDN} ANY A 0`, `${FQDN} ANY DHCID 0`, `${FQDN} IN A 777 ${IP}`, `${FQDN} IN DHCID 777 ours`] },
    ]);
    expect(add.requests[2]).toEqual(revReplace(true));
    const remove = await run('check-exists-with-dhcid', 1, (i) => (i === 1 ? Rcode.YXRRSET : Rcode.NOERROR));
    expect(remove.outcome.status).toBe('completed'); // YXRRSET on the RR step is taken as done here
    expect(remove.requests).toEqual([
      { zone: 'example.com.', prereq: [`${FQDN} ANY DHCID 0`], update: [`${FQDN} NONE A 0 ${IP}`] },
      { zone: 'example.com.', prereq: [`${FQDN} NONE A 0`, `${FQDN} NONE AAAA 0`], update: [`${FQDN} ANY DHCID 0`] },
      { zone: '2.0.192.in-addr.arpa.', prereq: [`${REV} IN PTR 0 ${FQDN}`], update: [`${REV} ANY ANY 0`] },
    ]);
  });

  it('no-check-without-dhcid add and remove: no DHCID anywhere', async () => {
    const add = await run('no-check-without-dhcid', 0, () => Rcode.NOERROR);
    expect(add.requests).toEqual([
      { zone: 'example.com.', prereq: [], update: [`${FQDN} ANY A 0`, `${FQDN} IN A 777 ${IP}`] },
      revReplace(false),
    ]);
    const remove = await run('no-check-without-dhcid', 1, () => Rcode.NOERROR);
    expect(remove.requests).toEqual([
      { zone: 'example.com.', prereq: [], update: [`${FQDN} ANY A 0`] },
      { zone: '2.0.192.in-addr.arpa.', prereq: [], update: [`${REV} ANY PTR 0`] },
    ]);
  });
});

describe('state transitions on answers BIND does not easily give', () => {
  it('REFUSED to the forward add fails the NCR (rejected) without trying another server or the reverse', async () => {
    const { outcome, requests, second } = await run('check-with-dhcid', 0, () => Rcode.REFUSED, { servers: 2 });
    expect(outcome).toMatchObject({ status: 'failed', reason: 'rejected', forwardCompleted: false, reverseCompleted: false });
    expect(requests).toHaveLength(1);
    expect(second).toHaveLength(0);
    expect(stats.getValue('update-success')).toBe(1);
  });

  it('SERVFAIL on the reverse replace: forward done, reverse failed', async () => {
    const { outcome } = await run('check-with-dhcid', 0, (i) => (i === 0 ? Rcode.NOERROR : Rcode.SERVFAIL));
    expect(outcome).toMatchObject({ status: 'failed', reason: 'rejected', forwardCompleted: true, reverseCompleted: false });
    expect(outcome.detail).toMatch(/Reverse Replace.*SERVFAIL/);
  });

  it('NXDOMAIN on the replace goes back to the add (the name vanished meanwhile)', async () => {
    const replies = [Rcode.YXDOMAIN, Rcode.NXDOMAIN, Rcode.NOERROR];
    const { outcome } = await run('check-with-dhcid', 0, (i) => replies[i] ?? Rcode.NOERROR, { reverse: false });
    expect(outcome.status).toBe('completed');
    expect(outcome.trail).toEqual(['READY_ST', 'SELECTING_FWD_SERVER_ST', 'ADDING_FWD_ADDRS_ST', 'REPLACING_FWD_ADDRS_ST', 'ADDING_FWD_ADDRS_ST', 'PROCESS_TRANS_OK_ST']);
  });

  it('an endless YXDOMAIN/NXDOMAIN bounce ends failed after a bounded number of transitions (Kea would loop)', async () => {
    const { outcome, requests } = await run('check-with-dhcid', 0, (i) => (i % 2 === 0 ? Rcode.YXDOMAIN : Rcode.NXDOMAIN), { reverse: false });
    expect(outcome).toMatchObject({ status: 'failed', reason: 'model-error' });
    expect(requests.length).toBeGreaterThan(10);
    expect(requests.length).toBeLessThanOrEqual(MAX_TRANSITIONS);
  });

  it('NXRRSET on every remove step counts as done (the records are already gone), as Kea', async () => {
    const { outcome } = await run('check-with-dhcid', 1, () => Rcode.NXRRSET);
    expect(outcome).toMatchObject({ status: 'completed', forwardCompleted: true, reverseCompleted: true });
  });

  it('a malformed answer is retried on the same server 3 times (update-error), then the next server', async () => {
    const { outcome, requests, second } = await run('check-with-dhcid', 0, () => 'garbage', { servers: 2, reverse: false });
    expect(outcome).toMatchObject({ status: 'failed', reason: 'no-more-servers' });
    expect(requests).toHaveLength(3);
    expect(second).toHaveLength(3);
    expect(stats.getValue('update-error')).toBe(6);
    expect(stats.getValue('update-sent')).toBe(6);
    expect(stats.getValue('update-unsigned')).toBe(6);
  });

  it('timeouts in the forward RR removal end the NCR failed after 3 tries, with no other server tried (Kea)', async () => {
    const { outcome, requests, second } = await run('check-with-dhcid', 1, (i) => (i === 0 ? Rcode.NOERROR : 'silent'), { servers: 2, timeoutMs: 80 });
    expect(outcome).toMatchObject({ status: 'failed', reason: 'no-more-servers', state: 'PROCESS_TRANS_FAILED_ST', event: 'SERVER_IO_ERROR_EVT' });
    expect(requests).toHaveLength(4);
    expect(second).toHaveLength(0);
    expect(stats.getValue('update-timeout')).toBe(3);
  });
});

describe('D2UpdateMgr: concurrency limit and one transaction per DHCID', () => {
  const until = async (cond: () => boolean) => {
    for (let i = 0; i < 500 && !cond(); i++) await sleep(10);
    expect(cond()).toBe(true);
  };

  async function harness(maxTransactions: number) {
    const s = servers[0]!;
    s.reset(() => 'hold', undefined);
    const h = new D2Harness({ maxTransactions });
    const r = await h.configure({ port: await freePort(), timeoutMs: 10_000, forward: [{ name: 'example.com.', servers: [{ port: s.port }] }] });
    expect(r).toEqual({ ok: true });
    return { s, h };
  }

  it('at most maxTransactions run at once; the rest wait in the queue and run as others end', async () => {
    const { s, h } = await harness(3);
    try {
      const ncrs = Array.from({ length: 7 }, (_, i) => ncr({ fqdn: `c${i}.example.com.`, ipAddress: `192.0.2.${i + 1}`, reverseChange: false }));
      for (const n of ncrs) h.process.receive(n);
      await until(() => s.held.length === 3);
      await sleep(100); // a fourth transaction would have sent by now
      expect(s.requests).toHaveLength(3);
      expect(h.process.updateMgr.transactionCount).toBe(3);
      expect(h.process.queueMgr.size).toBe(4);
      for (let round = 0; round < 5 && h.done.length < 7; round++) {
        s.release();
        await until(() => s.held.length > 0 || h.done.length === 7);
      }
      s.release();
      const endings = await h.waitDone(ncrs);
      expect(endings.every((e) => e.status === 'completed')).toBe(true);
      expect(s.requests).toHaveLength(7);
    } finally {
      s.release();
      await h.close();
    }
  });

  it('a second NCR for a DHCID waits for the first to end; an NCR for another DHCID goes past it', async () => {
    const { s, h } = await harness(32);
    try {
      const add = ncr({ fqdn: 'same.example.com.', ipAddress: '192.0.2.50', reverseChange: false });
      const remove = ncr({ fqdn: 'same.example.com.', ipAddress: '192.0.2.50', reverseChange: false, changeType: 1, dhcid: add.dhcidHex });
      const other = ncr({ fqdn: 'other.example.com.', ipAddress: '192.0.2.51', reverseChange: false });
      await h.send(add, remove, other);
      await until(() => s.held.length === 2);
      await sleep(100);
      expect(s.requests.map((r) => r.update[0]!.split(' ')[0])).toEqual(['same.example.com.', 'other.example.com.']);
      expect(h.process.queueMgr.size).toBe(1);
      s.release();
      await until(() => s.held.length === 1);
      expect(s.requests[2]!.update).toEqual([`same.example.com. NONE A 0 192.0.2.50`]);
      for (let i = 0; i < 3 && h.done.length < 3; i++) {
        s.release();
        await until(() => s.held.length > 0 || h.done.length === 3);
      }
      const endings = await h.waitDone([add, other]);
      expect(endings.map((e) => [e.ncr.fqdn, e.ncr.changeType])).toEqual([
        ['same.example.com.', 0],
        ['other.example.com.', 0],
        ['same.example.com.', 1],
      ]);
    } finally {
      s.release();
      await h.close();
    }
  });
});
