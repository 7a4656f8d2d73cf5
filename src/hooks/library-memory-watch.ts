/**
 * LibraryMemoryWatch: a library's memory outside its V8 heap counts against its
 * limit ('max-external-mb', by default its 'max-heap-mb'). V8's heap limit
 * (resourceLimits, --max-old-space-size) does not cover ArrayBuffers, Buffers,
 * typed arrays, WebAssembly memories or external strings: a worker thread that
 * keeps them grows the daemon's resident memory without end.
 *
 * Three checks, each ending the library's worker as an `oom` failure (the host
 * terminates it; restarts, `on-failure` and quarantine apply as for a heap
 * overflow):
 *
 *  - a thread's own report (workers/memory-report.ts, every
 *    MEMORY_REPORT_INTERVAL_MS): external bytes above the limit;
 *  - a thread that stopped reporting (its library blocks its event loop, or
 *    allocates inside one long callout) is watched from the host's side: a host
 *    timer samples the process's resident memory, and growth that nothing else
 *    explains is blamed on it (see `checkSilentThreads`);
 *  - a process-mode library: the host reads the sandbox's resident memory from
 *    /proc itself, every tick, whatever the library reports or not.
 *
 * One timer serves every watched library, and runs only while one is watched.
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { MEMORY_REPORT_INTERVAL_MS } from './protocol.js';

const MB = 1024 * 1024;
/** How often the host samples resident memory. */
export const MEMORY_SAMPLE_INTERVAL_MS = 100;
/** A thread with no report for this long is silent: its event loop is not running. */
const SILENT_AFTER_MS = 2.5 * MEMORY_REPORT_INTERVAL_MS;
/**
 * What a worker thread holds beyond its heap and external memory (its stack,
 * its isolate's and Node's own native state), and what the resident memory of
 * the rest of the process moves by unexplained: growth within this margin is
 * never blamed on anyone.
 */
const THREAD_SLACK_BYTES = 32 * MB;
/** A sandboxed process's own runtime (Node, its young generation, the bwrap processes), beyond the library's limits. */
const PROCESS_RUNTIME_BYTES = 64 * MB;
/** What a sandboxed process holds resident with an empty heap (Node's code and its own state; Node 20 idles at ~40 MB). */
const PROCESS_IDLE_BYTES = 40 * MB;

export interface MemoryLimits {
  heapMb: number;
  externalMb: number;
}

interface Baseline {
  rss: number;
  main: number;
  footprints: Map<LibraryMemoryWatch, number>;
}

type OverLimit = (message: string) => void;

/** One library's watch, across its successive workers. */
export class LibraryMemoryWatch {
  /** @internal the sampler */ mode: 'thread' | 'process' | undefined;
  /** @internal */ onOverLimit: OverLimit | undefined;
  /** @internal */ pid: (() => number | undefined) | undefined;
  /** @internal last report: heap + external, and when */ footprint = 0;
  /** @internal */ external = 0;
  /** @internal */ reportedAt = 0;
  /** @internal the process at this thread's last tick with a fresh report */ baseline: Baseline | undefined;
  /** The most resident memory sampled of the current (or last) sandbox: the host's own evidence of how near its heap limit it came. */
  peakResidentBytes = 0;

  constructor(
    readonly library: string,
    readonly limits: MemoryLimits,
  ) {}

  get externalLimitBytes(): number {
    return this.limits.externalMb * MB;
  }

  /** What the thread may hold before blame: its heap limit, its external limit, and the slack. */
  get threadBudgetBytes(): number {
    return (this.limits.heapMb + this.limits.externalMb) * MB + THREAD_SLACK_BYTES;
  }

  get processBudgetBytes(): number {
    return (this.limits.heapMb + this.limits.externalMb) * MB + PROCESS_RUNTIME_BYTES;
  }

  /** Watches a new worker thread; `onOverLimit` ends it. */
  watchThread(onOverLimit: OverLimit): void {
    this.begin('thread', onOverLimit);
  }

  /** Watches a new sandboxed process, whose outermost PID `pid` gives. */
  watchProcess(pid: () => number | undefined, onOverLimit: OverLimit): void {
    this.pid = pid;
    this.peakResidentBytes = 0;
    this.begin('process', onOverLimit);
  }

