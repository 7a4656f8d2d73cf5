/**
 * `npm run bench`: what a hook round trip costs, next to what the thread
 * boundary itself costs, in one run (DESIGN.md, "Performance targets").
 *
 *  1. raw: a MessagePort ping-pong with a worker that echoes (bench/raw-echo-worker.ts);
 *  2. d2box: HooksManager.callCallouts('select_key') to a no-op library in its
 *     worker (bench/fixtures/noop-select-key.mjs), same payload;
 *     both at 1 and at 64 calls in flight; rounds interleaved, median of 3;
 *     for reference, also raw batched per turn (as d2box batches) and a
 *     select_key that sets tsig_key (bench/fixtures/set-key-select-key.mjs);
 *  3. their ratio;
 *  4. callCallouts on a hook point no library uses;
 *  5. the main thread's event-loop delay p99 while a library
 *     (bench/fixtures/spin-crash.mjs) spins past its deadline and exits, in a loop;
 *  6. the process isolation mode ("isolation": "process": a sandboxed child
 *     process, over its IPC channel) beside the thread mode: its callout round
 *     trip in the same interleaved rounds as 2 (same no-op library, same raw
 *     MessagePort baseline), for reference a raw IPC echo with a plain child
 *     (batched per turn, as d2box batches; no sandbox, which costs nothing per
 *     message); and, for both modes side by side, the time to start a library
 *     (open + load, then its first callout and its stop) and to restart it after
 *     its worker died (process.exit in a callout, or a hang past the callout
 *     deadline), from the failed callout's outcome to the next successful one.
 *
 * Every loop is bounded in count and in time. The last line is for machines:
 * `ratio_1=<x> ratio_64=<y> idle_hook_us=<z> loop_delay_p99_ms=<w>`; the line
 * before it, `process_ratio_1=… process_ratio_64=… process_thread_64=… start_ms_thread=…`,
 * holds section 6's figures. The process mode needs bwrap and prlimit (scripts/setup.sh);
 * without them section 6 says why it was skipped.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { Worker, MessageChannel, type MessagePort } from 'node:worker_threads';
import { createHistogram, monitorEventLoopDelay, performance, type RecordableHistogram } from 'node:perf_hooks';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { HooksManager } from '../src/hooks/hooks-manager.js';
import type { CalloutHandle } from '../src/hooks/callout-handle.js';
import { IOService } from '../src/hooks/io-service.js';
import { HookLibraryConfigSchema } from '../src/hooks/library-config.js';
import { LibraryHost } from '../src/hooks/library-host.js';
import { processSandboxSupport } from '../src/hooks/process-sandbox.js';
import { NextStep } from '../src/hooks/protocol.js';
import { ServerHooks } from '../src/hooks/server-hooks.js';
import { Logger, type LogRecord } from '../src/log/logger.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url)); // dist/bench/ → the repository
const ROUNDS = 3;

const CURRENT_SERVER = { 'ip-address': '127.0.0.1', port: 53 };
const TSIG_KEY = { name: 'k1', algorithm: 'HMAC-SHA256', secret: 'LSWXnfkKZjdPJI5QxlpnfQ==' };
const PAYLOAD = { current_server: CURRENT_SERVER, tsig_key: TSIG_KEY };

/**
 * Per in-flight level: warm-up calls; then each round runs the implementations
 * in turn, CHUNKS times, each time for at most `calls` calls or `ms`, so that
 * all of them see the same state of this shared, noisy machine (thread wake-up
 * costs differ several-fold from one second to the next).
 */
const CHUNKS = 5;
const LOAD = {
  1: { warmup: 1_000, calls: 1_600, ms: 500 },
  64: { warmup: 10_000, calls: 12_800, ms: 500 },
} as const;
type InFlight = keyof typeof LOAD;

interface RoundResult {
  usPerCall: number;
  /** Main-thread busy time per call (event-loop utilization × wall time / calls). */
  mainUs: number;
  callsPerSec: number;
  p50: number;
  p99: number;
  calls: number;
}

type Call = () => Promise<unknown>;

/**
 * Keeps `inFlight` calls going until `maxCalls` were started or `maxMs` passed,
 * and waits for the last to finish. Latency per call in µs goes into `hist`.
 */
