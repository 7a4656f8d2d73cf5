/**
 * The D2 benchmark's quick mode (`node dist/bench/d2-bench.js --quick`, after
 * `npm run build`): it runs to the end against the fast responder and BIND,
 * and its output is consistent — every NCR is accounted for (completed + lost
 * = sent, in each run line and each table row) and none is lost at this small
 * load, against either server; every daemon has a row, and
 * the last line is `ratio=<number>`. No timing is asserted.
 */
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const BENCH = resolve('dist/bench/d2-bench.js');
const DAEMONS = ['d2box+select_key', 'd2box+select_key/process', 'd2box+held_key', 'd2box', 'd2box+journal', 'd2box/main-loop-reader', 'kea'];

function runBench(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [BENCH, ...args], { timeout: 240_000, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('bench:d2 --quick', () => {
  it('accounts for every NCR and ends with a parseable ratio line', { timeout: 250_000 }, async () => {
    const r = await runBench(['--quick', '--n', '60', '--warmup', '20']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');

    // Run lines: one per target and daemon; sent = completed + lost; no run failed.
    const runs = lines.filter((l) => l.startsWith('run '));
    expect(runs).toHaveLength(2 * DAEMONS.length);
    for (const l of runs) {
      const m = /^run (fast|bind) (\S+) #1: (\d+) NCRs, completed (\d+), lost (\d+);/.exec(l);
      expect(m, l).not.toBeNull();
      expect(Number(m![3])).toBe(120);
      expect(Number(m![4]) + Number(m![5])).toBe(Number(m![3]));
      expect(l).not.toContain('; ERROR ');
      // Nothing may be lost, against either server: 120 NCRs in a window of 128 fit any socket buffer.
      expect(Number(m![5]), l).toBe(0);
      // Against the fast responder: 2 UPDATEs per add (forward, reverse), 3 per remove.
      if (m![1] === 'fast') {
        // (a retry after a timeout on a loaded machine may add some)
        expect(Number(/bench\.example=(\d+)/.exec(l)?.[1]), l).toBeGreaterThanOrEqual(180);
        expect(Number(/10\.in-addr\.arpa=(\d+)/.exec(l)?.[1]), l).toBeGreaterThanOrEqual(120);
      }
    }

    // Table rows: every daemon in both tables, NCRs = completed + lost; ratio rows present.
    for (const target of ['fast signing UPDATE responder', 'BIND 9']) {
      const start = lines.findIndex((l) => l.startsWith(`## ${target}`));
      expect(start, target).toBeGreaterThanOrEqual(0);
      const rows: string[] = [];
      for (let i = start + 3; i < lines.length && lines[i]!.startsWith('|'); i++) rows.push(lines[i]!);
      for (const d of DAEMONS) {
        const row = rows.find((l) => l.startsWith(`| ${d} |`));
        expect(row, `${target}: ${d}`).toBeDefined();
        const cells = row!.split('|').slice(1, -1).map((c) => c.trim());
        expect(cells).toHaveLength(11);
        const [, rate, min, max, p50, p99, cpu, rss, ncrs, completed, lost] = cells;
        for (const x of [rate, min, max, p50, p99, cpu, rss]) expect(Number.isFinite(Number(x)), `${d}: ${x}`).toBe(true);
        expect(Number(min)).toBeLessThanOrEqual(Number(max));
        expect(Number(completed) + Number(lost)).toBe(Number(ncrs));
        expect(Number(lost), `${target}: ${d}`).toBe(0);
      }
      expect(rows.filter((l) => l.startsWith('| ratio '))).toHaveLength(DAEMONS.length - 1);
    }

    const last = lines[lines.length - 1]!;
    const ratio = /^ratio=(\d+(?:\.\d+)?)$/.exec(last);
    expect(ratio, last).not.toBeNull();
    expect(Number(ratio![1])).toBeGreaterThan(0);
  });

  it('--compare runs each d2box daemon a second time with the other build, side by side; --help lists it', { timeout: 120_000 }, async () => {
    const r = await runBench(['--quick', '--n', '30', '--warmup', '10', '--targets', 'fast', '--daemons', 'd2box,kea', '--compare', resolve('dist/src/cli.js')]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const runs = r.stdout.split('\n').filter((l) => l.startsWith('run '));
    expect(runs.map((l) => l.split(' ')[2])).toEqual(['d2box', 'd2box@compare', 'kea']);
    for (const l of runs) expect(l).toMatch(/: 60 NCRs, completed 60, lost 0;/);
    for (const row of ['| d2box |', '| d2box@compare |', '| kea |', '| ratio d2box/kea |', '| ratio d2box@compare/kea |']) {
      expect(r.stdout, row).toContain(row);
    }
    const help = await runBench(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--compare CLI');
  });
});
