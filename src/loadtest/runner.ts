/**
 * The isolation load tester's engine: loads a library (or a chain) in a
 * HooksManager, exactly as the server does, and drives callouts on one hook
 * point at a chosen concurrency until a count or a duration (always one of
 * them, and never past MAX_DURATION_S). Every callout issued ends in exactly
 * one outcome; worker restarts and quarantines are counted from the host's
 * log, independently of the library statistics they are compared with.
 */
import { createHistogram, monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { CalloutHandle } from '../hooks/callout-handle.js';
import { HooksManager, type ChainReport } from '../hooks/hooks-manager.js';
import type { HookLibraryConfigInput } from '../hooks/library-config.js';
import type { LibraryStatsSnapshot } from '../hooks/library-stats.js';
import { NextStep, type FailureKind } from '../hooks/protocol.js';
import { Logger, stderrSink, type LogRecord } from '../log/logger.js';
import { argumentFiller } from './arguments.js';
import { heldKeyRoundTrip, isHeldKeyArgument, type HeldKeyOutcome } from './held-key-round-trip.js';
import { generatedConfiguration, type LoadtestConfiguration, type LoadtestServer } from './configuration.js';

/** Outcomes of a callout as the table shows them; `other` collects load, protocol and io-callback. */
export const OUTCOMES = ['ok', 'throw', 'reject', 'timeout', 'oom', 'exit', 'crash', 'invalid', 'log-flood', 'quarantined', 'other'] as const;
export type Outcome = (typeof OUTCOMES)[number];

export const MAX_DURATION_S = 3600;
export const MAX_COUNT = 1_000_000_000;
export const MAX_CONCURRENCY = 10_000;
/** Sampling interval of the event-loop delay monitor. */
const LOOP_RESOLUTION_MS = 2;
/** Default length of one timeline interval. */
export const DEFAULT_INTERVAL_MS = 500;
/** Latency histogram buckets per doubling: fine enough to see modes, few enough to draw. */
const BUCKETS_PER_OCTAVE = 4;

export interface LoadtestOptions {
  libraries: HookLibraryConfigInput[];
  hook: string;
  concurrency: number;
  /** Seconds; at least one of durationS and count is set (the CLI defaults to 10 s). */
  durationS?: number;
  count?: number;
  seed: number;
  /** hooks-restart a quarantined library and go on. */
  revive?: boolean;
  /** Called about every `progressIntervalMs` with the figures so far. */
  onProgress?: (progress: LoadtestProgress) => void;
  progressIntervalMs?: number;
  /** The hook host's log records (default: counted, not printed). */
  onLog?: (record: LogRecord) => void;
  /** Stops issuing callouts; those in flight still end and are counted. */
  signal?: AbortSignal;
  /** Where relative library paths are resolved from. */
  baseDir?: string;
  /** What d2_srv_configured gets before the run and select_key's arguments are drawn from (default: generated). */
  configuration?: LoadtestConfiguration;
  /** Length of one timeline interval (default DEFAULT_INTERVAL_MS). */
  intervalMs?: number;
}

/** One interval of the run, ending at `t`. */
export interface TimelinePoint {
  /** Seconds since the first callout was issued, at the end of the interval. */
  t: number;
  /** Callouts that ended in the interval. */
  callouts: number;
  calloutsPerSecond: number;
  /** Over the callouts that ended in the interval; null when none did. */
  latencyMs: { p50: number; p99: number } | null;
  /** Outcomes of the callouts that ended in the interval. */
  outcomes: Record<Outcome, number>;
  restarts: number;
  quarantines: number;
  /** Main-thread event-loop delay in the interval (beyond the sampling interval). */
  eventLoopDelayMs: { p99: number; max: number };
  rssMb: number;
  heapUsedMb: number;
}

/** A worker replacement, a quarantine or a revive, when the host logged it. */
export interface LoadtestEvent {
  /** Seconds since the first callout was issued (0 for one before). */
  t: number;
  kind: 'restart' | 'quarantine' | 'revive';
  text: string;
}

/** One bar of the latency histogram: callouts whose latency was at least fromMs and below toMs. */
export interface LatencyBucket {
  fromMs: number;
  toMs: number;
  count: number;
}

export interface LoadtestProgress {
  elapsedS: number;
  callouts: number;
  /** Callouts per second since the previous progress report. */
  rate: number;
  errors: number;
  restarts: number;
  quarantines: number;
}

export interface LoadtestReport {
  hook: string;
  libraries: string[];
  concurrency: number;
  seed: number;
  limits: { durationS: number | null; count: number | null };
  stoppedBy: 'count' | 'duration' | 'signal';
  elapsedS: number;
  /** Callouts issued; every one ended in exactly one outcome. */
  callouts: number;
  calloutsPerSecond: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  outcomes: Record<Outcome, number>;
  /** Callouts that returned non-zero (not failures: Kea only logs them). */
  nonZeroReturns: number;
  /** Worker replacements seen in the host's log (HOOKS_LIBRARY_RESTARTING). */
  restarts: number;
  /** Quarantines seen in the host's log (HOOKS_LIBRARY_QUARANTINED). */
  quarantines: number;
  /** hooks-restart calls made because of --revive. */
  revives: number;
  logLinesSuppressed: number;
  eventLoopDelayMs: { p50: number; p99: number; max: number };
  memoryMb: { rss: number; heapUsed: number; peakRss: number; peakHeapUsed: number };
  /** The library statistics at the end of the run, before unloading (d2_srv_configured before the run included). */
  libraryStatistics: LibraryStatsSnapshot[];
  /** The configuration d2_srv_configured got first: its DNS servers and keys (secrets left out). */
  configuration: {
    source: string;
    servers: { domain: string; direction: LoadtestServer['direction']; 'ip-address': string; port: number; 'key-name': string | null }[];
    keys: { name: string; algorithm: string; 'digest-bits'?: number }[];
  };
  /** Interval length of `timeline`. */
  intervalMs: number;
  timeline: TimelinePoint[];
  events: LoadtestEvent[];
  /** All callouts' latencies, BUCKETS_PER_OCTAVE buckets per doubling, from the first non-empty bucket to the last. */
  latencyHistogram: LatencyBucket[];
  /**
   * select_key only, over the callouts that ended ok: the key D2 would have used kept, changed
   * (another key or none), or the server skipped. A library whose mapping matches none of the
   * servers keeps every key.
   */
  keyChoices?: { kept: number; changed: number; skipped: number };
  /**
   * select_key only, when a library handed back a key it holds: after each such callout the
   * load tester signs an update with it and checks a signed answer, as the daemon does
   * (held-key-round-trip.ts). `ok` + `sign-failed` + `verify-failed` + `rejected` = roundTrips;
   * the library's own failures (throw, timeout, invalid-argument) are in libraryStatistics.
   */
  heldKey?: { roundTrips: number; outcomes: Record<HeldKeyOutcome, number>; latencyMs: { p50: number; p99: number; max: number } };
}

export class LoadtestError extends Error {
  override name = 'LoadtestError';
}

function outcomeOf(report: ChainReport): Outcome {
  const kind: FailureKind | undefined = report.failures[0]?.failure.kind;
  switch (kind) {
    case undefined:
      return 'ok';
    case 'invalid-argument':
      return 'invalid';
    case 'load':
    case 'cpu-limit':
    case 'protocol':
    case 'io-callback':
    case 'io-overload':
      return 'other';
    default:
      return kind;
  }
}

/** A key argument's identity: its name as DNS compares it, or '' for none. */
function keyName(key: unknown): string {
  const name = typeof key === 'object' && key !== null ? (key as { name?: unknown }).name : undefined;
  return typeof name === 'string' ? name.toLowerCase().replace(/\.$/, '') : '';
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;
const mb = (bytes: number) => Math.round((bytes / 1048576) * 10) / 10;

export async function runLoadtest(options: LoadtestOptions): Promise<LoadtestReport> {
  const { hook, seed } = options;
  const concurrency = Math.floor(options.concurrency);
  if (!(concurrency >= 1 && concurrency <= MAX_CONCURRENCY)) throw new LoadtestError(`concurrency must be 1 to ${MAX_CONCURRENCY}`);
  const count = options.count === undefined ? undefined : Math.floor(options.count);
  if (count !== undefined && !(count >= 1 && count <= MAX_COUNT)) throw new LoadtestError(`count must be 1 to ${MAX_COUNT}`);
  if (options.durationS !== undefined && !(options.durationS > 0 && options.durationS <= MAX_DURATION_S)) {
    throw new LoadtestError(`duration must be more than 0 and at most ${MAX_DURATION_S} s`);
  }
  if (count === undefined && options.durationS === undefined) throw new LoadtestError('give a duration, a count, or both');
  const durationS = Math.min(options.durationS ?? MAX_DURATION_S, MAX_DURATION_S);

  const intervalMs = Math.floor(options.intervalMs ?? DEFAULT_INTERVAL_MS);
  if (!(intervalMs >= 10 && intervalMs <= 600_000)) throw new LoadtestError('interval must be 10 to 600000 ms');

  // The host's log: counted (restarts, quarantines) and timed for the timeline, handed on when asked.
  let restarts = 0;
  let quarantines = 0;
  let started: number | undefined;
  const events: LoadtestEvent[] = [];
  const eventAt = (kind: LoadtestEvent['kind'], text: string) =>
    events.push({ t: started === undefined ? 0 : round3(Math.max(0, performance.now() - started) / 1000), kind, text });
  Logger.setSink((record) => {
    if (record.id === 'HOOKS_LIBRARY_RESTARTING') {
      restarts++;
      eventAt('restart', record.text);
    } else if (record.id === 'HOOKS_LIBRARY_QUARANTINED') {
      quarantines++;
      eventAt('quarantine', record.text);
    }
    options.onLog?.(record);
  });

  const hooks = new HooksManager({ baseDir: options.baseDir ?? process.cwd() });
  try {
    try {
      await hooks.loadLibraries(options.libraries);
    } catch (err) {
      throw new LoadtestError(`cannot load the libraries: ${(err as Error).message}`);
    }
    if (!hooks.calloutsPresent(hook)) {
      throw new LoadtestError(`no library registers a callout on ${hook} (${hooks.getLibraryNames().join(', ')})`);
    }
    const configuration = options.configuration ?? generatedConfiguration();
    let fill;
    try {
      fill = argumentFiller(hook, seed, hooks.io, configuration);
    } catch (err) {
      throw new LoadtestError((err as Error).message);
    }
    // As the daemon: d2_srv_configured with the configuration before anything else. Numbered 0,
    // so a library that draws from loadtest_seq (fault-injection) treats it as outside the run.
    const configured = await hooks.configured(configuration.json, configuration.config, { loadtest_seq: 0 });
    if (!configured.accepted) throw new LoadtestError(`d2_srv_configured refused the configuration (${configuration.source}): ${configured.error}`);
    const keyChoices = hook === 'select_key' ? { kept: 0, changed: 0, skipped: 0 } : undefined;
    const heldOutcomes: Record<HeldKeyOutcome, number> = { ok: 0, 'sign-failed': 0, 'verify-failed': 0, rejected: 0 };
    const heldLatency = createHistogram({ lowest: 1, highest: 3_600_000_000, figures: 3 });

    const bareHandle = hook === 'context_create' || hook === 'context_destroy';
    const outcomes = Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>;
    const latency = createHistogram({ lowest: 1, highest: 3_600_000_000, figures: 3 });
    const loopDelay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
    // Per interval, reset at each interval's end; the run's totals come from the two above.
    const intervalLatency = createHistogram({ lowest: 1, highest: 3_600_000_000, figures: 3 });
    const intervalLoopDelay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
    const buckets: number[] = [];
    const intervalOutcomes = Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>;
    const timeline: TimelinePoint[] = [];
    let issued = 0;
    let completed = 0;
    let errors = 0;
    let revives = 0;
    let reviving: Promise<void> | undefined;
    let stoppedBy: LoadtestReport['stoppedBy'] | undefined;
    let peakRss = 0;
    let peakHeap = 0;
    const sampleMemory = () => {
      const m = process.memoryUsage();
      peakRss = Math.max(peakRss, m.rss);
      peakHeap = Math.max(peakHeap, m.heapUsed);
      return m;
    };

    started = performance.now();
    const runStart = started;
    const deadline = started + durationS * 1000;
    let interval = { at: started, completed: 0, restarts, quarantines };
    const closeInterval = () => {
      const now = performance.now();
      const memory = sampleMemory();
      const callouts = completed - interval.completed;
      const loopNs = (x: number) => round3(Math.max(0, x / 1e6 - LOOP_RESOLUTION_MS));
      timeline.push({
        t: round3((now - runStart) / 1000),
        callouts,
        calloutsPerSecond: Math.round((callouts * 1000 / Math.max(1, now - interval.at)) * 10) / 10,
        latencyMs: intervalLatency.count === 0 ? null : { p50: round3(intervalLatency.percentile(50) / 1000), p99: round3(intervalLatency.percentile(99) / 1000) },
        outcomes: { ...intervalOutcomes },
        restarts: restarts - interval.restarts,
        quarantines: quarantines - interval.quarantines,
        eventLoopDelayMs: intervalLoopDelay.count === 0 ? { p99: 0, max: 0 } : { p99: loopNs(intervalLoopDelay.percentile(99)), max: loopNs(intervalLoopDelay.max) },
        rssMb: mb(memory.rss),
        heapUsedMb: mb(memory.heapUsed),
      });
      interval = { at: now, completed, restarts, quarantines };
      intervalLatency.reset();
      intervalLoopDelay.reset();
      for (const o of OUTCOMES) intervalOutcomes[o] = 0;
    };
    const intervalTimer = setInterval(closeInterval, intervalMs);
    intervalTimer.unref();
    let lastProgress = { at: started, completed: 0 };
    const progressTimer = setInterval(() => {
      sampleMemory();
      if (!options.onProgress) return;
      const now = performance.now();
      const rate = ((completed - lastProgress.completed) * 1000) / Math.max(1, now - lastProgress.at);
      lastProgress = { at: now, completed };
      options.onProgress({ elapsedS: (now - runStart) / 1000, callouts: completed, rate, errors, restarts, quarantines });
    }, Math.max(10, options.progressIntervalMs ?? 500));
    progressTimer.unref();

    const revive = (library: string): Promise<void> => {
      reviving ??= hooks
        .restartLibrary(library)
        .then(
          () => void (revives++, eventAt('revive', `hooks-restart ${library}`)),
          (err: unknown) => void (revives++, eventAt('revive', `hooks-restart ${library} failed: ${(err as Error).message}`)),
        )
        .finally(() => (reviving = undefined));
      return reviving;
    };

    const lane = async (): Promise<void> => {
      // Bounded by the count (or MAX_COUNT) and by the deadline, whichever comes first.
      for (let i = 0; i < MAX_COUNT; i++) {
        if (options.signal?.aborted) stoppedBy ??= 'signal';
        else if (count !== undefined && issued >= count) stoppedBy ??= 'count';
        else if (performance.now() >= deadline) stoppedBy ??= 'duration';
        if (stoppedBy) return;
        const seq = ++issued;
        const t0 = performance.now();
        // As the server: context_create runs when a handle is made, context_destroy when it goes;
        // driving those hook points themselves takes a bare handle, or they would run twice.
        const handle = bareHandle ? new CalloutHandle() : await hooks.createCalloutHandle();
        fill(handle, seq);
        const given = keyChoices && keyName(handle.getArgument('tsig_key'));
        const report = await hooks.callCallouts(hook, handle);
        const us = Math.max(1, Math.round((performance.now() - t0) * 1000));
        latency.record(us);
        intervalLatency.record(us);
        const bucket = Math.floor(Math.log2(us) * BUCKETS_PER_OCTAVE);
        buckets[bucket] = (buckets[bucket] ?? 0) + 1;
        const outcome = outcomeOf(report);
        outcomes[outcome]++;
        intervalOutcomes[outcome]++;
        if (keyChoices && outcome === 'ok') {
          if (hooks.nextStep(hook, handle) !== NextStep.CONTINUE) keyChoices.skipped++;
          else if (keyName(handle.hasArgument('tsig_key') ? handle.getArgument('tsig_key') : null) === given) keyChoices.kept++;
          else keyChoices.changed++;
          const chosen = handle.hasArgument('tsig_key') ? handle.getArgument('tsig_key') : null;
          if (isHeldKeyArgument(chosen)) {
            const h0 = performance.now();
            heldOutcomes[await heldKeyRoundTrip(chosen, 'example.com.', seq & 0xffff)]++;
            heldLatency.record(Math.max(1, Math.round((performance.now() - h0) * 1000)));
          }
        }
        completed++;
        if (outcome !== 'ok') errors++;
        await handle.destroy();
        if (outcome === 'quarantined' && options.revive) await revive(report.failures[0]!.library);
        // A quarantined library answers without a round trip: let timers and I/O in now and then.
        if ((i & 63) === 63) await yieldToLoop();
      }
    };

    loopDelay.enable();
    intervalLoopDelay.enable();
    try {
      await Promise.all(Array.from({ length: concurrency }, lane));
    } finally {
      loopDelay.disable();
      intervalLoopDelay.disable();
      clearInterval(progressTimer);
      clearInterval(intervalTimer);
    }
    // The last, partial interval (the run rarely ends on an interval boundary).
    if (completed > interval.completed || timeline.length === 0) closeInterval();
    const elapsedS = (performance.now() - runStart) / 1000;
    // One reading for both the final figures and the peaks, so a peak is never below the end.
    const memory = sampleMemory();
    const libraryStatistics = hooks.getLibraryStatistics();
    // The histogram holds whole sampling intervals: the delay is what exceeds the interval.
    const ns = (p: number) => round3(Math.max(0, loopDelay.percentile(p) / 1e6 - LOOP_RESOLUTION_MS));
    return {
      hook,
      libraries: hooks.getLibraryNames(),
      concurrency,
      seed,
      limits: { durationS: options.durationS ?? null, count: count ?? null },
      stoppedBy: stoppedBy ?? 'count',
      elapsedS: round3(elapsedS),
      callouts: issued,
      calloutsPerSecond: Math.round((completed / Math.max(elapsedS, 1e-6)) * 10) / 10,
      latencyMs: latency.count === 0
        ? { p50: 0, p90: 0, p99: 0, max: 0 }
        : { p50: round3(latency.percentile(50) / 1000), p90: round3(latency.percentile(90) / 1000), p99: round3(latency.percentile(99) / 1000), max: round3(latency.max / 1000) },
      outcomes,
      nonZeroReturns: libraryStatistics.reduce((n, s) => n + s.nonZeroReturns, 0),
      restarts,
      quarantines,
      revives,
      logLinesSuppressed: libraryStatistics.reduce((n, s) => n + s.logLinesSuppressed, 0),
      eventLoopDelayMs: { p50: ns(50), p99: ns(99), max: round3(Math.max(0, loopDelay.max / 1e6 - LOOP_RESOLUTION_MS)) },
      memoryMb: { rss: mb(memory.rss), heapUsed: mb(memory.heapUsed), peakRss: mb(peakRss), peakHeapUsed: mb(peakHeap) },
      libraryStatistics,
      configuration: {
        source: configuration.source,
        servers: configuration.servers.map((s) => ({
          domain: s.domain,
          direction: s.direction,
          'ip-address': s.current_server['ip-address'],
          port: s.current_server.port,
          'key-name': s.current_server['key-name'] ?? null,
        })),
        keys: configuration.keys.map(({ secret: _secret, ...named }) => named),
      },
      intervalMs,
      timeline,
      events,
      latencyHistogram: latencyBuckets(buckets),
      ...(keyChoices ? { keyChoices } : {}),
      ...(heldLatency.count > 0
        ? {
            heldKey: {
              roundTrips: heldLatency.count,
              outcomes: heldOutcomes,
              latencyMs: { p50: round3(heldLatency.percentile(50) / 1000), p99: round3(heldLatency.percentile(99) / 1000), max: round3(heldLatency.max / 1000) },
            },
          }
        : {}),
    };
  } finally {
    await hooks.unloadLibraries();
    Logger.setSink(stderrSink);
  }
}

function latencyBuckets(counts: number[]): LatencyBucket[] {
  const used = counts.flatMap((n, i) => (n ? [i] : []));
  if (used.length === 0) return [];
  const edge = (i: number) => round3(2 ** (i / BUCKETS_PER_OCTAVE) / 1000);
  const result: LatencyBucket[] = [];
  for (let i = used[0]!; i <= used[used.length - 1]!; i++) result.push({ fromMs: edge(i), toMs: edge(i + 1), count: counts[i] ?? 0 });
  return result;
}