function drive(call: Call, inFlight: number, maxCalls: number, maxMs: number, hist?: RecordableHistogram): Promise<{ calls: number; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const deadline = t0 + maxMs;
    let started = 0;
    let done = 0;
    let stopped = false;
    const launch = (): void => {
      if (!stopped && (started >= maxCalls || performance.now() > deadline)) stopped = true;
      if (stopped) {
        if (done === started) resolve({ calls: done, ms: performance.now() - t0 });
        return;
      }
      started++;
      const s = performance.now();
      call().then(() => {
        hist?.record(Math.max(1, Math.round((performance.now() - s) * 1000)));
        done++;
        launch();
      }, reject);
    };
    for (let i = 0; i < inFlight; i++) launch();
  });
}

/** One round: the implementations take turns, CHUNKS times; each one's chunks add up. */
async function measureRound(calls: Call[], inFlight: InFlight): Promise<RoundResult[]> {
  const load = LOAD[inFlight];
  const acc = calls.map(() => ({ hist: createHistogram({ lowest: 1, highest: 60_000_000, figures: 3 }), calls: 0, ms: 0, activeMs: 0 }));
  for (let chunk = 0; chunk < CHUNKS; chunk++) {
    for (let i = 0; i < calls.length; i++) {
      const a = acc[i]!;
      const elu = performance.eventLoopUtilization();
      const done = await drive(calls[i]!, inFlight, load.calls, load.ms, a.hist);
      a.activeMs += performance.eventLoopUtilization(elu).active;
      a.calls += done.calls;
      a.ms += done.ms;
    }
  }
  return acc.map((a) => ({
    usPerCall: (a.ms * 1000) / a.calls,
    mainUs: (a.activeMs * 1000) / a.calls,
    callsPerSec: (a.calls * 1000) / a.ms,
    p50: a.hist.percentile(50),
    p99: a.hist.percentile(99),
    calls: a.calls,
  }));
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function medianResult(rounds: RoundResult[]): RoundResult & { rounds: number[] } {
  return {
    usPerCall: median(rounds.map((r) => r.usPerCall)),
    mainUs: median(rounds.map((r) => r.mainUs)),
    callsPerSec: median(rounds.map((r) => r.callsPerSec)),
    p50: median(rounds.map((r) => r.p50)),
    p99: median(rounds.map((r) => r.p99)),
    calls: median(rounds.map((r) => r.calls)),
    rounds: rounds.map((r) => r.usPerCall),
  };
}

// ---------------------------------------------------------------------------
// 1. raw MessagePort ping-pong

/**
 * Calls made in the same turn share one message, as d2box's callouts do; each
 * call settles when the echo of its id comes back. Both raw references use it.
 */
class BatchedCalls {
  private readonly pending = new Map<number, () => void>();
  private nextId = 1;
  private outbox: { id: number; payload: typeof PAYLOAD }[] = [];

  constructor(private readonly send: (batch: { id: number; payload: typeof PAYLOAD }[]) => void) {}

  readonly call: Call = () =>
    new Promise<void>((resolve) => {
      const id = this.nextId++;
      this.pending.set(id, resolve);
      if (this.outbox.push({ id, payload: PAYLOAD }) === 1) {
        queueMicrotask(() => {
          const batch = this.outbox;
          this.outbox = [];
          this.send(batch);
        });
      }
    });

  /** One call, unbatched: its own message. */
  single(send: (message: { id: number; payload: typeof PAYLOAD }) => void): Promise<void> {
    return new Promise<void>((resolve) => {
      const id = this.nextId++;
      this.pending.set(id, resolve);
      send({ id, payload: PAYLOAD });
    });
  }

  settle(id: number): void {
    const resolve = this.pending.get(id);
    this.pending.delete(id);
    resolve?.();
  }
}

class RawEcho {
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly calls: BatchedCalls;

  constructor() {
    const { port1, port2 } = new MessageChannel();
    this.worker = new Worker(new URL('./raw-echo-worker.js', import.meta.url), { workerData: { port: port2 }, transferList: [port2] });
    this.worker.on('error', (err) => console.error('raw echo worker failed:', err));
    this.port = port1;
    this.calls = new BatchedCalls((batch) => this.port.postMessage(batch));
    port1.on('message', (m: { id: number } | { id: number }[]) => {
      if (Array.isArray(m)) for (const one of m) this.calls.settle(one.id);
      else this.calls.settle(m.id);
    });
  }

  /** One message per call: the baseline. */
  readonly call: Call = () => this.calls.single((message) => this.port.postMessage(message));

  /** Calls made in the same turn share one message, as d2box's callouts do (for reference only). */
  readonly batched: Call = () => this.calls.call();

  async close(): Promise<void> {
    this.port.close();
    await this.worker.terminate();
  }
}

/**
 * For reference beside the process mode: the same echo in a plain child process
 * (no sandbox) over Node's IPC channel, serialization 'advanced' (what ProcessPool
 * used before its own bounded channel, channel-frames.ts); calls made in the same
 * turn share one message, as d2box's callouts do.
 */
class RawIpcEcho {
  private readonly child: ChildProcess;
  private readonly calls: BatchedCalls;

  constructor() {
    this.child = spawn(process.execPath, [fileURLToPath(new URL('./raw-echo-worker.js', import.meta.url))], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'advanced',
    });
    this.calls = new BatchedCalls((batch) => this.child.send(batch));
    this.child.on('error', (err) => console.error('raw IPC echo child failed:', err));
    this.child.on('message', (batch: { id: number }[]) => {
      for (const one of batch) this.calls.settle(one.id);
    });
  }

  readonly batched: Call = () => this.calls.call();

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.disconnect();
    await exited;
  }
}

