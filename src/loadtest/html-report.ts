/**
 * `--report FILE.html`: one self-contained page, no script and nothing to fetch,
 * with the run's settings, the totals table (runs side by side with --compare),
 * timelines with the restarts and quarantines marked, and the latency histogram.
 */
import { OUTCOMES, type LoadtestEvent, type LoadtestReport, type Outcome } from './runner.js';
import { totalsRows } from './report.js';
import type { LoadtestRun, LoadtestSettings } from './session.js';
import { escapeXml as esc, histogramSvg, timeChartSvg, type ChartMarker, type ChartSeries, type ChartSpan } from './svg-chart.js';

/** Okabe–Ito: told apart with the common colour-vision deficiencies. */
const RUN_COLORS = ['#0072B2', '#D55E00', '#009E73', '#CC79A7'];
const METRIC_COLORS = ['#0072B2', '#D55E00'];
const OUTCOME_COLORS: Record<Exclude<Outcome, 'ok'>, string> = {
  throw: '#D55E00',
  reject: '#E69F00',
  timeout: '#CC79A7',
  oom: '#56B4E9',
  exit: '#000000',
  crash: '#882255',
  invalid: '#009E73',
  'log-flood': '#999933',
  quarantined: '#AA4499',
  other: '#888888',
};
const EVENT_STYLE: Record<LoadtestEvent['kind'], { color: string; dash?: string; label: string }> = {
  restart: { color: '#E69F00', dash: '4 3', label: 'worker restart' },
  quarantine: { color: '#CC0000', label: 'quarantine' },
  revive: { color: '#009E73', dash: '1 2', label: 'revive (hooks-restart)' },
};
const SECOND_METRIC_DASH = '6 4';
/** The events table lists at most this many per run; the charts mark them all. */
const MAX_EVENT_ROWS = 200;

interface Metric {
  name: string;
  value: (p: LoadtestReport['timeline'][number]) => number | null;
}

