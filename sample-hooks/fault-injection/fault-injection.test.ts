// Through d2box's public entry points only (d2box/host), as a test of your own library would be.
import { HooksManager, NextStep, type ChainReport, type HookLibraryConfigInput } from 'd2box/host';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { drawFault, faultTable, planFaults, type Fault } from './plan.js';

const LIBRARY = 'dist/sample-hooks/fault-injection/index.js';
const KEY = { name: 'fi.key.', algorithm: 'HMAC-SHA256', secret: 'ZmF1bHQta2V5' };

// Bounded polling for what happens after a callout (a flush, a replacement worker): generous, the machine may be shared.
const WAIT = { timeout: 15_000, interval: 10 };

let hooks: HooksManager | undefined;
afterEach(async () => {
  await hooks?.unloadLibraries();
  expect(hooks?.io.pending() ?? 0).toBe(0);
  hooks = undefined;
});

async function load(parameters: Record<string, unknown>, sandbox: HookLibraryConfigInput['sandbox'] = {}): Promise<HooksManager> {
  hooks = new HooksManager({ baseDir: process.cwd() });
  await hooks.loadLibraries([{ library: LIBRARY, parameters: { key: KEY, ...parameters }, sandbox: { 'callout-timeout-ms': 2000, ...sandbox } }]);
  return hooks;
}

async function selectKey(h: HooksManager, seq?: number): Promise<{ report: ChainReport; status: number; key: unknown }> {
  const handle = await h.createCalloutHandle();
  handle.setArgument('current_server', { 'ip-address': '192.0.2.1', port: 53 }).setArgument('tsig_key', null);
  if (seq !== undefined) handle.setArgument('loadtest_seq', seq);
  const report = await h.callCallouts('select_key', handle);
  const result = { report, status: handle.getStatus(), key: handle.getArgument('tsig_key') };
  await handle.destroy();
  return result;
}

const stats = (h: HooksManager) => h.getLibraryStatistics()[0]!;

describe('sample fault-injection: each fault at rate 1', () => {
  // fault → the failure kind the host reports for the callout (undefined: the callout succeeds).
  const expected: [Fault, string | undefined, HookLibraryConfigInput['sandbox']][] = [
    ['throw', 'throw', {}],
    ['reject', 'reject', {}],
    ['hang', 'timeout', { 'callout-timeout-ms': 1000 }],
    ['oom', 'oom', { 'max-heap-mb': 32, 'callout-timeout-ms': 20_000 }],
    ['exit', 'exit', {}],
    ['invalid-argument', 'invalid-argument', {}],
    ['log-flood', 'log-flood', { 'log-lines-per-second': 100 }],
  ];
  for (const [fault, kind, sandbox] of expected) {
    it(`${fault}: the callout fails as "${kind}", DROP, and the library serves again`, async () => {
      // The first callout behaves, the second misbehaves (after: 1), the third is numbered 1 again.
      const h = await load({ fault, after: 1, 'spin-ms': 10_000 }, sandbox);
      expect((await selectKey(h, 1)).report.failures).toEqual([]);
      const bad = await selectKey(h, 2);
      expect(bad.report.failures.map((f) => f.failure.kind)).toEqual([kind]);
      expect(bad.status).toBe(NextStep.DROP);
      expect(bad.report.failures[0]!.failure.message).toMatch(kind === 'throw' || kind === 'reject' ? new RegExp(`fault-injection: ${fault} \\(callout 2\\)`) : /./);
      expect(stats(h).failures[kind as 'throw']).toBe(1);
      const restarts = ['timeout', 'oom', 'exit'].includes(kind!) ? 1 : 0;
      expect(stats(h).restarts).toBe(restarts);
      const after = await selectKey(h, 1);
      expect(after.report.failures).toEqual([]);
      expect(after.key).toEqual(KEY);
    });
  }

  it('non-zero: no failure, counted as a non-zero return, the key still set', async () => {
    const h = await load({ fault: 'non-zero' });
    const r = await selectKey(h, 5);
    expect(r.report.failures).toEqual([]);
    expect(r.key).toEqual(KEY);
    expect(stats(h).nonZeroReturns).toBe(1);
  });

  it('slow: the callout succeeds after slow-ms', async () => {
    const h = await load({ fault: 'slow', 'slow-ms': 30 });
    const r = await selectKey(h, 5);
    expect(r.report.failures).toEqual([]);
    expect(r.key).toEqual(KEY);
    expect(stats(h).latencyUs.max).toBeGreaterThanOrEqual(30_000);
  });

  it('timer-throw: the callout succeeds; the timer crashes the worker, which is replaced', async () => {
    const h = await load({ fault: 'timer-throw', after: 1 });
    const r = await selectKey(h, 2);
    expect(r.report.failures).toEqual([]);
    await vi.waitFor(() => expect(stats(h).failures.crash === 1 && stats(h).state === 'ready', 'the crash and the replacement').toBe(true), WAIT);
    expect(stats(h).restarts).toBe(1);
    expect(stats(h).lastFailure?.message).toContain('fault-injection: thrown from a timer (callout 2)');
    expect((await selectKey(h, 1)).report.failures).toEqual([]);
  });

  it('misbehaves on other hook points and commands too', async () => {
    const h = await load({ fault: 'invalid-argument', hooks: ['d2_srv_configured'], commands: ['fault-ping'] });
    const configured = await h.configured({ DhcpDdns: {} }, {});
    expect(configured.accepted).toBe(false);
    expect(configured).toMatchObject({ error: expect.stringMatching(/invalid-argument.*error/) });
    expect(h.getCommandNames()).toEqual(['fault-ping']);
    const response = await h.callCommandHandlers('fault-ping');
    expect(response.result).toBe(1);
    expect(response.text).toMatch(/invalid-argument.*response/);
  });
});

