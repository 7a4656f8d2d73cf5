/**
 * The NCR journal (issue 15, item 2): no NCR lost to a crash.
 *
 * - The file format: a journal truncated at any point, or with a corrupt
 *   record, is read without a throw; the torn record is counted and skipped,
 *   and what is replayed is exactly the accepted-and-not-done NCRs whose
 *   records survived.
 * - The real daemon against a real BIND 9: NCRs received during a DNS outage
 *   (BIND stopped) are journaled; the daemon is killed with SIGKILL; BIND comes
 *   back; a new daemon replays them and every record ends as the NCRs say
 *   (adds present, removes gone); a third start replays nothing.
 *
 * No timing is asserted; waits are bounded in rounds and time.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dgram from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseD2Config } from '../src/config/d2-config.js';
import { enforcePathPolicy } from '../src/config/path-policy.js';
import { NcrJournal, parseJournal } from '../src/d2/ncr-journal.js';
import { Logger, type LogRecord } from '../src/log/logger.js';
import type { NameChangeRequest } from '../src/ncr/name-change-request.js';
import { encodeNcr } from '../src/ncr/wire.js';
import { Daemon, writeJson } from './control-daemon.js';
import { configJson, ncr, sleep } from './fixtures/d2-harness.js';
import { digRecords, freePort, startBind9, type Bind9Server } from './support/bind9.js';

const dir = mkdtempSync(join(tmpdir(), 'd2box-journal-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A small deterministic PRNG (mulberry32): the truncation points are the same on every run. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('journal file format', () => {
  const logs: LogRecord[] = [];
  beforeAll(() => Logger.setSink((r) => logs.push(r)));

  /** Writes a journal through NcrJournal: 20 NCRs admitted, the even ones done. */
  async function sample(file: string): Promise<NameChangeRequest[]> {
    const { journal } = await NcrJournal.open(file);
    const ncrs = Array.from({ length: 20 }, (_, i) => ncr({ fqdn: `n${i}.example.com.`, ipAddress: `192.0.2.${i + 1}` }));
    const ids: number[] = [];
    for (const n of ncrs) journal.admit(n, (_n, id) => ids.push(id));
    await journal.idle();
    expect(ids).toHaveLength(20);
    ids.forEach((id, i) => i % 2 === 0 && journal.done(id));
    await journal.close();
    return ncrs;
  }

  it('replays exactly the NCRs admitted and not done, in order, and rewrites the file with only those', async () => {
    const file = join(dir, 'roundtrip.journal');
    const ncrs = await sample(file);
    const again = await NcrJournal.open(file);
    expect(again.replay.map((r) => r.ncr.fqdn)).toEqual(ncrs.filter((_, i) => i % 2 === 1).map((n) => n.fqdn));
    expect(again.replay.map((r) => r.ncr.dhcidHex)).toEqual(ncrs.filter((_, i) => i % 2 === 1).map((n) => n.dhcidHex));
    expect(again.found.corrupt).toBe(0);
    await again.journal.close();
    // Compacted at open: only the 10 open NCRs remain, and nothing marks them done.
    const text = readFileSync(file, 'utf8');
    expect(text.split('\n').filter((l) => / A /.test(l))).toHaveLength(10);
    expect(text).not.toMatch(/ D /);
  });

  it('a journal cut at 300 random points, or with a byte flipped, is read without a throw; the torn record is counted and skipped', async () => {
    const file = join(dir, 'torn.journal');
    await sample(file);
    // Undo the compaction a reopen would do: read the file as the crash left it.
    const full = readFileSync(file, 'utf8');
    const fullParse = parseJournal(full);
    const open = new Set(fullParse.unfinished.map((n) => n.dhcidHex));
    const accepted = new Set<string>();
    for (const l of full.split('\n')) {
      const m = / A \d+ (.*)$/.exec(l);
      if (m) accepted.add((JSON.parse(m[1]!) as { dhcid: string }).dhcid);
    }
    const rand = prng(15);
    for (let k = 0; k < 300; k++) {
      const cut = Math.floor(rand() * full.length);
      const text = full.slice(0, cut);
      const r = parseJournal(text);
      const endsClean = text === '' || text.endsWith('\n');
      expect(r.corrupt, `cut at ${cut}`).toBe(endsClean ? 0 : 1);
      // Nothing invented: every replayed NCR was accepted; none replayed twice.
      for (const n of r.unfinished) expect(accepted.has(n.dhcidHex.toUpperCase()) || accepted.has(n.dhcidHex)).toBe(true);
      expect(new Set(r.unfinished.map((n) => n.dhcidHex)).size).toBe(r.unfinished.length);
    }
    // A flipped byte in the middle spoils one record; the others are read.
    const mid = full.indexOf('\n', Math.floor(full.length / 2)) + 20;
    const flipped = full.slice(0, mid) + (full[mid] === 'a' ? 'b' : 'a') + full.slice(mid + 1);
    const r = parseJournal(flipped);
    expect(r.corrupt).toBe(1);
    expect(r.records).toBe(fullParse.records - 1);
    expect(open.size).toBe(10);
  });

  it('a torn tail is logged at open and the file rewritten whole', async () => {
    const file = join(dir, 'tail.journal');
    await sample(file);
    const text = readFileSync(file, 'utf8');
    writeFileSync(file, text + text.slice(0, 40)); // half a record at the end
    logs.length = 0;
    const again = await NcrJournal.open(file);
    expect(again.found.corrupt).toBe(1);
    expect(again.replay).toHaveLength(10);
    expect(logs.some((l) => l.id === 'D2BOX_JOURNAL_CORRUPT' && l.text.includes('1 torn or corrupt'))).toBe(true);
    await again.journal.close();
    expect(parseJournal(readFileSync(file, 'utf8')).corrupt).toBe(0);
  });
});