export function htmlReport(settings: LoadtestSettings, runs: LoadtestRun[]): string {
  const compare = runs.length > 1;
  const xMax = Math.max(...runs.map((r) => r.report.elapsedS), 0.001);
  const runColor = (i: number) => RUN_COLORS[i % RUN_COLORS.length]!;

  const runMarkers = (i: number): ChartMarker[] =>
    runs[i]!.report.events.map((e) => ({
      x: e.t,
      kind: e.kind,
      // With several runs the line takes its run's colour and keeps its kind's dash.
      color: compare ? runColor(i) : EVENT_STYLE[e.kind].color,
      ...(EVENT_STYLE[e.kind].dash ? { dash: EVENT_STYLE[e.kind].dash } : {}),
      label: `${compare ? `${runs[i]!.name}: ` : ''}${EVENT_STYLE[e.kind].label} at ${e.t} s: ${e.text}`,
    }));
  const runSpans = (i: number): ChartSpan[] =>
    quarantineSpans(runs[i]!.report).map((s) => ({ ...s, color: compare ? runColor(i) : EVENT_STYLE.quarantine.color, label: `${compare ? `${runs[i]!.name}: ` : ''}${s.label}` }));
  const markers = runs.flatMap((_, i) => runMarkers(i));
  const spans = runs.flatMap((_, i) => runSpans(i));

  /** One chart of one or two metrics: colour by metric for one run; by run, dash by metric, when compared. */
  const metricChart = (id: string, title: string, yLabel: string, metrics: Metric[], scale: 'linear' | 'log' = 'linear') => {
    const series: ChartSeries[] = runs.flatMap((run, i) =>
      metrics.map((m, j) => ({
        name: compare ? `${m.name} (${run.name})` : m.name,
        color: compare ? runColor(i) : METRIC_COLORS[j % METRIC_COLORS.length]!,
        ...(j > 0 ? { dash: SECOND_METRIC_DASH } : {}),
        points: run.report.timeline.map((p) => [p.t, m.value(p)] as [number, number | null]),
      })),
    );
    return figure(timeChartSvg({ id, title, yLabel, xMax, scale, series, markers, spans }), title, series);
  };

  // Failures by kind: one chart per run (colour is the kind), only the kinds that happened.
  const failureCharts = runs.map((run, i) => {
    const kinds = OUTCOMES.filter((o): o is Exclude<Outcome, 'ok'> => o !== 'ok' && run.report.outcomes[o] > 0);
    const series: ChartSeries[] = kinds.map((kind) => ({
      name: kind,
      color: OUTCOME_COLORS[kind],
      points: run.report.timeline.map((p) => [p.t, p.outcomes[kind]] as [number, number]),
    }));
    const title = `Failures by kind per interval${compare ? `: ${run.name}` : ''}`;
    const svg = timeChartSvg({ id: `failures-${i}`, title, yLabel: 'callouts', xMax, series, markers: runMarkers(i), spans: runSpans(i) });
    return figure(svg, title, series, series.length ? '' : 'no failures in this run');
  });

  const histogram = histogramSvg(
    'latency-histogram',
    'Latency histogram',
    runs.map((run, i) => ({ name: run.name, color: compare ? runColor(i) : METRIC_COLORS[0]!, buckets: run.report.latencyHistogram })),
  );
  const histogramLegend = runs.map((run, i) => ({ name: run.name, color: compare ? runColor(i) : METRIC_COLORS[0]! }));

  const title = `d2box loadtest: ${settings.hook}${compare ? `, ${runs.map((r) => r.name).join(' vs ')}` : ''}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>${esc(title)}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em auto; max-width: 1560px; padding: 0 1em; color: #222; }
h1 { font-size: 1.4em; margin: 0 0 .3em; } h2 { font-size: 1.1em; margin: 1.2em 0 .4em; }
table { border-collapse: collapse; margin: .3em 0; } td, th { border: 1px solid #ddd; padding: 2px 8px; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: pre; }
.grid { display: flex; flex-wrap: wrap; gap: 1em; } .tables { display: flex; flex-wrap: wrap; gap: 2em; align-items: flex-start; }
figure { margin: 0; flex: 1 1 560px; max-width: 770px; } figcaption { font-weight: 600; margin-bottom: 2px; }
svg.chart { width: 100%; height: auto; } svg .tick { font-size: 11px; fill: #555; } svg .axis { font-size: 11px; fill: #333; }
.legend { font-size: 12px; display: flex; flex-wrap: wrap; gap: .2em 1em; margin: 2px 0 0 58px; } .legend svg { vertical-align: middle; }
.note { color: #666; font-size: 12px; } code { font-size: 12px; }
</style>
</head>
<body>
<h1>${esc(title)}</h1>
<p class="note">Started ${esc(settings.startedAt)}; ${runs.map((r) => `${esc(r.name)}: ${r.report.callouts} callouts in ${r.report.elapsedS.toFixed(2)} s, stopped by ${r.report.stoppedBy}`).join('; ')}.
Timelines in intervals of ${settings.intervalMs} ms; hover a line for its name, a point (drawn when a run has at most 120 intervals), an event line or a bar for its value.</p>
<h2>Timelines</h2>
${eventLegend(compare ? runs.map((r, i) => ({ name: r.name, color: runColor(i) })) : [])}
<div class="grid">
${metricChart('callouts-per-second', 'Callouts per second', 'callouts/s', [{ name: 'callouts/s', value: (p) => p.calloutsPerSecond }])}
${metricChart('latency', 'Latency p50 and p99 (log scale)', 'ms', [{ name: 'p50', value: (p) => p.latencyMs?.p50 ?? null }, { name: 'p99', value: (p) => p.latencyMs?.p99 ?? null }], 'log')}
${failureCharts.join('\n')}
${metricChart('event-loop-delay', 'Main-loop delay p99 and max', 'ms', [{ name: 'p99', value: (p) => p.eventLoopDelayMs.p99 }, { name: 'max', value: (p) => p.eventLoopDelayMs.max }])}
${metricChart('memory', 'Host memory: rss and main-thread heap used', 'MB', [{ name: 'rss', value: (p) => p.rssMb }, { name: 'heap used', value: (p) => p.heapUsedMb }])}
${figure(histogram, 'Latency histogram (share of each run’s callouts)', histogramLegend)}
</div>
<div class="tables">
<div><h2>Settings</h2>${settingsTable(settings, runs)}</div>
<div><h2>Totals</h2>${totalsTable(runs)}</div>
</div>
<h2>Events</h2>
${eventsTable(runs)}
</body>
</html>
`;
}

/** From each quarantine to the revive after it, or to the end of the run. */
function quarantineSpans(r: LoadtestReport): { from: number; to: number; label: string }[] {
  const spans: { from: number; to: number; label: string }[] = [];
  let from: number | undefined;
  for (const e of r.events) {
    if (e.kind === 'quarantine' && from === undefined) from = e.t;
    else if (e.kind === 'revive' && from !== undefined) {
      spans.push({ from, to: e.t, label: `quarantined ${from} s to ${e.t} s` });
      from = undefined;
    }
  }
  if (from !== undefined) spans.push({ from, to: r.elapsedS, label: `quarantined from ${from} s to the end` });
  return spans;
}

