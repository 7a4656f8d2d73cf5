/**
 * `d2box loadtest --compare --report --csv --json`: the same load in both isolation modes, and
 * the HTML report opened in a real browser (Debian's chromium, headless, driven by playwright-core,
 * which never downloads a browser of its own): every chart drawn with its series, the restarts and
 * quarantines marked, nothing fetched, no console error; a screenshot is kept in test-artifacts/.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CSV_COLUMNS } from '../src/loadtest/csv.js';
import { parseLoadtestArgs } from '../src/loadtest/index.js';
import { formatComparison } from '../src/loadtest/report.js';
import { LoadtestError, type LoadtestReport } from '../src/loadtest/runner.js';
import type { LoadtestComparison } from '../src/loadtest/session.js';

const CLI = resolve('dist/src/cli.js');
const ARTIFACTS = resolve('test-artifacts');
const CHROMIUM = '/usr/bin/chromium';

interface Finished {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** The CLI, asynchronously (a synchronous spawn would block vitest's timeout), killed by PID if it overruns. */
function cli(args: string[], timeoutMs: number): Promise<Finished> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', fail);
    child.on('close', (status) => {
      clearTimeout(timer);
      done({ status, stdout, stderr });
    });
  });
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

describe('loadtest --report / --csv / --compare', () => {
  let dir: string;
  let reportFile: string;
  let csvFile: string;
  let result: LoadtestComparison;
  let browser: Browser | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'd2box-loadtest-report-'));
    reportFile = join(dir, 'report.html');
    csvFile = join(dir, 'timeline.csv');
    // Seed 2 plans 6 exits in 100 callouts; a death takes at most its one neighbour in flight along
    // (concurrency 2), so there are at least 3 deaths, and a budget of one restart quarantines the
    // library at the second: each run has restarts, a quarantine and (--revive) the library back.
    // 100 callouts per mode keep the whole thing to seconds of load; --duration only bounds it.
    const { planFaults } = await import('../sample-hooks/fault-injection/plan.js');
    expect(planFaults(2, { exit: 0.04, throw: 0.05 }, 100).exit).toBe(6);
    const run = await cli(
      [
        'loadtest', '--faults', 'exit=0.04,throw=0.05', '--seed', '2', '--count', '100', '--duration', '30', '--interval', '200', '--concurrency', '2',
        '--sandbox', '{"max-restarts":1,"restart-window-s":60,"callout-timeout-ms":2000}', '--revive',
        '--compare', '--report', reportFile, '--csv', csvFile, '--json',
      ],
      // Generous: two runs, a process sandbox started several times, on 2 cores shared with other jobs.
      100_000,
    );
    expect(run.status, run.stderr).toBe(0);
    result = JSON.parse(run.stdout) as LoadtestComparison;
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('--compare --json: the same load, seed and fault mix, once per isolation mode, each accounted for interval by interval', () => {
    expect(result.runs.map((r) => r.name)).toEqual(['thread', 'process']);
    expect(result.settings).toMatchObject({ hook: 'select_key', seed: 2, concurrency: 2, intervalMs: 200, faults: { exit: 0.04, throw: 0.05 } });
    expect(result.settings.machine.cpus).toMatch(/^\d+ × /);
    for (const run of result.runs) {
      const r = run.report;
      expect(run.sandbox).toMatchObject({ isolation: run.name });
      // The library really ran in that mode, as the host says.
      expect(r.libraryStatistics.map((s) => s.isolation)).toEqual([run.name]);
      expect(r).toMatchObject({ seed: 2, concurrency: 2, intervalMs: 200, callouts: 100, stoppedBy: 'count' });
      // The timeline accounts for every callout, every outcome and every restart of the totals.
      expect(sum(r.timeline.map((p) => p.callouts))).toBe(r.callouts);
      for (const [outcome, n] of Object.entries(r.outcomes)) expect(sum(r.timeline.map((p) => p.outcomes[outcome as keyof typeof r.outcomes])), outcome).toBe(n);
      expect(sum(r.timeline.map((p) => p.restarts))).toBe(r.restarts);
      expect(r.timeline.length).toBeGreaterThanOrEqual(3);
      // Marked events: the restarts and quarantines the totals count, with the revives that followed.
      expect(r.events.filter((e) => e.kind === 'restart')).toHaveLength(r.restarts);
      expect(r.events.filter((e) => e.kind === 'quarantine')).toHaveLength(r.quarantines);
      expect(r.quarantines).toBeGreaterThan(0);
      expect(r.events.filter((e) => e.kind === 'revive')).toHaveLength(r.revives);
      expect(r.events.every((e, i) => i === 0 || e.t >= r.events[i - 1]!.t)).toBe(true);
      expect(sum(r.latencyHistogram.map((b) => b.count))).toBe(r.callouts);
    }
  });

  it('--compare without --json: one totals table, a column per run', () => {
    const text = formatComparison(result.runs);
    expect(text).toMatch(/^d2box loadtest --compare: thread vs process\n +thread +process\n/);
    expect(text).toMatch(new RegExp(`^ {2}callouts +${result.runs[0]!.report.callouts} +${result.runs[1]!.report.callouts}$`, 'm'));
    expect(text).toMatch(new RegExp(`^ {2}worker restarts +${result.runs[0]!.report.restarts} +${result.runs[1]!.report.restarts}$`, 'm'));
    expect(text).toMatch(/^thread \(sandbox \{"isolation":"thread"\}\): select_key on /m);
    expect(text).toMatch(/^process \(sandbox \{"isolation":"process"\}\): select_key on /m);
  });

  it('--csv: one row per run and interval, the same figures as --json', () => {
    const lines = readFileSync(csvFile, 'utf8').trimEnd().split('\r\n');
    expect(lines[0]).toBe(CSV_COLUMNS.join(','));
    const rows = lines.slice(1).map((l) => l.split(','));
    for (const run of result.runs) {
      const mine = rows.filter((r) => r[0] === run.name);
      expect(mine).toHaveLength(run.report.timeline.length);
      const column = (name: string) => mine.map((r) => Number(r[CSV_COLUMNS.indexOf(name as (typeof CSV_COLUMNS)[number])]));
      expect(sum(column('callouts'))).toBe(run.report.callouts);
      expect(sum(column('outcome_exit'))).toBe(run.report.outcomes.exit);
      expect(column('rss_mb')).toEqual(run.report.timeline.map((p) => p.rssMb));
    }
  });

  it('--report: the page renders every chart in chromium with nothing fetched and no console error', async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      // Tests here run as root in a container, where chromium refuses to start with its own sandbox.
      args: ['--no-sandbox'],
    });
    const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    const requests: string[] = [];
    const blocked: string[] = [];
    // Every request goes through here: the report's own file: URL is let through, anything else fails the test.
    await page.route('**/*', (route) => {
      const url = route.request().url();
      requests.push(url);
      if (url.startsWith('file:') || url.startsWith('data:')) return route.continue();
      blocked.push(url);
      return route.abort();
    });
    const problems: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error' || message.type() === 'warning') problems.push(`${message.type()}: ${message.text()}`);
    });
    page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
    page.on('requestfailed', (request) => problems.push(`requestfailed: ${request.url()}`));
    await page.goto(pathToFileURL(reportFile).href, { waitUntil: 'load' });

    // Each chart, with the series it should have, drawn with some length on the page.
    const drawn = (chart: string) =>
      page.$$eval(`svg#${chart} path[data-series]`, (paths) =>
        Object.fromEntries(paths.map((p) => [p.getAttribute('data-series')!, (p as SVGPathElement).getTotalLength()])),
      );
    const expected: Record<string, string[]> = {
      'callouts-per-second': ['callouts/s (thread)', 'callouts/s (process)'],
      latency: ['p50 (thread)', 'p99 (thread)', 'p50 (process)', 'p99 (process)'],
      'event-loop-delay': ['p99 (thread)', 'max (thread)', 'p99 (process)', 'max (process)'],
      memory: ['rss (thread)', 'heap used (thread)', 'rss (process)', 'heap used (process)'],
      'failures-0': ['throw', 'exit', 'quarantined'].filter((k) => result.runs[0]!.report.outcomes[k as 'exit'] > 0),
      'failures-1': ['throw', 'exit', 'quarantined'].filter((k) => result.runs[1]!.report.outcomes[k as 'exit'] > 0),
    };
    for (const [chart, series] of Object.entries(expected)) {
      const lengths = await drawn(chart);
      expect(Object.keys(lengths).sort(), chart).toEqual([...series].sort());
      // Latency is null in intervals where nothing ended, so a p99 line can be dots only; the others are lines.
      if (chart !== 'latency') for (const s of series) expect(lengths[s], `${chart} ${s}`).toBeGreaterThan(50);
      const box = await page.locator(`svg#${chart}`).boundingBox();
      expect(box!.width).toBeGreaterThan(300);
      expect(box!.height).toBeGreaterThan(100);
    }
    // The events marked on every timeline: as many lines as the runs had restarts, quarantines and revives.
    const events = result.runs.flatMap((r) => r.report.events);
    const marked = await page.$$eval('svg#callouts-per-second line[data-event]', (lines) => lines.map((l) => l.getAttribute('data-event')));
    for (const kind of ['restart', 'quarantine', 'revive']) expect(marked.filter((k) => k === kind).length, kind).toBe(events.filter((e) => e.kind === kind).length);
    expect(marked.filter((k) => k === 'quarantine').length).toBeGreaterThan(0);
    // Quarantined time shaded.
    expect(await page.locator('svg#callouts-per-second rect.span').count()).toBeGreaterThan(0);
    // The histogram: bars for both runs.
    for (const run of result.runs) {
      const bars = await page.locator(`svg#latency-histogram g[data-series="${run.name}"] rect`).count();
      expect(bars, run.name).toBeGreaterThan(0);
    }
    // The totals table side by side, with the figures of --json.
    const totals = await page.$$eval('table.totals tr', (rows) => rows.map((r) => [...r.children].map((c) => c.textContent!.trim())));
    expect(totals[0]).toEqual(['', 'thread', 'process']);
    expect(totals.find((r) => r[0] === 'callouts')).toEqual(['callouts', ...result.runs.map((r) => String(r.report.callouts))]);
    expect(await page.locator('table.settings').innerText()).toMatch(/fault mix\s+exit=0\.04, throw=0\.05/);

    mkdirSync(ARTIFACTS, { recursive: true });
    const shot = join(ARTIFACTS, 'loadtest-report.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect(statSync(shot).size).toBeGreaterThan(20_000);

    expect(blocked).toEqual([]);
    expect(requests).toEqual([pathToFileURL(reportFile).href]);
    expect(problems).toEqual([]);
    // Generous: starting chromium took 5 to 17 s here on 2 cores shared with other jobs.
  }, 120_000);
});

