/** `d2box loadtest` from the command line: dispatch before Kea's flags, --json, the table, progress, usage errors. */
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { LoadtestReport } from '../src/loadtest/runner.js';

const CLI = resolve('dist/src/cli.js');

function cli(...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
}

describe('d2box loadtest', () => {
  it('--json: a report whose figures add up, with the fault mix the seed planned', async () => {
    const { planFaults } = await import('../sample-hooks/fault-injection/plan.js');
    const run = cli('loadtest', '--library', 'dist/sample-hooks/select-key-policy/index.js', '--parameters', '{"default":"key-a","keys":[{"name":"key-a","algorithm":"HMAC-SHA256","secret":"Zmlyc3Qga2V5"}]}',
      '--faults', 'throw=0.1,reject=0.05', '--seed', '6', '--count', '300', '--concurrency', '4', '--json');
    expect(run.status, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as LoadtestReport;
    expect(report.callouts).toBe(300);
    expect(Object.values(report.outcomes).reduce((a, b) => a + b, 0)).toBe(300);
    const plan = planFaults(6, { throw: 0.1, reject: 0.05 }, 300);
    expect(report.outcomes).toMatchObject({ throw: plan.throw, reject: plan.reject, ok: plan.ok });
    expect(report.libraryStatistics).toHaveLength(2);
    // select-key-policy also had d2_srv_configured before the run; fault-injection has no callout there.
    expect(report.libraryStatistics.map((s) => s.calls)).toEqual([301, 300]);
    expect(report).toMatchObject({ hook: 'select_key', concurrency: 4, seed: 6, stoppedBy: 'count', restarts: 0 });
    // Not a TTY and no --progress: the host's log is counted, not printed.
    expect(run.stderr).toBe('');
  });

  it('prints the table, and progress lines on stderr with --progress', () => {
    const run = cli('loadtest', '--faults', 'exit=0.01', '--seed', '3', '--count', '2000', '--sandbox', '{"max-restarts":100}', '--progress', '--progress-interval', '1');
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^d2box loadtest: select_key on .*fault-injection\/index\.js, concurrency 16, seed 3, count 2000; stopped by count/);
    expect(run.stdout).toMatch(/^ {2}callouts +2000$/m);
    const restarts = Number(/^ {2}worker restarts +(\d+)$/m.exec(run.stdout)?.[1]);
    expect(restarts).toBeGreaterThan(0);
    expect(run.stdout).toMatch(new RegExp(`restarts ${restarts}, failures: exit \\d+`));
    expect(run.stderr).toMatch(/^loadtest [\d.]+ s {2}\d+ callouts {2}\d+\/s {2}errors \d+ {2}restarts \d+/m);
  });

  it('usage errors exit 1 with the usage; --help exits 0; Kea flags are untouched', () => {
    const bad = cli('loadtest', '--concurrency', 'lots');
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/loadtest: --concurrency: "lots" is not an integer\nUsage: d2box loadtest/);
    const noLib = cli('loadtest', '--library', 'no/such/library.js', '--count', '1');
    expect(noLib.status).toBe(1);
    expect(noLib.stderr).toMatch(/cannot load the libraries: .*no\/such\/library\.js/);
    const help = cli('loadtest', '--help');
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^Usage: d2box loadtest \[options\]/);
    // Not a subcommand anywhere but first: Kea's parser still refuses it.
    const kea = cli('-d', 'loadtest');
    expect(kea.status).toBe(1);
    expect(kea.stderr).toMatch(/Usage error/);
  });
});