// ---------------------------------------------------------------------------
// 2. d2box callout round trips

/** One handle per slot in flight, its arguments set again for every call, as for a new NCR. */
function d2boxCaller(hooks: HooksManager, handles: CalloutHandle[]): Call {
  let next = 0;
  return () => {
    const handle = handles[next++ % handles.length]!;
    handle.setArgument('current_server', CURRENT_SERVER).setArgument('tsig_key', TSIG_KEY);
    return hooks.callCallouts('select_key', handle);
  };
}

// ---------------------------------------------------------------------------
// 4. a hook point with no callouts

async function idleHook(hooks: HooksManager, handle: CalloutHandle): Promise<{ awaited: number; sync: number }> {
  const N = 200_000;
  const maxMs = 1_000;
  const awaitedRound = async (): Promise<number> => {
    const t0 = performance.now();
    let i = 0;
    for (; i < N && (i & 1023 || performance.now() - t0 < maxMs); i++) await hooks.callCallouts('d2_srv_configured', handle);
    return ((performance.now() - t0) * 1000) / i;
  };
  const syncRound = async (): Promise<number> => {
    const t0 = performance.now();
    let i = 0;
    let last: Promise<unknown> | undefined;
    for (; i < N && (i & 1023 || performance.now() - t0 < maxMs); i++) last = hooks.callCallouts('d2_srv_configured', handle);
    const us = ((performance.now() - t0) * 1000) / i;
    await last;
    return us;
  };
  await awaitedRound();
  await syncRound();
  const awaited: number[] = [];
  const sync: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    awaited.push(await awaitedRound());
    sync.push(await syncRound());
  }
  return { awaited: median(awaited), sync: median(sync) };
}

// ---------------------------------------------------------------------------
// 5. event-loop delay while a library spins and crashes

interface ChaosResult {
  p99ms: number;
  /**
   * Control: the same measure, same serving load, no misbehaving library (this
   * machine's own noise; the histogram also counts the 1 ms timer period).
   */
  controlP99ms: number;
  maxMs: number;
  rounds: number[];
  spins: number;
  exits: number;
  restarts: number;
  timeouts: number;
  exitFailures: number;
  state: string;
  served: number;
  errorLines: number;
}