describe('sample fault-injection: rates and determinism', () => {
  const rates = { throw: 0.2, reject: 0.1, 'non-zero': 0.1, 'invalid-argument': 0.1 } as const;
  const kindOf = (f: Fault | 'ok') => (f === 'ok' || f === 'non-zero' ? undefined : f);

  it('numbered callouts (loadtest_seq) draw exactly the planned fault, in any order', async () => {
    const h = await load({ faults: rates, seed: 7 }, { 'on-failure': 'continue' });
    const table = faultTable(rates);
    const order = Array.from({ length: 150 }, (_, i) => 150 - i); // backwards
    const seen = new Map<number, string | undefined>();
    for (const n of order) seen.set(n, (await selectKey(h, n)).report.failures[0]?.failure.kind);
    for (let n = 1; n <= 150; n++) expect(seen.get(n), `callout ${n}`).toBe(kindOf(drawFault(7, 0, n, table)));
    const plan = planFaults(7, rates, 150);
    expect(stats(h).failures).toMatchObject({ throw: plan.throw, reject: plan.reject, 'invalid-argument': plan['invalid-argument'] });
    expect(stats(h).nonZeroReturns).toBe(plan['non-zero']);
    // The dice are fair enough to be useful: each fault appeared.
    for (const f of Object.keys(rates) as Fault[]) expect(plan[f]).toBeGreaterThan(0);
  });

  it("unnumbered callouts draw from the worker's own stream, at the configured rates", async () => {
    const h = await load({ faults: rates, seed: 3 });
    const kinds: (string | undefined)[] = [];
    for (let i = 0; i < 60; i++) kinds.push((await selectKey(h)).report.failures[0]?.failure.kind);
    // Some of each kind, and not all alike: the worker's stream is drawn, not fixed.
    expect(new Set(kinds).size).toBeGreaterThan(2);
    expect(kinds.filter((k) => k !== undefined).length + stats(h).nonZeroReturns).toBeGreaterThan(10);
  });

  it('refuses malformed parameters at load, naming the library', async () => {
    hooks = new HooksManager({ baseDir: process.cwd() });
    await expect(hooks.loadLibraries([{ library: LIBRARY, parameters: { faults: { explode: 1 } } }])).rejects.toThrow(/fault-injection.*unknown fault "explode"/s);
    await expect(hooks.loadLibraries([{ library: LIBRARY, parameters: { faults: { throw: 0.7, exit: 0.5 } } }])).rejects.toThrow(/add up to 1\.2/);
    await expect(hooks.loadLibraries([{ library: LIBRARY, parameters: { fault: 'throw', seed: -1 } }])).rejects.toThrow(/"seed" must be a non-negative integer/);
  });
});
