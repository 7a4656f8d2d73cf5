/**
 * A hook library's own statistics (d2box/hooks StatsMgr), in a worker thread and in
 * the process sandbox, through the real daemon's control socket: they show in
 * statistic-get(-all) beside the daemon's, with Kea's types and sample limits; the
 * reset commands reset them; a library cannot change the daemon's statistics or
 * another library's; they survive a restart of the library's worker and go when it
 * is unloaded. Two libraries (the same fixture under two names) per daemon.
 */
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { freePort } from './support/bind9.js';
import { Daemon, sleep, tempDir, writeJson } from './control-daemon.js';

const LIB_A = resolve('test/fixtures/library-statistics.mjs');
const LIB_B = resolve('test/fixtures/library-statistics-other.mjs');
const tmp = tempDir('d2box-libstats-');
let d: Daemon | undefined;
let n = 0;

afterEach(async () => {
  if (d) expect(await d.stop()).toBe(0);
  d = undefined;
});
afterAll(() => tmp.cleanup());

type Sample = [number | string, string];

async function config(isolation: 'thread' | 'process', libraries = true): Promise<Record<string, unknown>> {
  const socket = join(tmp.dir, `sock${n}`);
  const sandbox = { isolation, 'callout-timeout-ms': 5000, 'max-restarts': 3 };
  return {
    DhcpDdns: {
      'ip-address': '127.0.0.1',
      port: await freePort(),
      'control-socket': { 'socket-type': 'unix', 'socket-name': socket },
      'hooks-libraries': libraries
        ? [
            { library: LIB_A, parameters: { prefix: 'a-' }, sandbox },
            { library: LIB_B, parameters: { prefix: 'b-' }, sandbox },
          ]
        : [],
    },
  };
}

async function start(isolation: 'thread' | 'process'): Promise<Daemon> {
  const id = ++n;
  const cfg = await config(isolation);
  const file = writeJson(join(tmp.dir, `c${id}.json`), cfg);
  d = new Daemon(file, ((cfg.DhcpDdns as Record<string, unknown>)['control-socket'] as { 'socket-name': string })['socket-name']);
  await d.ready();
  return d;
}

async function samples(name: string): Promise<Sample[] | undefined> {
  const a = await d!.command('statistic-get', { name });
  expect(a.result).toBe(0);
  return a.arguments[name];
}

async function value(name: string): Promise<number | string | undefined> {
  return (await samples(name))?.[0]?.[0];
}

/** Runs stats calls in one callout of library `prefix`; what each threw (null: nothing). */
async function ops(prefix: string, list: unknown[][]): Promise<(string | null)[]> {
  const a = await d!.command(`${prefix}stats`, { ops: list });
  expect(a.result).toBe(0);
  return a.arguments.errors;
}