async function chaos(noop: HooksManager): Promise<ChaosResult> {
  const lines = { error: 0, warn: 0 };
  Logger.setSink((r: LogRecord) => {
    if (r.severity === 'WARN') lines.warn++;
    else lines.error++;
  });
  const hooks = new HooksManager({ baseDir: ROOT });
  await hooks.loadLibraries([
    {
      library: 'bench/fixtures/spin-crash.mjs',
      sandbox: { 'callout-timeout-ms': 50, 'max-restarts': 1_000_000, 'restart-window-s': 1, 'on-failure': 'continue' },
    },
  ]);
  const handle = await hooks.createCalloutHandle();
  handle.setArgument('current_server', CURRENT_SERVER).setArgument('tsig_key', TSIG_KEY);
  let spins = 0;
  let exits = 0;
  const misbehave = async (maxMs: number): Promise<void> => {
    const t0 = performance.now();
    for (let i = 0; i < 10_000 && performance.now() - t0 < maxMs; i++) {
      const mode = i % 2 === 0 ? 'spin' : 'exit';
      handle.setArgument('bench_mode', mode);
      await hooks.callCallouts('select_key', handle);
      if (mode === 'spin') spins++;
      else exits++;
    }
  };
  // Meanwhile the main loop keeps serving callouts on a well-behaved library.
  const servingHandle = await noop.createCalloutHandle();
  const serve = d2boxCaller(noop, [servingHandle]);
  let served = 0;

  await misbehave(400); // warm-up: a few terminations and replacements
  const p99s: number[] = [];
  const controls: number[] = [];
  let maxMs = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const control = monitorEventLoopDelay({ resolution: 1 });
    control.enable();
    served += (await drive(serve, 1, 1_000_000, 1_000)).calls;
    control.disable();
    controls.push(control.percentile(99) / 1e6);
    const eld = monitorEventLoopDelay({ resolution: 1 });
    eld.enable();
    const [, s] = await Promise.all([misbehave(1_500), drive(serve, 1, 1_000_000, 1_500)]);
    eld.disable();
    served += s.calls;
    p99s.push(eld.percentile(99) / 1e6);
    maxMs = Math.max(maxMs, eld.max / 1e6);
  }
  const stats = hooks.getLibraryStatistics()[0]!;
  await hooks.unloadLibraries();
  Logger.setSink((r: LogRecord) => process.stderr.write(`${r.severity} [${r.logger}] ${r.id} ${r.text}\n`));
  return {
    p99ms: median(p99s),
    controlP99ms: median(controls),
    maxMs,
    rounds: p99s,
    spins,
    exits,
    restarts: stats.restarts,
    timeouts: stats.failures.timeout,
    exitFailures: stats.failures.exit,
    state: stats.state,
    served,
    errorLines: lines.error + lines.warn,
  };
}

// ---------------------------------------------------------------------------
// 6. a library's start and restart, thread and process mode side by side

type Mode = 'thread' | 'process';

/** Deadline of the hanging callout in the restart measure (the failure is seen this long after the call). */
const HANG_TIMEOUT_MS = 50;
const LIFECYCLE = {
  /** Measured starts per mode (after one warm-up), modes alternating; at most `ms` for all. */
  starts: 5,
  startMs: 20_000,
  /** Measured deaths per mode and kind (after one warm-up each), modes and kinds alternating; at most `ms` for all. */
  deaths: 6,
  deathMs: 20_000,
} as const;

interface StartSample {
  openMs: number;
  loadMs: number;
  firstCallMs: number;
  stopMs: number;
}

interface DeathSample {
  /** From the call to its failed outcome. */
  detectMs: number;
  /** From the failed outcome to the next successful callout's outcome (the replacement's start included). */
  restartMs: number;
}

type DeathKind = 'exit' | 'hang';

interface LifecycleResult {
  start: Record<Mode, StartSample[]>;
  deaths: Record<Mode, Record<DeathKind, DeathSample[]>>;
  /** Cycles whose failure was not the expected kind or whose next callout failed too (not counted above). */
  unexpected: string[];
  restarts: Record<Mode, number>;
  logLines: number;
}

const SERVER_HOOKS = new ServerHooks();