describe('loadtest --report / --csv on one run, and --compare-sandbox', () => {
  it('one run: a report with one series per chart, every restart marked on every timeline, nothing to load; the CSV', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'd2box-loadtest-report-'));
    try {
      const report = join(dir, 'one.html');
      const csv = join(dir, 'one.csv');
      const run = await cli(['loadtest', '--faults', 'exit=0.04', '--seed', '2', '--count', '60', '--duration', '30', '--concurrency', '2', '--interval', '100',
        '--sandbox', '{"max-restarts":20}', '--report', report, '--csv', csv, '--json'], 60_000);
      expect(run.status, run.stderr).toBe(0);
      const r = JSON.parse(run.stdout) as LoadtestReport;
      expect(r.restarts).toBeGreaterThan(0);
      const html = readFileSync(report, 'utf8');
      expect(html).toMatch(/<svg [^>]*id="callouts-per-second"/);
      expect(html).toContain('<path data-series="callouts/s"');
      expect(html).toContain('<path data-series="p50"');
      expect(html.match(/<line class="marker" data-event="restart"/g)?.length).toBe(5 * r.restarts);
      // Self-contained: no script, nothing addressed by URL but the SVG namespace.
      expect(html).not.toMatch(/<script|<link|src=|url\(/i);
      expect(new Set([...html.matchAll(/https?:\/\/[^\s"'<>]+/g)].map((m) => m[0]))).toEqual(new Set(['http://www.w3.org/2000/svg']));
      const rows = readFileSync(csv, 'utf8').trimEnd().split('\r\n').slice(1);
      expect(rows).toHaveLength(r.timeline.length);
      expect(rows.every((row) => row.startsWith('thread,'))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);

  it('--compare-sandbox: each isolation mode times each policy; refused without --compare or past two', () => {
    const args = parseLoadtestArgs(['--compare', '--compare-sandbox', '{"callout-timeout-ms":100}', '--compare-sandbox', '{"callout-timeout-ms":1000}', '--count', '1']);
    expect('help' in args).toBe(false);
    if ('help' in args) return;
    expect(args.variants).toEqual([
      { name: 'thread {"callout-timeout-ms":100}', sandbox: { 'callout-timeout-ms': 100, isolation: 'thread' } },
      { name: 'thread {"callout-timeout-ms":1000}', sandbox: { 'callout-timeout-ms': 1000, isolation: 'thread' } },
      { name: 'process {"callout-timeout-ms":100}', sandbox: { 'callout-timeout-ms': 100, isolation: 'process' } },
      { name: 'process {"callout-timeout-ms":1000}', sandbox: { 'callout-timeout-ms': 1000, isolation: 'process' } },
    ]);
    expect(() => parseLoadtestArgs(['--compare-sandbox', '{}'])).toThrow(LoadtestError);
    expect(() => parseLoadtestArgs(['--compare', '--compare-sandbox', '{}', '--compare-sandbox', '{}', '--compare-sandbox', '{}'])).toThrow(/at most two/);
  });
});
