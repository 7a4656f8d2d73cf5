// Through d2box's public entry points only (d2box/host), as a test of your own library would be.
import { HooksManager, NextStep, type ChainReport, type HookLibraryConfigInput } from 'd2box/host';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Fault } from './plan.js';
import { expectBinomial } from '../../test/support/binomial.js';

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
  // fault → the failure kind the host reports for the callout, and what its message must say:
  // each names the fault as the host saw it, with the figures this test configured.
  const expected: [Fault, string, RegExp, Record<string, unknown>, HookLibraryConfigInput['sandbox']][] = [
    ['throw', 'throw', /^fault-injection: throw \(callout 2\)$/, {}, {}],
    ['reject', 'reject', /^fault-injection: reject \(callout 2\)$/, {}, {}],
    ['hang', 'timeout', /^callout on select_key did not finish within 1000 ms$/, {}, { 'callout-timeout-ms': 1000 }],
    ['oom', 'oom', /^worker ran out of memory: .*heap out of memory/, {}, { 'max-heap-mb': 32, 'callout-timeout-ms': 20_000 }],
    ['exit', 'exit', /^library exited its worker: worker exited with code: 7$/, { 'exit-code': 7 }, {}],
    ['invalid-argument', 'invalid-argument', /set argument 'tsig_key'\.algorithm to a value the hook point does not accept: .*"HMAC-SHA256"/, {}, {}],
    // 1000 lines at once against 100 a second: at most 100 (200 if the flood straddles a second) get through.
    ['log-flood', 'log-flood', /^dropped (9\d\d|8\d\d) log lines over the limit of 100\/s$/, { 'log-lines': 1000 }, { 'log-lines-per-second': 100 }],
  ];
  for (const [fault, kind, message, parameters, sandbox] of expected) {
    it(`${fault}: the callout fails as "${kind}", DROP, and the library serves again`, async () => {
      // The first callout behaves, the second misbehaves (after: 1), the third is numbered 1 again.
      const h = await load({ fault, after: 1, 'spin-ms': 10_000, ...parameters }, sandbox);
      expect((await selectKey(h, 1)).report.failures).toEqual([]);
      const bad = await selectKey(h, 2);
      expect(bad.report.failures.map((f) => f.failure.kind)).toEqual([kind]);
      expect(bad.status).toBe(NextStep.DROP);
      expect(bad.report.failures[0]!.failure.message).toMatch(message);
      expect(stats(h).failures[kind as 'throw']).toBe(1);
      const restarts = ['timeout', 'oom', 'exit'].includes(kind) ? 1 : 0;
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

  // The expectations come from the rates alone (test/support/binomial.ts), not from
  // plan.ts, the dice under test: each kind's count over N callouts must fall within
  // N·rate ± 5σ. The seeds are fixed, so a pass is repeatable; a library drawing at other
  // rates, or ignoring them, falls outside.
  const N = 600;
  // 600 callouts run in a second or two, and the library logs a line for each fault: past the
  // default 200 lines/s a callout would also come back as 'log-flood', which is not what is counted here.
  const RATE_POLICY = { 'on-failure': 'continue', 'log-lines-per-second': 100_000 } as const;
  const okRate = 1 - Object.values(rates).reduce((a, b) => a + b, 0);

  /** Each callout's outcome, as the host reported it: a failure kind, 'non-zero' (counted by the host), or 'ok'. */
  async function outcomes(h: HooksManager, numbers: (number | undefined)[]): Promise<Map<number, string>> {
    const seen = new Map<number, string>();
    for (const [i, n] of numbers.entries()) {
      const nonZeroBefore = stats(h).nonZeroReturns;
      const failure = (await selectKey(h, n)).report.failures[0]?.failure.kind;
      seen.set(n ?? i + 1, failure ?? (stats(h).nonZeroReturns > nonZeroBefore ? 'non-zero' : 'ok'));
    }
    return seen;
  }
  const count = (seen: Map<number, string>, kind: string) => [...seen.values()].filter((k) => k === kind).length;

  function expectRates(seen: Map<number, string>, h: HooksManager): void {
    for (const [fault, rate] of Object.entries(rates)) expectBinomial(fault, count(seen, fault), seen.size, rate);
    expectBinomial('ok', count(seen, 'ok'), seen.size, okRate);
    // The library's statistics on the host say the same as the callouts' outcomes.
    expect(stats(h).failures).toMatchObject({ throw: count(seen, 'throw'), reject: count(seen, 'reject'), 'invalid-argument': count(seen, 'invalid-argument') });
    expect(stats(h).nonZeroReturns).toBe(count(seen, 'non-zero'));
  }

  it('numbered callouts (loadtest_seq) draw at the configured rates, and callout n draws the same fault in any order, in any worker', async () => {
    const backwards = Array.from({ length: N }, (_, i) => N - i);
    const first = await load({ faults: rates, seed: 7 }, RATE_POLICY);
    const seenBackwards = await outcomes(first, backwards);
    expectRates(seenBackwards, first);
    await first.unloadLibraries();
    // Another worker with the same seed, callouts in the other order: fault for fault the same.
    const second = await load({ faults: rates, seed: 7 }, RATE_POLICY);
    const seenForwards = await outcomes(second, [...backwards].reverse());
    expect([...seenForwards].sort(([a], [b]) => a - b)).toEqual([...seenBackwards].sort(([a], [b]) => a - b));
    // Another seed draws another sequence.
    await second.unloadLibraries();
    const reseeded = await load({ faults: rates, seed: 8 }, RATE_POLICY);
    const seenReseeded = await outcomes(reseeded, [...backwards].reverse());
    expect([...seenReseeded.values()]).not.toEqual([...seenForwards.values()]);
  });

  it("unnumbered callouts draw from the worker's own stream, at the configured rates", async () => {
    const h = await load({ faults: rates, seed: 3 }, RATE_POLICY);
    expectRates(await outcomes(h, Array.from({ length: N }, () => undefined)), h);
  });

  it('refuses malformed parameters at load, naming the library', async () => {
    hooks = new HooksManager({ baseDir: process.cwd() });
    await expect(hooks.loadLibraries([{ library: LIBRARY, parameters: { faults: { explode: 1 } } }])).rejects.toThrow(/fault-injection.*unknown fault "explode"/s);
    await expect(hooks.loadLibraries([{ library: LIBRARY, parameters: { faults: { throw: 0.7, exit: 0.5 } } }])).rejects.toThrow(/add up to 1\.2/);
    await expect(hooks.loadLibraries([{ library: LIBRARY, parameters: { fault: 'throw', seed: -1 } }])).rejects.toThrow(/"seed" must be a non-negative integer/);
  });
});
