/**
 * `--csv FILE`: the timeline as CSV (RFC 4180), one row per run and interval,
 * for a spreadsheet, gnuplot or pandas. Latency cells are empty for an
 * interval in which no callout ended.
 */
import { OUTCOMES } from './runner.js';
import type { LoadtestRun } from './session.js';

function cell(value: string | number | null | undefined): string {
  if (value === null || value === undefined) return '';
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export const CSV_COLUMNS = [
  'run',
  't_s',
  'callouts',
  'callouts_per_s',
  'latency_p50_ms',
  'latency_p99_ms',
  ...OUTCOMES.map((o) => `outcome_${o.replaceAll('-', '_')}`),
  'restarts',
  'quarantines',
  'loop_delay_p99_ms',
  'loop_delay_max_ms',
  'rss_mb',
  'heap_used_mb',
] as const;

export function timelineCsv(runs: LoadtestRun[]): string {
  const lines = [CSV_COLUMNS.join(',')];
  for (const run of runs) {
    for (const p of run.report.timeline) {
      const row = [
        run.name,
        p.t,
        p.callouts,
        p.calloutsPerSecond,
        p.latencyMs?.p50,
        p.latencyMs?.p99,
        ...OUTCOMES.map((o) => p.outcomes[o]),
        p.restarts,
        p.quarantines,
        p.eventLoopDelayMs.p99,
        p.eventLoopDelayMs.max,
        p.rssMb,
        p.heapUsedMb,
      ];
      lines.push(row.map(cell).join(','));
    }
  }
  return lines.join('\r\n') + '\r\n';
}