describe('where the journal may be', () => {
  const police = (journal: string) => {
    const parsed = parseD2Config(JSON.stringify(configJson({ port: 53001, extra: { 'd2box-journal-file': journal } })), { file: 't.json' });
    if (!parsed.ok) throw new Error(parsed.error);
    return enforcePathPolicy(parsed.config);
  };

  it('only in D2BOX_JOURNAL_DIR: a bare name goes there, a path elsewhere is refused naming the rule', () => {
    const saved = process.env['D2BOX_JOURNAL_DIR'];
    process.env['D2BOX_JOURNAL_DIR'] = dir;
    try {
      const bare = police('ncr.journal');
      expect(bare.ok && bare.config['d2box-journal-file']).toBe(join(dir, 'ncr.journal'));
      const outside = police('/etc/ncr.journal');
      expect(outside.ok).toBe(false);
      if (!outside.ok) expect(outside.error).toMatch(/'d2box-journal-file' is invalid: .*the NCR journal is kept only in the journal directory; set D2BOX_JOURNAL_DIR/);
    } finally {
      if (saved === undefined) delete process.env['D2BOX_JOURNAL_DIR'];
      else process.env['D2BOX_JOURNAL_DIR'] = saved;
    }
  });
});

describe('kill -9 with NCRs queued, against BIND 9', () => {
  const ZONE = 'journal.test';
  const secret = randomBytes(32).toString('base64');
  let bind: Bind9Server;
  const daemons: Daemon[] = [];

  beforeAll(async () => {
    bind = await startBind9({ keys: [{ name: 'd2.key', algorithm: 'hmac-sha256', secret }], zones: [{ name: ZONE, updateKeys: ['d2.key'] }] });
  }, 60_000);
  afterAll(async () => {
    for (const d of daemons) await d.stop();
    await bind?.stop();
  });

  it('every NCR journaled before the kill lands after the restart: adds present, removes gone; nothing replays twice', async () => {
    const ncrPort = await freePort();
    const socket = join(dir, 'ctrl.sock');
    const config = configJson({
      port: ncrPort,
      timeoutMs: 250,
      keys: [{ name: 'd2.key', algorithm: 'HMAC-SHA256', secret }],
      forward: [{ name: `${ZONE}.`, key: 'd2.key', servers: [{ port: bind.port }] }],
      extra: {
        'd2box-journal-file': 'ncr.journal',
        // Short retries: the replayed NCRs are served as soon as BIND answers.
        'd2box-retry-first-delay-ms': 200,
        'd2box-retry-max-delay-ms': 1000,
        'd2box-retry-max-age-ms': 600_000,
        'control-socket': { 'socket-type': 'unix', 'socket-name': socket },
        loggers: [{ name: 'kea-dhcp-ddns', severity: 'INFO', output_options: [{ output: 'stdout' }] }],
      },
    }) as { DhcpDdns: Record<string, unknown> };
    const file = writeJson(join(dir, 'd2.json'), config);
    const env = { D2BOX_JOURNAL_DIR: dir };
    const start = async (): Promise<Daemon> => {
      const d = new Daemon(file, socket, { env });
      daemons.push(d);
      await d.ready(60_000);
      return d;
    };

    // The outage: BIND stopped, so nothing the first daemon receives can end.
    await bind.halt();
    const first = await start();
    const adds = Array.from({ length: 30 }, (_, i) => ncr({ fqdn: `h${i}.${ZONE}.`, ipAddress: `192.0.2.${i + 1}`, reverseChange: false }));
    const removes = adds.slice(0, 10).map((a) => ({ ...a, changeType: 1 as const }));
    const sender = dgram.createSocket('udp4');
    await new Promise<void>((r) => sender.connect(ncrPort, '127.0.0.1', () => r()));
    for (const n of [...adds, ...removes]) await new Promise((r) => sender.send(encodeNcr(n), r));
    await new Promise<void>((r) => sender.close(() => r()));
    const journalFile = join(dir, 'ncr.journal');
    const accepted = () => readFileSync(journalFile, 'utf8').split('\n').filter((l) => / A /.test(l)).length;
    for (let i = 0; i < 600 && accepted() < 40; i++) await sleep(50);
    expect(accepted()).toBe(40);
    expect(await first.stat('d2box.ncr-completed')).toBe(0);

    first.child.kill('SIGKILL');
    await first.exited;
    await bind.resume();

    const second = await start();
    const ended = async () => (await second.stat('d2box.ncr-completed')) + (await second.stat('d2box.ncr-failed'));
    for (let i = 0; i < 1200 && (await ended()) < 40; i++) await sleep(100);
    expect(await second.stat('d2box.ncr-completed')).toBe(40);
    expect(await second.stat('d2box.ncr-failed')).toBe(0);
    await second.waitLog(/D2BOX_JOURNAL_REPLAY.*40 NCR/);
    for (const [i, a] of adds.entries()) {
      const records = await digRecords(bind.port, a.fqdn, 'A');
      expect(records.map((r) => r.data), a.fqdn).toEqual(i < 10 ? [] : [a.ipAddress]);
    }
    expect(await second.stop()).toBe(0);

    // Every NCR was marked done: a third start has nothing to replay.
    const third = await start();
    expect(await third.stat('ncr-received')).toBe(0);
    expect(await third.stat('d2box.ncr-completed')).toBe(0);
    expect(third.stdout() + third.stderr()).not.toMatch(/D2BOX_JOURNAL_REPLAY/);
    expect(parseJournal(readFileSync(journalFile, 'utf8')).unfinished).toHaveLength(0);
    expect(await third.stop()).toBe(0);
  }, 240_000);
});
