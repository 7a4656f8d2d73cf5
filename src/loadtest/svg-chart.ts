/**
 * The load-test report's charts, drawn here as SVG text: a time chart (lines,
 * marked events, shaded spans) and a histogram on a logarithmic axis. Drawn on
 * the server so the report is one file with no script at all: it opens offline,
 * with scripts blocked (mail, CI artifact viewers), prints, and is the same every
 * time for the same data. Every series is a `<path data-series="NAME">`, every
 * event a `<line data-event="KIND">`, so a test (or a reader's devtools) can find them.
 */

export type Scale = 'linear' | 'log';

export interface ChartSeries {
  name: string;
  color: string;
  /** stroke-dasharray; none for a solid line. */
  dash?: string;
  /** [x, y]; a null y breaks the line. */
  points: [number, number | null][];
}

export interface ChartMarker {
  x: number;
  kind: string;
  color: string;
  dash?: string;
  label: string;
}

export interface ChartSpan {
  from: number;
  to: number;
  color: string;
  label: string;
}

export interface TimeChartSpec {
  id: string;
  title: string;
  yLabel: string;
  xMax: number;
  scale?: Scale;
  series: ChartSeries[];
  markers?: ChartMarker[];
  spans?: ChartSpan[];
}

export interface HistogramRun {
  name: string;
  color: string;
  buckets: { fromMs: number; toMs: number; count: number }[];
}

const WIDTH = 760;
const HEIGHT = 210;
const MARGIN = { left: 58, right: 14, top: 12, bottom: 34 };
const PLOT_W = WIDTH - MARGIN.left - MARGIN.right;
const PLOT_H = HEIGHT - MARGIN.top - MARGIN.bottom;
/** Above this many points a series is a line only; below, each point also gets a dot with its value on hover. */
const MAX_DOTS = 120;

export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** 1, 2 or 5 times a power of ten, at least `rough`. */
function niceStep(rough: number): number {
  if (!(rough > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(rough));
  const m = rough / power;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * power;
}

function linearTicks(max: number, count: number): { top: number; ticks: number[] } {
  const step = niceStep((max > 0 ? max : 1) / count);
  const top = Math.max(step, Math.ceil((max > 0 ? max : 1) / step - 1e-9) * step);
  const ticks: number[] = [];
  for (let i = 0; i <= Math.round(top / step) && i <= 20; i++) ticks.push(i * step);
  return { top, ticks };
}

function formatTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${+(v / 1e3).toPrecision(3)}k`;
  return String(+v.toPrecision(3));
}

const f = (x: number) => (Math.round(x * 10) / 10).toString();

interface Axis {
  toY: (v: number) => number | null;
  ticks: number[];
}

function yAxis(values: number[], scale: Scale): Axis {
  if (scale === 'log') {
    const positive = values.filter((v) => v > 0);
    const lo = Math.floor(Math.log10(positive.length ? Math.min(...positive) : 0.1));
    const hi = Math.max(lo + 1, Math.ceil(Math.log10(positive.length ? Math.max(...positive) : 1)));
    const ticks: number[] = [];
    for (let e = lo; e <= hi; e++) ticks.push(10 ** e);
    return { ticks, toY: (v) => (v > 0 ? MARGIN.top + PLOT_H * (1 - (Math.log10(v) - lo) / (hi - lo)) : null) };
  }
  const { top, ticks } = linearTicks(Math.max(0, ...values), 4);
  return { ticks, toY: (v) => MARGIN.top + PLOT_H * (1 - v / top) };
}

function frame(id: string, title: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" id="${escapeXml(id)}" class="chart" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}" role="img" aria-label="${escapeXml(title)}">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect class="plot" x="${MARGIN.left}" y="${MARGIN.top}" width="${PLOT_W}" height="${PLOT_H}" fill="#fff" stroke="#ccc"/>`,
    ...body,
    '</svg>',
  ].join('\n');
}

function gridY(axis: Axis, yLabel: string): string[] {
  const out: string[] = [];
  for (const tick of axis.ticks) {
    const y = axis.toY(tick);
    if (y === null) continue;
    out.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left + PLOT_W}" y1="${f(y)}" y2="${f(y)}" stroke="#eee"/>`);
    out.push(`<text x="${MARGIN.left - 5}" y="${f(y + 4)}" text-anchor="end" class="tick">${formatTick(tick)}</text>`);
  }
  out.push(`<text transform="translate(13 ${MARGIN.top + PLOT_H / 2}) rotate(-90)" text-anchor="middle" class="axis">${escapeXml(yLabel)}</text>`);
  return out;
}

