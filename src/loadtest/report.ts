/** The load tester's output: the live progress line and the final table. */
import { OUTCOMES, type LoadtestProgress, type LoadtestReport } from './runner.js';
import type { LoadtestRun } from './session.js';

export function progressLine(p: LoadtestProgress): string {
  return `loadtest ${p.elapsedS.toFixed(1)} s  ${p.callouts} callouts  ${p.rate.toFixed(0)}/s  errors ${p.errors}  restarts ${p.restarts}${p.quarantines ? `  quarantines ${p.quarantines}` : ''}`;
}

const MAIN_OUTCOMES = new Set(['ok', 'throw', 'reject', 'timeout', 'oom', 'exit', 'crash', 'invalid', 'log-flood', 'quarantined']);

/** The totals table's rows, [label, value]: the text report prints them, the HTML report tabulates them side by side. */
export function totalsRows(r: LoadtestReport): [string, string][] {
  const rows: [string, string][] = [];
  const row = (label: string, value: string | number) => rows.push([label, String(value)]);
  const pct = (n: number) => (r.callouts === 0 ? '' : `  ${((100 * n) / r.callouts).toFixed(2)}%`);
  row('callouts', r.callouts);
  row('callouts/s', r.calloutsPerSecond.toFixed(1));
  row('latency ms p50', r.latencyMs.p50.toFixed(3));
  row('latency ms p90', r.latencyMs.p90.toFixed(3));
  row('latency ms p99', r.latencyMs.p99.toFixed(3));
  row('latency ms max', r.latencyMs.max.toFixed(3));
  for (const outcome of OUTCOMES) {
    const n = r.outcomes[outcome];
    if (MAIN_OUTCOMES.has(outcome) || n > 0) row(`outcome ${outcome}`, `${n}${pct(n)}`);
  }
  if (r.keyChoices) {
    const ok = r.outcomes.ok;
    const share = (n: number) => (ok === 0 ? '' : `  ${((100 * n) / ok).toFixed(2)}% of ok`);
    row('select_key key kept', `${r.keyChoices.kept}${share(r.keyChoices.kept)}`);
    row('select_key key changed', `${r.keyChoices.changed}${share(r.keyChoices.changed)}`);
    row('select_key server skipped', `${r.keyChoices.skipped}${share(r.keyChoices.skipped)}`);
  }
  if (r.heldKey) {
    row('held key round trips', r.heldKey.roundTrips);
    for (const [outcome, n] of Object.entries(r.heldKey.outcomes)) row(`held key ${outcome}`, n);
    row('held key round trip ms p50', r.heldKey.latencyMs.p50.toFixed(3));
    row('held key round trip ms p99', r.heldKey.latencyMs.p99.toFixed(3));
  }
  row('non-zero returns', r.nonZeroReturns);
  row('worker restarts', r.restarts);
  row('quarantines', r.quarantines);
  if (r.revives) row('revived (hooks-restart)', r.revives);
  row('log lines suppressed', r.logLinesSuppressed);
  row('event-loop delay ms p50', r.eventLoopDelayMs.p50.toFixed(3));
  row('event-loop delay ms p99', r.eventLoopDelayMs.p99.toFixed(3));
  row('event-loop delay ms max', r.eventLoopDelayMs.max.toFixed(3));
  row('host rss MB', `${r.memoryMb.rss.toFixed(1)}  (peak ${r.memoryMb.peakRss.toFixed(1)})`);
  row('host heap used MB', `${r.memoryMb.heapUsed.toFixed(1)}  (peak ${r.memoryMb.peakHeapUsed.toFixed(1)})`);
  return rows;
}

export function formatReport(r: LoadtestReport): string {
  const rows = totalsRows(r);
  const width = Math.max(...rows.map(([label]) => label.length));
  const valueWidth = Math.max(...rows.map(([, value]) => value.split(' ')[0]!.length));
  const lines = rows.map(([label, value]) => {
    const [head, ...rest] = value.split(' ');
    return `  ${label.padEnd(width)}  ${head!.padStart(valueWidth)}${rest.length ? ' ' + rest.join(' ') : ''}`;
  });
  const limits = [r.limits.count !== null ? `count ${r.limits.count}` : '', r.limits.durationS !== null ? `duration ${r.limits.durationS} s` : ''].filter(Boolean).join(', ');
  const header = `d2box loadtest: ${r.hook} on ${r.libraries.join(' + ')}, concurrency ${r.concurrency}, seed ${r.seed}, ${limits}; stopped by ${r.stoppedBy} after ${r.elapsedS.toFixed(2)} s`;
  const libraries = r.libraryStatistics.map((s) => {
    const failures = Object.entries(s.failures).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(', ') || 'none';
    return `  ${s.library}: ${s.state}, calls ${s.calls}, restarts ${s.restarts}, failures: ${failures}${s.quarantineReason ? `; quarantined: ${s.quarantineReason}` : ''}`;
  });
  return [header, ...lines, 'library statistics:', ...libraries, ...configurationLines(r), ''].join('\n');
}

/** What d2_srv_configured got first and select_key's arguments were drawn from. */
function configurationLines(r: LoadtestReport): string[] {
  const c = r.configuration;
  const generated = c.source === 'generated';
  return [
    `configuration: ${generated ? 'generated (give --config FILE to run with yours)' : c.source}; d2_srv_configured first${r.hook === 'select_key' ? ', select_key drawn from these servers, each with the key D2 would use' : ''}`,
    `  keys: ${c.keys.length === 0 ? 'none' : c.keys.map((k) => `${k.name} ${k.algorithm}${k['digest-bits'] ? `/${k['digest-bits']}` : ''}`).join(', ')}`,
    ...c.servers.map((s) => {
      const address = s['ip-address'].includes(':') ? `[${s['ip-address']}]` : s['ip-address'];
      return `  server ${address}:${s.port}  ${s.direction} ${s.domain}  key ${s['key-name'] ?? 'none'}`;
    }),
  ];
}

/** --compare: the runs' totals side by side, then each run's header and library statistics. */
export function formatComparison(runs: LoadtestRun[]): string {
  const tables = runs.map((r) => new Map(totalsRows(r.report)));
  const labels = [...new Set(runs.flatMap((r) => totalsRows(r.report).map(([label]) => label)))];
  const columns = runs.map((r, i) => Math.max(r.name.length, ...labels.map((l) => (tables[i]!.get(l) ?? '').split(' ')[0]!.length)));
  const width = Math.max(...labels.map((l) => l.length));
  const head = `  ${''.padEnd(width)}${runs.map((r, i) => `  ${r.name.padStart(columns[i]!)}`).join('')}`;
  const lines = labels.map((label) => `  ${label.padEnd(width)}${tables.map((t, i) => `  ${(t.get(label) ?? '').split(' ')[0]!.padStart(columns[i]!)}`).join('')}`);
  const runsText = runs.map((r) => {
    const text = formatReport(r.report).split('\n');
    // The header line, and from the library statistics on (the totals are in the table above).
    const from = text.indexOf('library statistics:');
    const to = text.findIndex((line) => line.startsWith('configuration:'));
    return [`${r.name} (sandbox ${JSON.stringify(r.sandbox)}): ${text[0]!.replace(/^d2box loadtest: /, '')}`, ...text.slice(from, to)].join('\n');
  });
  const config = formatReport(runs[0]!.report).split('\n');
  return [`d2box loadtest --compare: ${runs.map((r) => r.name).join(' vs ')}`, head, ...lines, ...runsText, ...config.slice(config.findIndex((l) => l.startsWith('configuration:'))), ''].join('\n');
}