function swatch(color: string, dash?: string, width = 1.8): string {
  return `<svg width="22" height="10" aria-hidden="true"><line x1="1" x2="21" y1="5" y2="5" stroke="${color}" stroke-width="${width + 0.7}"${dash ? ` stroke-dasharray="${dash}"` : ''}/></svg>`;
}

function figure(svg: string, caption: string, legend: { name: string; color: string; dash?: string }[], note = ''): string {
  const items = legend.map((s) => `<span>${swatch(s.color, s.dash)} ${esc(s.name)}</span>`).join('');
  return `<figure><figcaption>${esc(caption)}</figcaption>${svg}<div class="legend">${items}${note ? `<span class="note">${esc(note)}</span>` : ''}</div></figure>`;
}

function eventLegend(runs: { name: string; color: string }[]): string {
  const kinds = (Object.keys(EVENT_STYLE) as LoadtestEvent['kind'][]).map((k) => {
    const s = EVENT_STYLE[k];
    return `<span>${swatch(runs.length ? '#555' : s.color, s.dash, 1.5)} ${esc(s.label)}</span>`;
  });
  const runItems = runs.map((r) => `<span>${swatch(r.color)} ${esc(r.name)}</span>`);
  const shade = `<span><svg width="22" height="10" aria-hidden="true"><rect width="22" height="10" fill="${runs.length ? '#555' : EVENT_STYLE.quarantine.color}" fill-opacity="0.15"/></svg> quarantined (until revived)</span>`;
  return `<div class="legend" style="margin-left:0">${[...runItems, ...kinds, shade].join('')}${runs.length ? '<span class="note">lines and shading take their run’s colour</span>' : ''}</div>`;
}

function settingsTable(s: LoadtestSettings, runs: LoadtestRun[]): string {
  const limits = [s.limits.count !== null ? `count ${s.limits.count}` : '', s.limits.durationS !== null ? `duration ${s.limits.durationS} s` : ''].filter(Boolean).join(', ');
  const faults = s.faults && Object.keys(s.faults).length ? Object.entries(s.faults).map(([k, v]) => `${k}=${v}`).join(', ') : 'none';
  const rows: [string, string][] = [
    ['hook point', s.hook],
    ['libraries', s.libraries.join('\n')],
    ['policy (--sandbox)', Object.keys(s.sandbox).length ? JSON.stringify(s.sandbox) : 'defaults'],
    ...runs.map((r): [string, string] => [`run ${r.name}`, `sandbox ${JSON.stringify(r.sandbox)}`]),
    ['fault mix', faults],
    ['seed', String(s.seed)],
    ['concurrency', String(s.concurrency)],
    ['limits', limits],
    ['configuration', s.configuration],
    ['machine', `${s.machine.os}; ${s.machine.cpus}; ${s.machine.memoryMb} MB; Node.js ${s.machine.node}; d2box ${s.machine.d2box}`],
  ];
  return `<table class="settings">${rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v).replaceAll('\n', '<br>')}</td></tr>`).join('')}</table>`;
}

function totalsTable(runs: LoadtestRun[]): string {
  const tables = runs.map((r) => new Map(totalsRows(r.report)));
  const labels = [...new Set(runs.flatMap((r) => totalsRows(r.report).map(([label]) => label)))];
  const head = `<tr><th></th>${runs.map((r) => `<th>${esc(r.name)}</th>`).join('')}</tr>`;
  const body = labels.map((label) => `<tr><th>${esc(label)}</th>${tables.map((t) => `<td class="n">${esc(t.get(label) ?? '')}</td>`).join('')}</tr>`);
  return `<table class="totals">${head}${body.join('')}</table>`;
}

function eventsTable(runs: LoadtestRun[]): string {
  const rows = runs.flatMap((r) => r.report.events.slice(0, MAX_EVENT_ROWS).map((e) => `<tr><td>${esc(r.name)}</td><td class="n">${e.t.toFixed(3)}</td><td>${esc(EVENT_STYLE[e.kind].label)}</td><td>${esc(e.text)}</td></tr>`));
  const cut = runs.filter((r) => r.report.events.length > MAX_EVENT_ROWS).map((r) => `${esc(r.name)}: ${r.report.events.length - MAX_EVENT_ROWS} more not listed`);
  if (rows.length === 0) return '<p class="note">No worker restarts, quarantines or revives.</p>';
  return `<table class="events"><tr><th>run</th><th>s</th><th>event</th><th>host log</th></tr>${rows.join('')}</table>${cut.length ? `<p class="note">${cut.join('; ')}</p>` : ''}`;
}
