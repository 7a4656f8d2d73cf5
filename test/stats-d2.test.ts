/**
 * Statistics with Kea's semantics: StatsMgr's sample limits (Kea's default of
 * 20 samples, D2's max-sample-count 0 = one sample), reset, and the daemon's
 * D2 statistics, global and per key, read through statistic-get over the
 * control socket after real NCRs against BIND 9 and a dead server.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NcrSender } from '../src/ncr/ncr-sender.js';
import { declareD2Stats, declareKeyStats } from '../src/stats/d2-stats.js';
import { DEFAULT_MAX_SAMPLES, StatsMgr } from '../src/stats/stats-mgr.js';
import { ncr, silentServer } from './fixtures/d2-harness.js';
import { freePort, startBind9, type Bind9Server } from './support/bind9.js';
import { Daemon, sleep, tempDir, writeJson } from './control-daemon.js';

describe('StatsMgr, as Kea\'s', () => {
  it('keeps Kea\'s default of 20 samples, newest first', () => {
    const s = new StatsMgr();
    for (let i = 1; i <= 25; i++) s.setValue('x', i);
    const samples = s.get('x').x!;
    expect(DEFAULT_MAX_SAMPLES).toBe(20);
    expect(samples.map((p) => p[0])).toEqual(Array.from({ length: 20 }, (_, i) => 25 - i));
    expect(samples[0]![1]).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$/);
  });

  it('D2\'s statistics hold one sample: D2Stats::init sets the default max-sample-count to 0', () => {
    const s = new StatsMgr();
    declareD2Stats(s);
    for (let i = 0; i < 5; i++) s.addValue('ncr-received');
    expect(s.get('ncr-received')).toEqual({ 'ncr-received': [[5, expect.any(String)]] });
    // Per-key statistics created later take the same default.
    declareKeyStats(s, ['k.']);
    s.addValue('key[k.].update-sent', 3);
    expect(s.getSize('key[k.].update-sent')).toBe(1);
    // A per-statistic count limit switches that one back to counting.
    expect(s.setMaxSampleCount('ncr-received', 3)).toBe(true);
    for (let i = 0; i < 5; i++) s.addValue('ncr-received');
    expect(s.get('ncr-received')['ncr-received']!.map((p) => p[0])).toEqual([10, 9, 8]);
    expect(s.setMaxSampleCount('nope', 3)).toBe(false);
  });

  it('reset clears the samples and records a 0; unknown names are reported', () => {
    const s = new StatsMgr();
    for (let i = 1; i <= 4; i++) s.setValue('y', i);
    expect(s.reset('y')).toBe(true);
    expect(s.get('y').y!.map((p) => p[0])).toEqual([0]);
    expect(s.reset('zz')).toBe(false);
    expect(s.get('zz')).toEqual({});
  });

  it('per-key statistics of keys no longer configured are removed; those still configured keep their values', () => {
    const s = new StatsMgr();
    declareKeyStats(s, ['a.', 'b.']);
    s.addValue('key[a.].update-success', 2);
    declareKeyStats(s, ['a.']);
    expect(s.getValue('key[a.].update-success')).toBe(2);
    expect(s.has('key[b.].update-sent')).toBe(false);
  });
});

describe('the daemon\'s D2 statistics', () => {
  const ZONE = 'stats.test';
  const DEAD = 'dead.test';
  const REV4 = '2.0.192.in-addr.arpa';
  const secret = randomBytes(32).toString('base64');
  const tmp = tempDir('d2box-stats-');
  let bind: Bind9Server;
  let dead: Awaited<ReturnType<typeof silentServer>>;
  let d: Daemon;
  let port: number;

  beforeAll(async () => {
    bind = await startBind9({
      keys: [{ name: 'stats.key', algorithm: 'hmac-sha256', secret }],
      zones: [
        { name: ZONE, updateKeys: ['stats.key'] },
        { name: REV4, updateKeys: ['stats.key'] },
      ],
    });
    dead = await silentServer();
    port = await freePort();
    const file = writeJson(join(tmp.dir, 'c.json'), {
      DhcpDdns: {
        'ip-address': '127.0.0.1',
        port,
        'dns-server-timeout': 200,
        // Kea's single attempt: the dead server's NCR must end, and no retry in the background may
        // move a counter after statistic-reset-all.
        'd2box-retry-unanswered': false,
        'control-socket': { 'socket-type': 'unix', 'socket-name': join(tmp.dir, 'sock') },
        'tsig-keys': [
          { name: 'stats.key', algorithm: 'HMAC-SHA256', secret },
          { name: 'dead.key', algorithm: 'HMAC-SHA256', secret },
        ],
        'forward-ddns': {
          'ddns-domains': [
            { name: `${ZONE}.`, 'key-name': 'stats.key', 'dns-servers': [{ 'ip-address': '127.0.0.1', port: bind.port }] },
            { name: `${DEAD}.`, 'key-name': 'dead.key', 'dns-servers': [{ 'ip-address': '127.0.0.1', port: dead.port }] },
          ],
        },
        'reverse-ddns': { 'ddns-domains': [{ name: `${REV4}.`, 'key-name': 'stats.key', 'dns-servers': [{ 'ip-address': '127.0.0.1', port: bind.port }] }] },
      },
    });
    d = new Daemon(file, join(tmp.dir, 'sock'));
    await d.ready();
  }, 60_000);

  afterAll(async () => {
    if (d) expect(await d.stop()).toBe(0);
    await dead?.close();
    await bind?.stop();
    tmp.cleanup();
  });

  async function waitStat(name: string, value: number): Promise<void> {
    for (let i = 0; i < 400 && (await d.stat(name)) < value; i++) await sleep(25);
    expect(await d.stat(name)).toBe(value);
  }

  it('every Kea D2 statistic and the per-key ones exist at 0 with one sample', async () => {
    const all = (await d.command('statistic-get-all')).arguments;
    const names = ['ncr-received', 'ncr-invalid', 'ncr-error', 'update-sent', 'update-signed', 'update-unsigned', 'update-success', 'update-timeout', 'update-error'];
    for (const key of ['stats.key.', 'dead.key.']) for (const s of ['update-sent', 'update-success', 'update-timeout', 'update-error']) names.push(`key[${key}].${s}`);
    for (const name of names) expect(all[name], name).toEqual([[0, expect.stringMatching(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$/)]]);
  });

  it('a served NCR counts received, sent, signed and success, globally and under its key', async () => {
    const sender = new NcrSender({ serverAddress: '127.0.0.1', serverPort: port });
    await sender.send(ncr({ fqdn: `a.${ZONE}.`, ipAddress: '192.0.2.10' }));
    await sender.close();
    await waitStat('d2box.ncr-completed', 1);
    expect(await d.stat('ncr-received')).toBe(1);
    expect(await d.stat('update-sent')).toBe(2);
    expect(await d.stat('update-signed')).toBe(2);
    expect(await d.stat('update-unsigned')).toBe(0);
    expect(await d.stat('update-success')).toBe(2);
    expect(await d.stat('key[stats.key.].update-sent')).toBe(2);
    expect(await d.stat('key[stats.key.].update-success')).toBe(2);
    const got = (await d.command('statistic-get', { name: 'update-success' })).arguments['update-success'];
    expect(got).toHaveLength(1);
  });

  it('an invalid NCR counts ncr-invalid; a dead server counts update-timeout under its key', async () => {
    const sender = new NcrSender({ serverAddress: '127.0.0.1', serverPort: port });
    await sender.sendRaw(Buffer.from([0, 4, 0x7b, 0x7d, 0x7b, 0x7d]));
    await sender.send(ncr({ fqdn: `b.${DEAD}.`, ipAddress: '192.0.2.11', reverseChange: false }));
    await sender.close();
    await waitStat('ncr-invalid', 1);
    await waitStat('d2box.ncr-failed', 1);
    expect(await d.stat('update-timeout')).toBeGreaterThanOrEqual(1);
    expect(await d.stat('key[dead.key.].update-timeout')).toBe(await d.stat('update-timeout'));
    expect(await d.stat('key[stats.key.].update-timeout')).toBe(0);
    expect(await d.stat('ncr-received')).toBe(2);
  });

  it('statistic-reset zeroes one statistic, statistic-reset-all every one', async () => {
    expect((await d.command('statistic-reset', { name: 'key[stats.key.].update-success' })).result).toBe(0);
    expect(await d.stat('key[stats.key.].update-success')).toBe(0);
    expect(await d.stat('update-success')).toBe(2);
    expect((await d.command('statistic-reset-all')).result).toBe(0);
    const all = (await d.command('statistic-get-all')).arguments as Record<string, [number, string][]>;
    for (const [name, samples] of Object.entries(all)) {
      expect(samples, name).toHaveLength(1);
      expect(samples[0]![0], name).toBe(0);
    }
  });
});