  /**
   * Whether the host saw the sandbox hold at least half its heap limit beyond its idle runtime: what a
   * process's own "heap out of memory" on stderr needs before it counts as `oom`
   * (a library can write that text itself). Half, not all: V8 gives up on a
   * large request before the heap is full, and the host samples only every
   * MEMORY_SAMPLE_INTERVAL_MS.
   */
  heapEvidence(): { nearLimit: boolean; peakMb: number } {
    return { nearLimit: this.peakResidentBytes >= (this.limits.heapMb * MB) / 2 + PROCESS_IDLE_BYTES, peakMb: mb(this.peakResidentBytes) };
  }

  /** A worker's MemoryReport, validated by the host's schema but not believed beyond it. */
  report(heapBytes: number, externalBytes: number): void {
    if (this.mode !== 'thread') return;
    this.footprint = heapBytes + externalBytes;
    this.external = externalBytes;
    this.reportedAt = performance.now();
    if (externalBytes > this.externalLimitBytes) {
      this.fire(`${mb(externalBytes)} MB outside the V8 heap (ArrayBuffers, Buffers, WebAssembly memories), past its limit of ${this.limits.externalMb} MB (max-external-mb)`);
    }
  }

  /** The worker is gone: nothing more to watch until the next one. */
  unwatch(): void {
    this.mode = undefined;
    this.onOverLimit = undefined;
    this.pid = undefined;
    this.baseline = undefined;
    sampler.remove(this);
  }

  /** @internal */
  fire(message: string): void {
    const onOverLimit = this.onOverLimit;
    if (!onOverLimit) return;
    // Once per worker: the host terminates it, and the next one is watched afresh.
    this.onOverLimit = undefined;
    onOverLimit(message);
  }

  private begin(mode: 'thread' | 'process', onOverLimit: OverLimit): void {
    this.mode = mode;
    this.onOverLimit = onOverLimit;
    this.footprint = 0;
    this.external = 0;
    this.reportedAt = performance.now();
    this.baseline = undefined;
    sampler.add(this);
  }
}

/** The host timer behind every watch. */
class MemorySampler {
  private readonly watches = new Set<LibraryMemoryWatch>();
  private timer: NodeJS.Timeout | undefined;

  add(watch: LibraryMemoryWatch): void {
    this.watches.add(watch);
    // Unref'd: watching memory must never be what keeps the daemon alive.
    this.timer ??= setInterval(() => this.tick(), MEMORY_SAMPLE_INTERVAL_MS).unref();
  }

