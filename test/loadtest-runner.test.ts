/**
 * The isolation load tester (src/loadtest/): brief runs on the fault-injection
 * sample, checking that the figures add up: every callout issued ends in one
 * outcome, the outcomes come at the configured rates (within a binomial bound,
 * test/support/binomial.ts, computed from the rates alone and not from the
 * sample's dice), a seed gives the same outcomes every run, the outcomes match
 * the library's own statistics, and the restarts counted from the host's log
 * match the restarts in the statistics.
 */
import { describe, expect, it } from 'vitest';
import { ServerHooks } from '../src/hooks/server-hooks.js';
import { CalloutHandle } from '../src/hooks/callout-handle.js';
import { IOService } from '../src/hooks/io-service.js';
import { argumentFiller } from '../src/loadtest/arguments.js';
import { faultInjectionLibrary, parseLoadtestArgs } from '../src/loadtest/index.js';
import { formatReport, progressLine } from '../src/loadtest/report.js';
import { OUTCOMES, runLoadtest, type LoadtestOptions, type LoadtestProgress, type LoadtestReport } from '../src/loadtest/runner.js';
import { binomialBounds, expectBinomial } from './support/binomial.js';

const FAULTS = faultInjectionLibrary();

function faulty(parameters: Record<string, unknown>, sandbox: Record<string, unknown> = {}): LoadtestOptions['libraries'][number] {
  return { library: FAULTS, parameters, sandbox: { 'callout-timeout-ms': 2000, ...sandbox } };
}

function run(options: Partial<LoadtestOptions> & Pick<LoadtestOptions, 'libraries'>): Promise<LoadtestReport> {
  return runLoadtest({ hook: 'select_key', concurrency: 8, seed: 1, ...options });
}

const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);

/** What every report must satisfy, whatever the library did. `configured`: the library has a d2_srv_configured callout. */
function expectConsistent(r: LoadtestReport, configured = false): void {
  expect(Object.keys(r.outcomes).sort()).toEqual([...OUTCOMES].sort());
  expect(sum(r.outcomes)).toBe(r.callouts);
  // The host counted a call per library per callout issued, and d2_srv_configured before the run.
  for (const s of r.libraryStatistics) expect(s.calls, s.library).toBe(r.callouts + (configured ? 1 + s.restarts : 0));
  // Restarts seen in the host's log are the restarts in the statistics.
  expect(r.restarts).toBe(r.libraryStatistics.reduce((n, s) => n + s.restarts, 0));
  const l = r.latencyMs;
  if (r.callouts > 0) {
    expect(l.p50).toBeGreaterThan(0);
    expect(l.p50).toBeLessThanOrEqual(l.p90);
    expect(l.p90).toBeLessThanOrEqual(l.p99);
    expect(l.p99).toBeLessThanOrEqual(l.max);
    expect(r.calloutsPerSecond).toBeGreaterThan(0);
  }
  expect(r.eventLoopDelayMs.p50).toBeGreaterThanOrEqual(0);
  expect(r.eventLoopDelayMs.p99).toBeGreaterThanOrEqual(r.eventLoopDelayMs.p50);
  expect(r.memoryMb.rss).toBeGreaterThan(0);
  expect(r.memoryMb.peakRss).toBeGreaterThanOrEqual(r.memoryMb.rss);
  expect(r.memoryMb.heapUsed).toBeGreaterThan(0);
}