for (const isolation of ['thread', 'process'] as const) {
  describe(`library statistics, ${isolation} mode`, () => {
    beforeEach(async () => {
      await start(isolation);
    });

    it('shows them in statistic-get-all beside the daemon\'s, with Kea\'s types', async () => {
      const all = (await d!.command('statistic-get-all')).arguments as Record<string, Sample[]>;
      expect(all['ncr-received']?.[0]?.[0]).toBe(0);
      expect(all['a-key-created']?.[0]?.[0]).toBe(0);
      expect(all['server[1].a-tkey-sent']?.[0]?.[0]).toBe(0);
      expect(all['b-key-created']?.[0]?.[0]).toBe(0);
      expect(all['a-ratio']?.[0]?.[0]).toBe(0.5);
      expect(all['a-uptime']?.[0]?.[0]).toBe('00:00:01.500250');
      expect(all['a-state']?.[0]?.[0]).toBe('starting');
      expect(all['a-state']?.[0]?.[1]).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$/);
    });

    it('sets and adds with each type; an update made in a callout is applied before its answer', async () => {
      expect(await ops('a-', [
        ['addValue', 'a-key-created', 2],
        ['addValue', 'a-key-created', 3],
        ['addValue', 'server[1].a-tkey-sent', 1],
        ['setValue', 'a-ratio', 0.25],
        ['addValue', 'a-uptime', 3_600_000],
        ['addValue', 'a-state', '/ready'],
        ['setValue', 'a-new', 7],
      ])).toEqual([null, null, null, null, null, null, null]);
      // No wait: the answer to the command came after the updates the callout made.
      expect(await value('a-key-created')).toBe(5);
      // D2's default sample limit (D2Stats::init: an age of 0) applies to a library's statistics as in Kea.
      expect((await samples('a-key-created'))!.map((s) => s[0])).toEqual([5]);
      expect(await value('server[1].a-tkey-sent')).toBe(1);
      expect(await value('a-ratio')).toBe(0.25);
      expect(await value('a-uptime')).toBe('01:00:01.500250');
      expect(await value('a-state')).toBe('starting/ready');
      expect(await value('a-new')).toBe(7);
      // Kea's InvalidStatType, thrown in the library at the call.
      expect((await ops('a-', [['setValue', 'a-state', 3]]))[0]).toMatch(/TypeError: statistic a-state is a string statistic/);
    });

    it('keeps the samples its limits allow, and the reset commands reset them to their neutral values', async () => {
      await ops('a-', [['setMaxSampleCount', 'a-key-created', 3], ...[1, 2, 3, 4, 5].map((v) => ['setValue', 'a-key-created', v])]);
      expect((await samples('a-key-created'))!.map((s) => s[0])).toEqual([5, 4, 3]);
      expect((await d!.command('statistic-reset', { name: 'a-state' })).result).toBe(0);
      expect((await samples('a-state'))!.map((s) => s[0])).toEqual(['']);
      expect((await d!.command('statistic-reset-all')).result).toBe(0);
      expect(await value('a-key-created')).toBe(0);
      expect(await value('a-uptime')).toBe('00:00:00.000000');
      expect(await value('a-ratio')).toBe(0);
      // The library's own reset and del.
      await ops('a-', [['setValue', 'a-key-created', 9], ['reset', 'a-ratio'], ['del', 'a-new-never'], ['del', 'server[1].a-tkey-sent']]);
      expect(await value('a-key-created')).toBe(9);
      expect(await samples('server[1].a-tkey-sent')).toBeUndefined();
    });

    it('cannot change the daemon\'s statistics or another library\'s', async () => {
      await ops('a-', [
        ['setValue', 'ncr-received', 99],
        ['addValue', 'update-sent', 1],
        ['setValue', 'key[foo.example.].update-sent', 5],
        ['setValue', 'd2box.ncr-completed', 5],
        ['reset', 'ncr-received'],
        ['del', 'update-sent'],
        ['setValue', 'b-key-created', 42],
        ['del', 'b-state'],
        ['setValue', 'a-after-refusals', 1],
      ]);
      expect(await value('a-after-refusals')).toBe(1);
      expect((await samples('ncr-received'))).toHaveLength(1);
      expect(await value('ncr-received')).toBe(0);
      expect(await value('update-sent')).toBe(0);
      expect(await samples('key[foo.example.].update-sent')).toBeUndefined();
      expect(await value('d2box.ncr-completed')).toBe(0);
      expect(await value('b-key-created')).toBe(0);
      expect(await value('b-state')).toBe('starting');
      await d!.waitLog(/HOOKS_STATISTIC_REFUSED .*statistic b-key-created belongs to another hook library/);
      await d!.waitLog(/HOOKS_STATISTIC_REFUSED .*statistic ncr-received belongs to the server/);
    });

    it('keeps them through a restart of the library\'s worker, and removes them when the library is unloaded', async () => {
      await ops('a-', [['setValue', 'a-counter', 11]]);
      const died = await d!.command('a-die');
      expect(died.result).not.toBe(0);
      // Bounded wait for the replacement worker (a sandboxed process takes longer to start).
      let ready = false;
      for (let i = 0; i < 400 && !ready; i++) {
        const libs = (await d!.command('hooks-status')).arguments.libraries as { library: string; state: string; restarts: number }[];
        ready = libs.find((l) => l.library === LIB_A)?.restarts === 1 && libs.every((l) => l.state === 'ready');
        if (!ready) await sleep(25);
      }
      expect(ready).toBe(true);
      expect(await value('a-counter')).toBe(11);
      // Its new worker made its load-time statistics again, as a fresh sample.
      expect(await value('a-key-created')).toBe(0);
      expect((await ops('a-', [['addValue', 'a-counter', 1]]))[0]).toBeNull();
      expect(await value('a-counter')).toBe(12);

      const without = await config(isolation, false);
      (without.DhcpDdns as Record<string, unknown>)['control-socket'] = { 'socket-type': 'unix', 'socket-name': d!.socketPath };
      (without.DhcpDdns as Record<string, unknown>).port = (await d!.command('config-get')).arguments.DhcpDdns.port;
      expect((await d!.command('config-set', without)).result).toBe(0);
      const all = (await d!.command('statistic-get-all')).arguments as Record<string, Sample[]>;
      expect(Object.keys(all).filter((k) => /(^|\.)[ab]-/.test(k))).toEqual([]);
      expect(all['ncr-received']).toBeDefined();
    });
  });
}

describe('a statistics message from a library is checked as untrusted', () => {
  // The host's own schema, as it parses every message a library sends.
  it('refuses values of the wrong type, over-long names and strings, and too many updates at once', async () => {
    const { WorkerMessageSchema } = await import('../src/hooks/protocol-schemas.js');
    const { LIBRARY_STATS_LIMITS } = await import('../src/hooks/protocol.js');
    const ok = { t: 'stats', updates: [{ op: 'set', name: 'x', type: 'integer', value: 1 }, { op: 'add', name: 'y', type: 'string', value: 'z' }, { op: 'max-sample-count', name: 'x', count: 5 }] };
    expect(WorkerMessageSchema.safeParse(ok).success).toBe(true);
    const bad: unknown[] = [
      { op: 'set', name: 'x', type: 'integer', value: 'one' },
      { op: 'set', name: 'x', type: 'string', value: 1 },
      { op: 'set', name: 'x', type: 'integer', value: 1.5 },
      { op: 'set', name: 'x', type: 'float', value: Infinity },
      { op: 'set', name: 'x'.repeat(LIBRARY_STATS_LIMITS.nameChars + 1), type: 'integer', value: 1 },
      { op: 'set', name: 'x', type: 'string', value: 'v'.repeat(LIBRARY_STATS_LIMITS.stringChars + 1) },
      { op: 'set', name: '', type: 'integer', value: 1 },
      { op: 'max-sample-count', name: 'x', count: LIBRARY_STATS_LIMITS.samples + 1 },
      { op: 'remove', name: 'x', extra: true },
      { op: 'rename', name: 'x' },
    ];
    for (const update of bad) expect(WorkerMessageSchema.safeParse({ t: 'stats', updates: [update] }).success, JSON.stringify(update).slice(0, 80)).toBe(false);
    const many = Array.from({ length: LIBRARY_STATS_LIMITS.updatesPerMessage + 1 }, () => ok.updates[0]);
    expect(WorkerMessageSchema.safeParse({ t: 'stats', updates: many }).success).toBe(false);
  });
});