  remove(watch: LibraryMemoryWatch): void {
    this.watches.delete(watch);
    if (this.watches.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private tick(): void {
    const threads: LibraryMemoryWatch[] = [];
    for (const watch of this.watches) {
      if (watch.mode === 'thread') threads.push(watch);
      else if (watch.mode === 'process') checkProcess(watch);
    }
    if (threads.length > 0) checkSilentThreads(threads);
  }
}

const sampler = new MemorySampler();

/**
 * Threads share the daemon's process; only what a thread reports is its own. A
 * thread that stops reporting is silent (its loop is blocked); it may be
 * allocating. Each tick:
 *
 *  - a thread that reported recently takes a baseline: the process's resident
 *    memory, the main thread's heap + external, every thread's last report;
 *  - for a silent thread, the growth since its baseline that nothing explains is
 *    the process's resident growth, less the main thread's growth and less what
 *    every thread still reporting says it grew by (shrinking explains nothing:
 *    freed memory need not leave the resident set);
 *  - when exactly one thread is silent, that growth is its own: past its last
 *    report + the growth > max-heap-mb + max-external-mb + a slack, it is over;
 *  - when several are silent, the host cannot tell whose the growth is; only when
 *    the growth since they all fell silent exceeds the sum of what each may
 *    still grow (so at least one is over its limit) are they all ended.
 *
 * A healthy library is never blamed for a healthy neighbour's memory: that is
 * reported, or under the slack. It can be blamed for a leaking neighbour's only
 * when both block their loops at once, and then only past both their budgets.
 */
function checkSilentThreads(threads: LibraryMemoryWatch[]): void {
  const now = performance.now();
  const usage = process.memoryUsage();
  const main = usage.heapTotal + usage.external;
  const silent = threads.filter((t) => now - t.reportedAt > SILENT_AFTER_MS);
  for (const watch of threads) {
    if (silent.includes(watch) && watch.baseline) continue;
    watch.baseline = { rss: usage.rss, main, footprints: new Map(threads.map((t) => [t, t.footprint])) };
  }
  if (silent.length === 0) return;
  const unexplained = (watch: LibraryMemoryWatch): number => {
    const base = watch.baseline!;
    let growth = usage.rss - base.rss - Math.max(0, main - base.main);
    for (const other of threads) {
      if (other === watch || silent.includes(other)) continue;
      growth -= Math.max(0, other.footprint - (base.footprints.get(other) ?? 0));
    }
    return Math.max(0, growth);
  };
  if (silent.length === 1) {
    const watch = silent[0]!;
    const held = watch.footprint + unexplained(watch);
    if (held > watch.threadBudgetBytes) {
      watch.fire(`its event loop stopped answering while the daemon's memory grew: about ${mb(held)} MB, past its limits of ${watch.limits.heapMb} MB heap + ${watch.limits.externalMb} MB outside it (max-heap-mb + max-external-mb)`);
    }
    return;
  }
  const growth = Math.min(...silent.map(unexplained));
  const room = silent.reduce((sum, watch) => sum + Math.max(0, watch.threadBudgetBytes - watch.footprint), 0);
  if (growth > room) {
    for (const watch of silent) {
      watch.fire(`${silent.length} libraries' event loops stopped answering while the daemon's memory grew by ${mb(growth)} MB, past what all of them may hold together; each is ended`);
    }
  }
}

function checkProcess(watch: LibraryMemoryWatch): void {
  const pid = watch.pid?.();
  if (pid === undefined) return;
  const rss = treeResidentBytes(pid);
  watch.peakResidentBytes = Math.max(watch.peakResidentBytes, rss);
  if (rss > watch.processBudgetBytes) {
    watch.fire(`its sandbox holds ${mb(rss)} MB resident, past its limits of ${watch.limits.heapMb} MB heap + ${watch.limits.externalMb} MB outside it (max-heap-mb + max-external-mb) + ${PROCESS_RUNTIME_BYTES / MB} MB for the runtime`);
  }
}

/** Resident memory of `pid` and its descendants (prlimit became bwrap; bwrap's init; node), from /proc. */
function treeResidentBytes(pid: number): number {
  let total = 0;
  const queue = [pid];
  // A sandbox is three processes deep; the bound keeps a library that forks (it cannot) from making this walk long.
  for (let visited = 0; queue.length > 0 && visited < 16; visited++) {
    const next = queue.shift()!;
    try {
      // statm's second field: resident pages.
      total += Number(readProcFile(`/proc/${next}/statm`).split(' ')[1]) * PAGE_BYTES || 0;
      for (const child of readProcFile(`/proc/${next}/task/${next}/children`).split(' ')) if (child) queue.push(Number(child));
    } catch {
      /* gone meanwhile */
    }
  }
  return total;
}

const procBuffer = Buffer.alloc(4096);
/** A small /proc file: open, one read, close (readFileSync's stat and growth cost this path 3× more, ~40 µs). */
function readProcFile(path: string): string {
  const fd = openSync(path, 'r');
  try {
    return procBuffer.toString('latin1', 0, readSync(fd, procBuffer, 0, procBuffer.length, 0));
  } finally {
    closeSync(fd);
  }
}

/** The kernel's page size, from this process's resident memory counted both ways (Node has no API for it). */
const PAGE_BYTES = (() => {
  try {
    const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'latin1'))?.[1]);
    const pages = Number(readProcFile('/proc/self/statm').split(' ')[1]);
    const size = 2 ** Math.round(Math.log2((kb * 1024) / pages));
    return Number.isFinite(size) && size >= 4096 ? size : 4096;
  } catch {
    return 4096;
  }
})();

function mb(bytes: number): number {
  return Math.round(bytes / MB);
}