describe('loadtest on the fault-injection sample', () => {
  it('non-fatal faults: the outcomes come at the configured rates, the same for the same seed, and the statistics agree', async () => {
    const rates = { throw: 0.1, reject: 0.05, 'non-zero': 0.05, 'invalid-argument': 0.05 };
    const N = 600;
    const once = () => run({ libraries: [faulty({ faults: rates, seed: 5 })], count: N, seed: 5 });
    const r = await once();
    expectConsistent(r);
    expect(r.callouts).toBe(N);
    expect(r.stoppedBy).toBe('count');
    expectBinomial('throw', r.outcomes.throw, N, rates.throw);
    expectBinomial('reject', r.outcomes.reject, N, rates.reject);
    expectBinomial('invalid-argument', r.outcomes.invalid, N, rates['invalid-argument']);
    expectBinomial('non-zero', r.nonZeroReturns, N, rates['non-zero']);
    // A non-zero return is only counted: those callouts end "ok".
    expectBinomial('ok', r.outcomes.ok - r.nonZeroReturns, N, 1 - 0.25);
    expect(r.outcomes).toMatchObject({ timeout: 0, exit: 0, quarantined: 0 });
    const s = r.libraryStatistics[0]!;
    expect(s.failures).toMatchObject({ throw: r.outcomes.throw, reject: r.outcomes.reject, 'invalid-argument': r.outcomes.invalid });
    expect(s.nonZeroReturns).toBe(r.nonZeroReturns);
    expect(r.restarts).toBe(0);
    expect(formatReport(r)).toMatch(new RegExp(`outcome throw\\s+${r.outcomes.throw} `));
    // The seed decides each numbered callout's fault, whatever the concurrency did to the order.
    const again = await once();
    expect({ outcomes: again.outcomes, nonZeroReturns: again.nonZeroReturns }).toEqual({ outcomes: r.outcomes, nonZeroReturns: r.nonZeroReturns });
  });

  it('process.exit in callouts: every callout in flight on a dying worker is counted once; restarts match the statistics', async () => {
    const r = await run({ libraries: [faulty({ faults: { exit: 0.02 }, seed: 9 }, { 'max-restarts': 1000 })], count: 400, concurrency: 4, seed: 9 });
    expectConsistent(r);
    expect(r.outcomes.exit).toBeGreaterThan(0);
    expect(r.outcomes.exit).toBe(r.libraryStatistics[0]!.failures.exit);
    expect(r.outcomes.ok + r.outcomes.exit).toBe(400);
    // Each death is one restart; one death fails every callout in flight on that worker.
    expect(r.restarts).toBeGreaterThan(0);
    expect(r.restarts).toBeLessThanOrEqual(r.outcomes.exit);
    // No more deaths than exits drawn at 2%: a callout in flight on a dying worker never draws its own.
    expect(r.restarts).toBeLessThanOrEqual(binomialBounds(400, 0.02).high);
    expect(r.quarantines).toBe(0);
  });

  it('hangs: timed out and counted, workers replaced', async () => {
    const r = await run({
      // A 1 s deadline: a busy machine never makes a callout that behaves miss it.
      libraries: [faulty({ faults: { hang: 0.05 }, seed: 2, 'spin-ms': 20_000, 'multi-threading': false }, { 'callout-timeout-ms': 1000 })],
      count: 60,
      concurrency: 4,
      seed: 2,
    });
    expectConsistent(r);
    // One at a time (not MT-compatible): only the hanging callout itself times out, and each
    // timeout is one replaced worker; as many as hangs come at 5% (within the binomial bound).
    expect(r.outcomes.timeout).toBeGreaterThan(0);
    expect(r.outcomes.timeout).toBeLessThanOrEqual(binomialBounds(60, 0.05).high);
    expect(r.outcomes.ok + r.outcomes.timeout).toBe(60);
    expect(r.restarts).toBe(r.outcomes.timeout);
    expect(r.libraryStatistics[0]!.timeouts).toBe(r.outcomes.timeout);
  });

  it('out of restarts: quarantined, the rest counted as "quarantined"; --revive brings it back', async () => {
    const lib = faulty({ faults: { exit: 0.3 }, seed: 4 }, { 'max-restarts': 2 });
    const r = await run({ libraries: [lib], count: 200, concurrency: 2, seed: 4 });
    expectConsistent(r);
    expect(r.quarantines).toBe(1);
    expect(r.restarts).toBe(2);
    expect(r.libraryStatistics[0]!.state).toBe('quarantined');
    expect(r.outcomes.quarantined).toBeGreaterThan(0);
    expect(r.outcomes.quarantined).toBe(r.libraryStatistics[0]!.failures.quarantined);
    expect(r.revives).toBe(0);

    const revived = await run({ libraries: [faulty({ faults: { exit: 0.3 }, seed: 4 }, { 'max-restarts': 1 })], count: 40, concurrency: 2, seed: 4, revive: true });
    expectConsistent(revived);
    expect(revived.revives).toBeGreaterThan(0);
    expect(revived.quarantines).toBeGreaterThanOrEqual(revived.revives);
    // Revived, it served again: more callouts ran in a worker than one restart allows before quarantine.
    expect(revived.libraryStatistics[0]!.failures.exit).toBeGreaterThan(2);
  });

  it('a duration bound, a progress callback, and a stop signal', async () => {
    const progress: LoadtestProgress[] = [];
    const r = await run({ libraries: [faulty({})], durationS: 0.5, progressIntervalMs: 50, onProgress: (p) => progress.push(p) });
    expectConsistent(r);
    expect(r.stoppedBy).toBe('duration');
    expect(r.callouts).toBeGreaterThan(0);
    expect(r.outcomes.ok).toBe(r.callouts);
    for (const p of progress) expect(p.callouts).toBeLessThanOrEqual(r.callouts);
    if (progress.length > 0) expect(progressLine(progress.at(-1)!)).toMatch(/^loadtest [\d.]+ s {2}\d+ callouts {2}\d+\/s {2}errors 0 {2}restarts 0/);

    const abort = new AbortController();
    const stopped = await run({ libraries: [faulty({ fault: 'slow', 'slow-ms': 5 })], durationS: 60, signal: abort.signal, progressIntervalMs: 20, onProgress: (p) => p.callouts > 20 && abort.abort() });
    expectConsistent(stopped);
    expect(stopped.stoppedBy).toBe('signal');
    expect(stopped.callouts).toBeGreaterThan(20);
  });

  it('drives every D2 hook point and command callouts with arguments their schemas accept', async () => {
    // Callouts numbered 1..50 with one seed draw the same faults on every hook point.
    const throws = new Set<number>();
    for (const hook of ['select_key', 'd2_srv_configured', 'command_processed', 'context_create', 'context_destroy', '$fault_ping']) {
      const parameters = hook.startsWith('$') ? { hooks: [], commands: ['fault-ping'] } : { hooks: [hook] };
      const r = await run({ hook, libraries: [faulty({ ...parameters, faults: { throw: 0.2 }, seed: 3 })], count: 50, seed: 3 });
      // The configuration before the run makes a handle too: context_create and context_destroy run for it.
      expectConsistent(r, ['d2_srv_configured', 'context_create', 'context_destroy'].includes(hook));
      expectBinomial(`throw on ${hook}`, r.outcomes.throw, 50, 0.2);
      throws.add(r.outcomes.throw);
      // Nothing else failed: the generated arguments were all acceptable.
      expect(r.outcomes.ok + r.outcomes.throw, hook).toBe(50);
    }
    expect(throws.size).toBe(1);
  });

  it('generated arguments pass the hook points\' schemas and carry loadtest_seq', () => {
    const hooks = new ServerHooks();
    const io = new IOService();
    for (const name of ['select_key', 'd2_srv_configured', 'command_processed', 'context_destroy', '$x_y']) {
      const point = hooks.get(name);
      const fill = argumentFiller(name, 11, io);
      const seenKeys = new Set<string>();
      for (let seq = 1; seq <= 100; seq++) {
        const handle = new CalloutHandle();
        fill(handle, seq);
        expect(handle.getArgument('loadtest_seq')).toBe(seq);
        for (const [arg, spec] of Object.entries(point.arguments)) {
          if (name.startsWith('$') && arg === 'response') continue; // the command handler's to set
          expect(handle.hasArgument(arg), `${name}.${arg}`).toBe(true);
          if (spec.transport === 'value') expect(spec.schema.safeParse(handle.getArgument(arg)).success, `${name}.${arg}`).toBe(true);
        }
        if (name === 'select_key') seenKeys.add(JSON.stringify(handle.getArgument('tsig_key')));
      }
      // Varied, not one fixed value.
      if (name === 'select_key') expect(seenKeys.size).toBeGreaterThan(3);
    }
    expect(() => argumentFiller('no_such_hook', 1, io)).toThrow(/no such hook point: 'no_such_hook'/);
  });

  it('refuses what it cannot run: no callout on the hook, an unknown hook, no bound', async () => {
    await expect(run({ hook: 'd2_srv_configured', libraries: [faulty({})], count: 5 })).rejects.toThrow(/no library registers a callout on d2_srv_configured/);
    await expect(run({ hook: 'nope', libraries: [faulty({ hooks: ['select_key'] })], count: 5 })).rejects.toThrow(/no library registers a callout on nope/);
    await expect(run({ libraries: [faulty({})] })).rejects.toThrow(/duration, a count, or both/);
    await expect(run({ libraries: [faulty({ faults: { nope: 1 } })], count: 1 })).rejects.toThrow(/cannot load the libraries: .*unknown fault "nope"/);
  });
});