/** Lines over time (seconds), with events as vertical lines and spans shaded behind. */
export function timeChartSvg(spec: TimeChartSpec): string {
  const scale = spec.scale ?? 'linear';
  const xMax = spec.xMax > 0 ? spec.xMax : 1;
  const toX = (x: number) => MARGIN.left + (PLOT_W * Math.min(Math.max(x, 0), xMax)) / xMax;
  const values = spec.series.flatMap((s) => s.points.map(([, y]) => y).filter((y): y is number => y !== null && Number.isFinite(y)));
  const axis = yAxis(values, scale);
  const body: string[] = [];
  for (const span of spec.spans ?? []) {
    const x1 = toX(span.from);
    body.push(`<rect class="span" data-span="${escapeXml(span.label)}" x="${f(x1)}" y="${MARGIN.top}" width="${f(Math.max(1, toX(span.to) - x1))}" height="${PLOT_H}" fill="${span.color}" fill-opacity="0.12"><title>${escapeXml(span.label)}</title></rect>`);
  }
  body.push(...gridY(axis, spec.yLabel));
  const xTicks = linearTicks(xMax, 8).ticks.filter((t) => t <= xMax + 1e-9);
  for (const tick of xTicks) {
    body.push(`<text x="${f(toX(tick))}" y="${MARGIN.top + PLOT_H + 15}" text-anchor="middle" class="tick">${formatTick(tick)}</text>`);
  }
  body.push(`<text x="${MARGIN.left + PLOT_W / 2}" y="${HEIGHT - 3}" text-anchor="middle" class="axis">seconds into the run</text>`);
  for (const m of spec.markers ?? []) {
    const x = f(toX(m.x));
    body.push(`<line class="marker" data-event="${escapeXml(m.kind)}" x1="${x}" x2="${x}" y1="${MARGIN.top}" y2="${MARGIN.top + PLOT_H}" stroke="${m.color}" stroke-width="1.5"${m.dash ? ` stroke-dasharray="${m.dash}"` : ''}><title>${escapeXml(m.label)}</title></line>`);
  }
  for (const s of spec.series) {
    let d = '';
    let pen = false;
    const dots: string[] = [];
    for (const [x, y] of s.points) {
      const py = y === null || !Number.isFinite(y) ? null : axis.toY(y);
      if (py === null) {
        pen = false;
        continue;
      }
      d += `${pen ? 'L' : 'M'}${f(toX(x))} ${f(py)}`;
      pen = true;
      if (s.points.length <= MAX_DOTS) dots.push(`<circle cx="${f(toX(x))}" cy="${f(py)}" r="2.2" fill="${s.color}"><title>${escapeXml(`${s.name} at ${x} s: ${y}`)}</title></circle>`);
    }
    body.push(`<g class="series" data-series="${escapeXml(s.name)}"><title>${escapeXml(s.name)}</title><path data-series="${escapeXml(s.name)}" d="${d}" fill="none" stroke="${s.color}" stroke-width="1.8"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>${dots.join('')}</g>`);
  }
  return frame(spec.id, spec.title, body);
}

/** Bars per bucket on a logarithmic millisecond axis; several runs side by side within each bucket. */
export function histogramSvg(id: string, title: string, runs: HistogramRun[]): string {
  const all = runs.flatMap((r) => r.buckets);
  const lo = Math.log10(all.length ? Math.min(...all.map((b) => b.fromMs)) : 0.001);
  const hi = Math.log10(all.length ? Math.max(...all.map((b) => b.toMs)) : 1);
  const span = hi - lo > 0 ? hi - lo : 1;
  const toX = (ms: number) => MARGIN.left + (PLOT_W * (Math.log10(ms) - lo)) / span;
  // Shares, not counts, so runs of different lengths compare.
  const shares = runs.map((r) => {
    const total = r.buckets.reduce((n, b) => n + b.count, 0) || 1;
    return r.buckets.map((b) => ({ ...b, share: (100 * b.count) / total }));
  });
  const axis = yAxis(shares.flat().map((b) => b.share), 'linear');
  const body = gridY(axis, '% of callouts');
  for (let e = Math.ceil(lo); e <= Math.floor(hi); e++) {
    const x = f(toX(10 ** e));
    body.push(`<line x1="${x}" x2="${x}" y1="${MARGIN.top}" y2="${MARGIN.top + PLOT_H}" stroke="#eee"/>`);
    body.push(`<text x="${x}" y="${MARGIN.top + PLOT_H + 15}" text-anchor="middle" class="tick">${formatTick(10 ** e)}</text>`);
  }
  body.push(`<text x="${MARGIN.left + PLOT_W / 2}" y="${HEIGHT - 3}" text-anchor="middle" class="axis">callout latency, ms (log scale)</text>`);
  runs.forEach((run, i) => {
    const bars = shares[i]!.filter((b) => b.count > 0).map((b) => {
      const x0 = toX(b.fromMs);
      const w = (toX(b.toMs) - x0) / runs.length;
      const y = axis.toY(b.share)!;
      return `<rect x="${f(x0 + i * w)}" y="${f(y)}" width="${f(Math.max(0.5, w - 0.5))}" height="${f(MARGIN.top + PLOT_H - y)}" fill="${run.color}"><title>${escapeXml(`${run.name}: ${b.count} callouts (${b.share.toFixed(2)}%) from ${b.fromMs} to ${b.toMs} ms`)}</title></rect>`;
    });
    body.push(`<g class="series" data-series="${escapeXml(run.name)}">${bars.join('')}</g>`);
  });
  return frame(id, title, body);
}
