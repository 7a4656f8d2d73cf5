/**
 * Per-library hook statistics: calls, failures by kind, restarts, state and
 * round-trip latency; what `hooks-status` will show.
 */
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import { FAILURE_KINDS, type FailureKind } from './protocol.js';

export type LibraryState = 'starting' | 'ready' | 'restarting' | 'quarantined' | 'stopped';

export interface LibraryStatsSnapshot {
  library: string;
  index: number;
  state: LibraryState;
  /** Where the library runs: a worker thread, or a sandboxed child process. */
  isolation: 'thread' | 'process';
  multiThreadingCompatible: boolean;
  calls: number;
  failures: Record<FailureKind, number>;
  nonZeroReturns: number;
  timeouts: number;
  restarts: number;
  logLinesSuppressed: number;
  quarantineReason: string | null;
  lastFailure: { kind: FailureKind; message: string; at: string } | null;
  latencyUs: { p50: number; p90: number; p99: number; max: number; count: number };
}

export class LibraryStats {
  state: LibraryState = 'starting';
  isolation: 'thread' | 'process' = 'thread';
  multiThreadingCompatible = false;
  calls = 0;
  nonZeroReturns = 0;
  restarts = 0;
  logLinesSuppressed = 0;
  quarantineReason: string | null = null;
  lastFailure: LibraryStatsSnapshot['lastFailure'] = null;
  readonly failures = Object.fromEntries(FAILURE_KINDS.map((k) => [k, 0])) as Record<FailureKind, number>;
  private readonly latency: RecordableHistogram = createHistogram({ lowest: 1, highest: 60_000_000, figures: 3 });

  constructor(
    readonly library: string,
    readonly index: number,
  ) {}

  recordLatency(microseconds: number): void {
    this.latency.record(Math.max(1, Math.round(microseconds)));
  }

  recordFailure(kind: FailureKind, message: string): void {
    this.failures[kind]++;
    this.lastFailure = { kind, message, at: new Date().toISOString() };
  }

  snapshot(): LibraryStatsSnapshot {
    const h = this.latency;
    const count = h.count;
    return {
      library: this.library,
      index: this.index,
      state: this.state,
      isolation: this.isolation,
      multiThreadingCompatible: this.multiThreadingCompatible,
      calls: this.calls,
      failures: { ...this.failures },
      nonZeroReturns: this.nonZeroReturns,
      timeouts: this.failures.timeout,
      restarts: this.restarts,
      logLinesSuppressed: this.logLinesSuppressed,
      quarantineReason: this.quarantineReason,
      lastFailure: this.lastFailure,
      latencyUs: count === 0
        ? { p50: 0, p90: 0, p99: 0, max: 0, count: 0 }
        : { p50: h.percentile(50), p90: h.percentile(90), p99: h.percentile(99), max: h.max, count },
    };
  }
}