/** open (start the worker, import, version()), load(), the first callout, stop: one library on its own LibraryHost. */
async function startOnce(mode: Mode, io: IOService): Promise<StartSample> {
  const config = HookLibraryConfigSchema.parse({
    library: 'bench/fixtures/noop-select-key.mjs',
    sandbox: { isolation: mode, 'callout-timeout-ms': 5000 },
  });
  const host = new LibraryHost(config, 1, { hookPoints: SERVER_HOOKS.getHookNames(), io, baseDir: ROOT, onRegistrationsChanged: () => {} });
  const t0 = performance.now();
  await host.open();
  const t1 = performance.now();
  await host.start();
  const t2 = performance.now();
  const outcome = await host.call('select_key', NextStep.CONTINUE, { current_server: CURRENT_SERVER, tsig_key: TSIG_KEY });
  const t3 = performance.now();
  await host.stop();
  const t4 = performance.now();
  if (outcome.failure) throw new Error(`${mode} mode: the first callout failed: ${outcome.failure.kind}: ${outcome.failure.message}`);
  return { openMs: t1 - t0, loadMs: t2 - t1, firstCallMs: t3 - t2, stopMs: t4 - t3 };
}

/** Makes the library's worker die (process.exit, or a spin past the deadline), then calls it again until it answers. */
async function dieAndRecover(hooks: HooksManager, handle: CalloutHandle, kind: DeathKind): Promise<DeathSample | string> {
  handle.setArgument('bench_mode', kind === 'exit' ? 'exit' : 'spin');
  const t0 = performance.now();
  const failed = await hooks.callCallouts('select_key', handle);
  const t1 = performance.now();
  handle.setArgument('bench_mode', 'noop');
  const next = await hooks.callCallouts('select_key', handle);
  const t2 = performance.now();
  const expected = kind === 'exit' ? 'exit' : 'timeout';
  const got = failed.failures[0]?.failure.kind ?? 'no failure';
  if (got !== expected) return `${kind}: the failing callout ended with ${got}, not ${expected}`;
  const again = next.failures[0];
  if (again) return `${kind}: the callout after the restart failed too (${again.failure.kind}: ${again.failure.message})`;
  return { detectMs: t1 - t0, restartMs: t2 - t1 };
}

async function lifecycle(modes: Mode[]): Promise<LifecycleResult> {
  const io = new IOService();
  const result: LifecycleResult = {
    start: { thread: [], process: [] },
    deaths: { thread: { exit: [], hang: [] }, process: { exit: [], hang: [] } },
    unexpected: [],
    restarts: { thread: 0, process: 0 },
    logLines: 0,
  };
  for (const mode of modes) await startOnce(mode, io); // warm-up
  const startT0 = performance.now();
  for (let i = 0; i < LIFECYCLE.starts && performance.now() - startT0 < LIFECYCLE.startMs; i++) {
    for (const mode of modes) result.start[mode].push(await startOnce(mode, io));
  }

  // The restarts log a warning and an error each: counted, not printed.
  Logger.setSink(() => {
    result.logLines++;
  });
  const managers = new Map<Mode, { hooks: HooksManager; handle: CalloutHandle }>();
  for (const mode of modes) {
    const hooks = new HooksManager({ baseDir: ROOT });
    await hooks.loadLibraries([
      {
        library: 'bench/fixtures/spin-crash.mjs',
        sandbox: { isolation: mode, 'callout-timeout-ms': HANG_TIMEOUT_MS, 'max-restarts': 1_000_000, 'restart-window-s': 1, 'on-failure': 'continue' },
      },
    ]);
    const handle = await hooks.createCalloutHandle();
    handle.setArgument('current_server', CURRENT_SERVER).setArgument('tsig_key', TSIG_KEY);
    managers.set(mode, { hooks, handle });
  }
  const kinds: DeathKind[] = ['exit', 'hang'];
  for (const mode of modes) for (const kind of kinds) await dieAndRecover(managers.get(mode)!.hooks, managers.get(mode)!.handle, kind); // warm-up
  const deathT0 = performance.now();
  for (let i = 0; i < LIFECYCLE.deaths && performance.now() - deathT0 < LIFECYCLE.deathMs; i++) {
    for (const mode of modes) {
      for (const kind of kinds) {
        const { hooks, handle } = managers.get(mode)!;
        const sample = await dieAndRecover(hooks, handle, kind);
        if (typeof sample === 'string') result.unexpected.push(`${mode}: ${sample}`);
        else result.deaths[mode][kind].push(sample);
      }
    }
  }
  for (const [mode, { hooks }] of managers) {
    result.restarts[mode] = hooks.getLibraryStatistics()[0]!.restarts;
    await hooks.unloadLibraries();
  }
  Logger.setSink((r: LogRecord) => process.stderr.write(`${r.severity} [${r.logger}] ${r.id} ${r.text}\n`));
  return result;
}

