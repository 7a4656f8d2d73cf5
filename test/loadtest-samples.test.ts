/**
 * The load tester on the sample libraries, each on the hook point it serves:
 * brief runs whose figures must add up (every callout accounted for, once per
 * library in the chain), and whose side effects agree with them.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { faultInjectionLibrary } from '../src/loadtest/index.js';
import { formatReport } from '../src/loadtest/report.js';
import { runLoadtest, type LoadtestReport } from '../src/loadtest/runner.js';
import { planFaults } from '../sample-hooks/fault-injection/plan.js';

const SELECT_KEY_POLICY = 'dist/sample-hooks/select-key-policy/index.js';
const AUDIT_LOG = 'dist/sample-hooks/audit-log/index.js';
const DDNS_COMMANDS = 'dist/sample-hooks/ddns-commands/index.js';
const KEY_A = { name: 'key-a', algorithm: 'HMAC-SHA256', secret: 'Zmlyc3Qga2V5' };

const dir = mkdtempSync(join(tmpdir(), 'd2box-loadtest-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);

/** Every sample here but fault-injection has a d2_srv_configured callout. */
const configuredBeforeTheRun = (library: string) => library !== faultInjectionLibrary();

function expectAccounted(r: LoadtestReport, count: number): void {
  expect(r.callouts).toBe(count);
  expect(sum(r.outcomes)).toBe(count);
  // One call per callout, and d2_srv_configured before the run (again after each worker replacement).
  for (const s of r.libraryStatistics) expect(s.calls, s.library).toBe(count + (configuredBeforeTheRun(s.library) ? 1 + s.restarts : 0));
  expect(r.restarts).toBe(r.libraryStatistics.reduce((n, s) => n + s.restarts, 0));
}

describe('loadtest on the samples', () => {
  it('select-key-policy on select_key: every callout sets a key, no failures', async () => {
    const r = await runLoadtest({
      libraries: [{ library: SELECT_KEY_POLICY, parameters: { default: 'key-a', keys: [KEY_A] } }],
      hook: 'select_key',
      concurrency: 16,
      count: 500,
      seed: 1,
    });
    expectAccounted(r, 500);
    expect(r.outcomes.ok).toBe(500);
    expect(r.nonZeroReturns).toBe(0);
    expect(r.restarts).toBe(0);
  });

  it('select-key-policy with a fault-injection neighbour: both libraries see every callout; the neighbour\'s faults are the outcomes', async () => {
    const rates = { throw: 0.1, 'invalid-argument': 0.05 };
    const r = await runLoadtest({
      libraries: [
        { library: SELECT_KEY_POLICY, parameters: { default: 'key-a', keys: [KEY_A] } },
        { library: faultInjectionLibrary(), parameters: { faults: rates, seed: 8 } },
      ],
      hook: 'select_key',
      concurrency: 8,
      count: 400,
      seed: 8,
    });
    expectAccounted(r, 400);
    const plan = planFaults(8, rates, 400);
    expect(r.outcomes).toMatchObject({ throw: plan.throw, invalid: plan['invalid-argument'], ok: plan.ok });
    expect(r.libraryStatistics.map((s) => s.library)).toEqual([SELECT_KEY_POLICY, faultInjectionLibrary()]);
    expect(sum(r.libraryStatistics[0]!.failures)).toBe(0);
  });

  it('audit-log on d2_srv_configured: one audit record per callout, flushed by its IOService timer and on unload', async () => {
    const file = join(dir, 'audit.jsonl');
    const r = await runLoadtest({
      libraries: [{ library: AUDIT_LOG, parameters: { file, 'flush-interval-ms': 50 } }],
      hook: 'd2_srv_configured',
      concurrency: 4,
      count: 200,
      seed: 2,
    });
    expectAccounted(r, 200);
    expect(r.outcomes.ok).toBe(200);
    const records = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { event: string; sha256?: string });
    const configured = records.filter((x) => x.event === 'configured');
    expect(configured).toHaveLength(201); // the run's, and the one before it
    // The load tester hands the same configuration every time, the one before the run included.
    expect(new Set(configured.map((x) => x.sha256)).size).toBe(1);
    expect(records.at(-1)!.event).toBe('unload');
  });

  it('ddns-commands on its command callout: every command answered', async () => {
    const r = await runLoadtest({
      libraries: [{ library: DDNS_COMMANDS, parameters: {} }],
      hook: '$ddns_counters_get',
      concurrency: 8,
      count: 300,
      seed: 3,
    });
    expectAccounted(r, 300);
    expect(r.outcomes.ok).toBe(300);
    const table = formatReport(r);
    for (const label of ['callouts', 'callouts/s', 'latency ms p50', 'latency ms p90', 'latency ms p99', 'latency ms max', 'outcome ok', 'outcome throw', 'outcome reject',
      'outcome timeout', 'outcome oom', 'outcome exit', 'outcome crash', 'outcome invalid', 'outcome log-flood', 'outcome quarantined', 'worker restarts',
      'event-loop delay ms p50', 'event-loop delay ms p99', 'host rss MB', 'host heap used MB']) {
      expect(table).toMatch(new RegExp(`^  ${label.replace(/[/.]/g, '\\$&')} +\\S`, 'm'));
    }
    expect(table).toMatch(/^ {2}outcome ok +300 +100\.00%$/m);
  });
});