describe('loadtest command line', () => {
  it('builds the library chain: fault-injection alone, or after the library under test', () => {
    const alone = parseLoadtestArgs(['--faults', 'throw=0.1,exit=0.01', '--seed', '4', '--count', '10']);
    expect('options' in alone && alone.options).toMatchObject({
      hook: 'select_key',
      count: 10,
      seed: 4,
      concurrency: 16,
      libraries: [{ library: FAULTS, parameters: { hooks: ['select_key'], faults: { throw: 0.1, exit: 0.01 }, seed: 4 } }],
    });
    expect('options' in alone && alone.options.durationS).toBeUndefined();
    const chain = parseLoadtestArgs(['--library', 'x.js', '--parameters', '{"a":1}', '--sandbox', '{"max-restarts":9}', '--command', 'my-cmd', '--faults', '{"reject":0.5}']);
    expect('options' in chain && chain.options).toMatchObject({
      hook: '$my_cmd',
      durationS: 10,
      libraries: [
        { library: 'x.js', parameters: { a: 1 }, sandbox: { 'max-restarts': 9 } },
        { library: FAULTS, parameters: { hooks: [], commands: ['my-cmd'], faults: { reject: 0.5 } }, sandbox: { 'max-restarts': 9 } },
      ],
    });
    expect(() => parseLoadtestArgs(['--count', 'many'])).toThrow(/--count: "many" is not an integer/);
    expect(() => parseLoadtestArgs(['--faults', 'throw'])).toThrow(/"throw" is not fault=rate/);
    expect(() => parseLoadtestArgs(['--bogus'])).toThrow(/bogus/);
    expect(parseLoadtestArgs(['-h'])).toEqual({ help: true });
  });
});