// ---------------------------------------------------------------------------

const fmt = (n: number, digits = 2): string => n.toFixed(digits);

function row(label: string, inFlight: number, r: ReturnType<typeof medianResult>): string {
  return [
    label.padEnd(18),
    String(inFlight).padStart(9),
    fmt(r.usPerCall).padStart(10),
    Math.round(r.callsPerSec).toString().padStart(10),
    String(r.p50).padStart(9),
    String(r.p99).padStart(9),
    fmt(r.mainUs).padStart(10),
    '   ' + r.rounds.map((x) => fmt(x)).join(' / '),
  ].join('');
}

async function main(): Promise<void> {
  Logger.setSeverity('WARN');
  console.log(`d2box hooks benchmark: Node ${process.version}, ${availableParallelism()} cpus, median of ${ROUNDS} rounds after warm-up (each round: the implementations take turns ${CHUNKS}×)`);
  console.log(`payload: select_key ${JSON.stringify(PAYLOAD)}`);
  console.log('µs/call = wall time / calls; p50/p99 = latency of one call; main µs = main-thread busy time per call (event-loop utilization)');

  const raw = new RawEcho();
  const hooks = new HooksManager({ baseDir: ROOT });
  await hooks.loadLibraries([{ library: 'bench/fixtures/noop-select-key.mjs', sandbox: { 'callout-timeout-ms': 5000 } }]);
  const handles: CalloutHandle[] = [];
  for (let i = 0; i < 64; i++) handles.push(await hooks.createCalloutHandle());
  const d2box = d2boxCaller(hooks, handles);
  // For reference: a select_key that sets tsig_key, as a real one does, so the host checks it against the schema.
  const setKey = new HooksManager({ baseDir: ROOT });
  await setKey.loadLibraries([{ library: 'bench/fixtures/set-key-select-key.mjs', sandbox: { 'callout-timeout-ms': 5000 } }]);
  const setKeyHandles: CalloutHandle[] = [];
  for (let i = 0; i < 64; i++) setKeyHandles.push(await setKey.createCalloutHandle());
  // The same no-op library in a sandboxed child process, when this host can build the sandbox.
  const sandbox = processSandboxSupport();
  let proc: HooksManager | undefined;
  let rawIpc: RawIpcEcho | undefined;
  const procHandles: CalloutHandle[] = [];
  if (sandbox.ok) {
    proc = new HooksManager({ baseDir: ROOT });
    await proc.loadLibraries([{ library: 'bench/fixtures/noop-select-key.mjs', sandbox: { isolation: 'process', 'callout-timeout-ms': 5000 } }]);
    for (let i = 0; i < 64; i++) procHandles.push(await proc.createCalloutHandle());
    rawIpc = new RawIpcEcho();
  }

  const results = new Map<string, RoundResult[]>();
  const levels: InFlight[] = [1, 64];
  const impls: [string, Call][] = [
    ['raw', raw.call],
    ['raw-batched', raw.batched],
    ['d2box', d2box],
    ['d2box-set', d2boxCaller(setKey, setKeyHandles)],
    ...(proc && rawIpc
      ? ([
          ['d2box-process', d2boxCaller(proc, procHandles)],
          ['raw-ipc-batched', rawIpc.batched],
        ] as [string, Call][])
      : []),
  ];
  for (const inFlight of levels) {
    for (const [, call] of impls) await drive(call, inFlight, LOAD[inFlight].warmup, 5_000);
  }
  for (let r = 0; r < ROUNDS; r++) {
    for (const inFlight of levels) {
      const round = await measureRound(impls.map(([, call]) => call), inFlight);
      impls.forEach(([name], i) => {
        const key = `${name}:${inFlight}`;
        results.set(key, [...(results.get(key) ?? []), round[i]!]);
      });
    }
  }
  const m = (name: string, inFlight: number) => medianResult(results.get(`${name}:${inFlight}`)!);

  console.log('');
  console.log(`${'round trip'.padEnd(18)}${'in flight'.padStart(9)}${'µs/call'.padStart(10)}${'calls/s'.padStart(10)}${'p50 µs'.padStart(9)}${'p99 µs'.padStart(9)}${'main µs'.padStart(10)}   µs/call per round`);
  for (const inFlight of levels) {
    console.log(row('raw MessagePort', inFlight, m('raw', inFlight)));
    console.log(row('(raw, batched)', inFlight, m('raw-batched', inFlight)));
    console.log(row('d2box callout', inFlight, m('d2box', inFlight)));
    console.log(row('(d2box, sets key)', inFlight, m('d2box-set', inFlight)));
    if (proc) {
      console.log(row('d2box process', inFlight, m('d2box-process', inFlight)));
      console.log(row('(raw IPC, batched)', inFlight, m('raw-ipc-batched', inFlight)));
    }
  }
  const ratio1 = m('d2box', 1).usPerCall / m('raw', 1).usPerCall;
  const ratio64 = m('d2box', 64).usPerCall / m('raw', 64).usPerCall;
  console.log('');
  console.log(`ratio d2box/raw:   1 in flight ${fmt(ratio1)}× (target ≤ 2)   64 in flight ${fmt(ratio64)}× (target ≤ 3)`);
  console.log(
    `(reference: d2box/raw batched per turn: 1 in flight ${fmt(m('d2box', 1).usPerCall / m('raw-batched', 1).usPerCall)}×, ` +
      `64 in flight ${fmt(m('d2box', 64).usPerCall / m('raw-batched', 64).usPerCall)}×)`,
  );
  let procRatio1 = NaN;
  let procRatio64 = NaN;
  let procOverThread64 = NaN;
  if (proc) {
    procRatio1 = m('d2box-process', 1).usPerCall / m('raw', 1).usPerCall;
    procRatio64 = m('d2box-process', 64).usPerCall / m('raw', 64).usPerCall;
    procOverThread64 = m('d2box-process', 64).usPerCall / m('d2box', 64).usPerCall;
    console.log(
      `ratio process/raw: 1 in flight ${fmt(procRatio1)}×   64 in flight ${fmt(procRatio64)}×   ` +
        `process/thread: 1 in flight ${fmt(m('d2box-process', 1).usPerCall / m('d2box', 1).usPerCall)}×   64 in flight ${fmt(procOverThread64)}× (target ≤ 2)`,
    );
    console.log(
      `(reference: process/raw IPC batched per turn: 1 in flight ${fmt(m('d2box-process', 1).usPerCall / m('raw-ipc-batched', 1).usPerCall)}×, ` +
        `64 in flight ${fmt(m('d2box-process', 64).usPerCall / m('raw-ipc-batched', 64).usPerCall)}×)`,
    );
    await proc.unloadLibraries();
    await rawIpc!.close();
  } else {
    console.log(`process mode:      skipped, this host cannot build its sandbox (${sandbox.detail})`);
  }

  const idle = await idleHook(hooks, handles[0]!);
  console.log(`idle hook point:   ${fmt(idle.awaited, 3)} µs/call awaited (target < 1); ${fmt(idle.sync, 3)} µs/call without awaiting`);

  const stats = hooks.getLibraryStatistics()[0]!;
  const c = await chaos(hooks);
  console.log(
    `event-loop delay:  p99 ${fmt(c.p99ms)} ms (target < 5; rounds ${c.rounds.map((x) => fmt(x)).join(' / ')}; max ${fmt(c.maxMs)} ms; control without it ${fmt(c.controlP99ms)} ms) ` +
      `while a library spun ${c.spins}× past its 50 ms deadline and exited ${c.exits}×`,
  );
  console.log(
    `                   its stats: ${c.timeouts} timeouts, ${c.exitFailures} exits, ${c.restarts} restarts, state ${c.state}; ` +
      `${c.served} callouts served meanwhile by the no-op library; ${c.errorLines} log lines`,
  );
  console.log(`no-op library:     ${stats.calls} calls, failures ${Object.values(stats.failures).reduce((a, b) => a + b, 0)}, state ${stats.state}`);

  const modes: Mode[] = sandbox.ok ? ['thread', 'process'] : ['thread'];
  const life = await lifecycle(modes);
  const med = (xs: number[]): number => (xs.length > 0 ? median(xs) : NaN);
  const startMed = (mode: Mode, pick: (s: StartSample) => number): number => med(life.start[mode].map(pick));
  const deathMed = (mode: Mode, kind: DeathKind, pick: (s: DeathSample) => number): number => med(life.deaths[mode][kind].map(pick));
  const startTotal = (s: StartSample): number => s.openMs + s.loadMs;
  const lifeRow = (label: string, value: (mode: Mode) => number, rounds?: (mode: Mode) => number[]): string =>
    label.padEnd(52) +
    (['thread', 'process'] as Mode[]).map((mode) => (modes.includes(mode) ? fmt(value(mode), 1) : '-').padStart(10)).join('') +
    (rounds ? '   ' + modes.map((mode) => `${mode} ${rounds(mode).map((x) => fmt(x, 0)).join('/')}`).join('; ') : '');
  console.log('');
  console.log(
    `${'library lifecycle, ms (median)'.padEnd(52)}${'thread'.padStart(10)}${'process'.padStart(10)}   per sample ` +
      `(${life.start.thread.length} starts, ${life.deaths.thread.exit.length}+${life.deaths.thread.hang.length} deaths per mode)`,
  );
  console.log(lifeRow('start: open (worker, import, version())', (mode) => startMed(mode, (s) => s.openMs)));
  console.log(lifeRow('start: load()', (mode) => startMed(mode, (s) => s.loadMs)));
  console.log(lifeRow('start: open+load', (mode) => startMed(mode, startTotal), (mode) => life.start[mode].map(startTotal)));
  console.log(lifeRow('first callout after load', (mode) => startMed(mode, (s) => s.firstCallMs)));
  console.log(lifeRow('stop (unload, worker ended)', (mode) => startMed(mode, (s) => s.stopMs)));
  console.log(lifeRow('process.exit in a callout: call → failure', (mode) => deathMed(mode, 'exit', (s) => s.detectMs)));
  console.log(
    lifeRow('restart after process.exit: failure → next OK', (mode) => deathMed(mode, 'exit', (s) => s.restartMs), (mode) => life.deaths[mode].exit.map((s) => s.restartMs)),
  );
  console.log(lifeRow(`hang past ${HANG_TIMEOUT_MS} ms deadline: call → failure`, (mode) => deathMed(mode, 'hang', (s) => s.detectMs)));
  console.log(
    lifeRow('restart after a hang: failure → next OK', (mode) => deathMed(mode, 'hang', (s) => s.restartMs), (mode) => life.deaths[mode].hang.map((s) => s.restartMs)),
  );
  console.log(
    `                   restarts ${modes.map((mode) => `${mode} ${life.restarts[mode]}`).join(', ')}; ${life.logLines} log lines; ` +
      `${life.unexpected.length} unexpected outcomes${life.unexpected.length > 0 ? ` (first: ${life.unexpected[0]})` : ''}`,
  );

  await hooks.unloadLibraries();
  await setKey.unloadLibraries();
  await raw.close();
  const restartOf = (mode: Mode, kind: DeathKind): number => deathMed(mode, kind, (s) => s.restartMs);
  console.log(
    `process_ratio_1=${fmt(procRatio1)} process_ratio_64=${fmt(procRatio64)} process_thread_64=${fmt(procOverThread64)} ` +
      `start_ms_thread=${fmt(startMed('thread', startTotal), 1)} start_ms_process=${fmt(modes.includes('process') ? startMed('process', startTotal) : NaN, 1)} ` +
      `restart_exit_ms_thread=${fmt(restartOf('thread', 'exit'), 1)} restart_exit_ms_process=${fmt(modes.includes('process') ? restartOf('process', 'exit') : NaN, 1)} ` +
      `restart_hang_ms_thread=${fmt(restartOf('thread', 'hang'), 1)} restart_hang_ms_process=${fmt(modes.includes('process') ? restartOf('process', 'hang') : NaN, 1)}`,
  );
  console.log(`ratio_1=${fmt(ratio1)} ratio_64=${fmt(ratio64)} idle_hook_us=${fmt(idle.awaited, 3)} loop_delay_p99_ms=${fmt(c.p99ms)}`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
