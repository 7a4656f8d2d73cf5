/**
 * LibraryHost: one hook library in one worker thread (Kea's LibraryManager,
 * plus the isolation DESIGN.md asks for). piscina owns the worker's life: a
 * pool of exactly one thread, atomics off so the library's own timers run
 * between callouts. The `session` task runs `load` and then stays pending for
 * the worker's life; aborting it is how a worker stuck past its deadline is
 * terminated, and piscina then starts the replacement, on which `load` runs
 * again. Callouts travel on the session's own MessagePort, batched.
 *
 * `call` never rejects: whatever the library does, it resolves with an outcome
 * (the library's changes, or a failure with its kind), so that the hook point
 * always reaches a decision.
 */
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { isAbsolute, resolve as resolvePath } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import type { Piscina } from 'piscina';
import { z } from 'zod';
import type { IOService } from './io-service.js';
import { IOServiceBridge } from './io-service.js';
import { IORation, ioRationLimits } from './io-ration.js';
import { LineBudget } from './line-budget.js';
import { maxExternalMb, seesSecrets, type HookLibraryConfig } from './library-config.js';
import { LibraryLog } from './library-log.js';
import { LibraryStatistics } from './library-statistics.js';
import { LibraryKeyHolder } from './library-key-holder.js';
import { LentNetwork } from './lent-network.js';
import { StatsMgr } from '../stats/stats-mgr.js';
import { LibraryMemoryWatch } from './library-memory-watch.js';
import { LibraryStats, type LibraryState } from './library-stats.js';
import { IpcCalloutPort, ProcessPool } from './process-pool.js';
import { sandboxCommand } from './process-sandbox.js';
import { withLoadHint } from './load-hints.js';
import { SecretRedaction } from './secret-redaction.js';
import { oversizedChanges, WorkerMessageSchema } from './protocol-schemas.js';
import {
  ARG_REF_KEY,
  NextStep,
  serializeError,
  type CalloutRequest,
  type CalloutResult,
  type FailureKind,
  type NextStepStatus,
  type OpenResult,
  type Registrations,
  type SerializedError,
  type SessionResult,
  type SessionTask,
  type WorkerBootData,
  type WorkerMessage,
} from './protocol.js';

/** What one library's round trip produced. Changes are unvalidated until HooksManager checks them. */
export interface CalloutOutcome {
  status: NextStepStatus;
  set?: Record<string, unknown>;
  deleted?: string[];
  context?: Record<string, unknown>;
  nonZero: number;
  failure?: SerializedError;
  /** The library was stopped before the callout could run; nothing was attempted. */
  skipped?: boolean;
}

export class HookLibraryError extends Error {
  override name = 'HookLibraryError';
  constructor(
    readonly library: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * protocol.ts declares what a worker may send; this is the same schema compiled
 * by zod (generated code, several times faster than the interpreted parse) for
 * the callout port, where every results batch is checked. Where zod cannot
 * compile it, z.compile hands back the schema itself; on invalid input the
 * compiled one falls back to the runtime parser, so errors read the same.
 */
const WorkerMessageParser = z.compile(WorkerMessageSchema);

/**
 * More log lines than a library can write in a second, even dropping them all: a worker
 * dropping console.log('') lines as fast as it can manages about 9 million a second here
 * (2 cores, Node 20); ten times that is still far below what a forged count looks like.
 */
const MAX_PLAUSIBLE_LOG_LINES_PER_SECOND = 100_000_000;

/** The hook and command names a library registered, for the line that says it loaded: quoted, and only so many. */
function registeredNames(registrations: Registrations, quote: (name: string) => string): string {
  const names = Object.keys(registrations);
  if (names.length === 0) return 'no callouts';
  const shown = names.slice(0, 32).map(quote).join(', ');
  return names.length > 32 ? `${shown} and ${names.length - 32} more` : shown;
}

/** IOService error lines a library can make the host write per second (a callback failing on every tick). */
const IO_ERROR_LINES_PER_SECOND = 10;

/** Loaded by the first LibraryHost.open(). */
let PiscinaClass: typeof Piscina | undefined;

const here = import.meta.url;
/** Under tsx (tests, dev) the worker is TypeScript and needs tsx in its thread too. */
const RUNNING_TS = here.endsWith('.ts');
const WORKER_FILE = new URL(`../../workers/hook-worker${RUNNING_TS ? '.ts' : '.js'}`, here);

interface Pending {
  request: CalloutRequest;
  resolve: (outcome: CalloutOutcome) => void;
  sentAt: number;
}

/**
 * The callouts in flight, by id. Not a Map, on purpose: a Map with constant
 * set/delete churn is rehashed every few dozen callouts, and V8 links each
 * obsolete table to its successor (for live iterators). Once one table is
 * promoted to the old generation, that chain keeps every later table, and the
 * callouts, arguments and promises they point to, alive through scavenges:
 * 13-19% of the hot path's allocations survived each scavenge, which then took
 * ~3 ms (bench/hooks-bench.ts, 64 in flight).
 *
 * Ids only grow, so a ring indexed by the id's low bits does: a slot is taken
 * by at most one callout, and the ring doubles when a new id would land on a
 * callout still in flight (its size stays above the span of ids in flight,
 * which the callout deadline bounds).
 */
class InFlightTable {
  private slots: (Pending | undefined)[] = new Array<Pending | undefined>(64).fill(undefined);
  private mask = 63;
  size = 0;

  get(id: number): Pending | undefined {
    const pending = this.slots[id & this.mask];
    return pending !== undefined && pending.request.id === id ? pending : undefined;
  }

  set(id: number, pending: Pending): void {
    while (this.slots[id & this.mask] !== undefined) this.grow();
    this.slots[id & this.mask] = pending;
    this.size++;
  }

  delete(id: number): void {
    const slot = id & this.mask;
    const pending = this.slots[slot];
    if (pending === undefined || pending.request.id !== id) return;
    this.slots[slot] = undefined;
    this.size--;
  }

  clear(): void {
    this.slots.fill(undefined);
    this.size = 0;
  }

  /** The oldest callout in flight (the lowest id). */
  first(): Pending | undefined {
    let oldest: Pending | undefined;
    for (const pending of this.slots) {
      if (pending !== undefined && (oldest === undefined || pending.request.id < oldest.request.id)) oldest = pending;
    }
    return oldest;
  }

  /** Oldest first. */
  values(): Pending[] {
    return this.slots.filter((p): p is Pending => p !== undefined).sort((a, b) => a.request.id - b.request.id);
  }

  /** Doubles the ring until every callout in flight has a slot of its own. */
  private grow(): void {
    const live = this.values();
    let length = this.slots.length;
    placing: for (;;) {
      length *= 2;
      const slots = new Array<Pending | undefined>(length).fill(undefined);
      const mask = length - 1;
      for (const pending of live) {
        if (slots[pending.request.id & mask] !== undefined) continue placing;
        slots[pending.request.id & mask] = pending;
      }
      this.slots = slots;
      this.mask = mask;
      return;
    }
  }
}

interface Session {
  /** A MessagePort to the worker thread, or the sandboxed process's channel. */
  port: MessagePort | IpcCalloutPort;
  abort: AbortController;
  bridge: IOServiceBridge;
  loaded: boolean;
  /** Why the host aborted it, when it did. */
  abortedFor?: { kind: FailureKind; message: string };
  loadError?: SerializedError;
  settleLoad: { resolve: () => void; reject: (err: Error) => void };
  loadTimer?: NodeJS.Timeout;
  ended?: () => void;
  /** The 'unloaded' message was handled (it can lose the race with the task's end). */
  unloadReported?: boolean;
  /** A replacement for a lost worker, rather than a load of a new configuration. */
  replacement: boolean;
  /** performance.now() when the session was started: what the host measures a worker's claims against. */
  startedAt: number;
  /** Log lines the worker says it dropped, in total: a library could not have written more than so many a second. */
  reportedSuppressed: number;
}

export interface LibraryHostDeps {
  hookPoints: string[];
  io: IOService;
  baseDir?: string;
  onRegistrationsChanged: () => void;
  /** Where the library's own statistics go (library-statistics.ts). */
  statistics?: LibraryStatistics;
}

/** Hosts with a worker or process alive: what a forced shutdown must end (LibraryHost.stopAllNow). */
const running = new Set<LibraryHost>();

export class LibraryHost {
  readonly name: string;
  readonly stats: LibraryStats;
  /** Every line logged because of this library: escaped, marked as its own, rate-limited (library-log.ts). */
  readonly log: LibraryLog;
  /** A worker thread (piscina) or a sandboxed process, by the library's `isolation`. */
  private pool: Piscina | ProcessPool | undefined;
  /** Set when the library may not see TSIG secrets. */
  private readonly redaction: SecretRedaction | undefined;
  /** The configured keys, so select_key can name one in either mode (the redaction's own when there is one). */
  private readonly configuredKeys: SecretRedaction;
  private session: Session | undefined;
  private registrations: Registrations = {};
  private multiThreading = false;
  private nextId = 1;
  private readonly waiting: Pending[] = [];
  private readonly inFlight = new InFlightTable();
  private outbox: CalloutRequest[] = [];
  private outboxQueued = false;
  private watchdog: NodeJS.Timeout | undefined;
  private restartTimes: number[] = [];
  private stopping = false;
  private snapshot: { version: number; json_config: unknown; server_config: unknown } | undefined;
  private readonly memory: LibraryMemoryWatch;
  private readonly ioErrorLines = new LineBudget(IO_ERROR_LINES_PER_SECOND, (dropped) =>
    this.log.warn('HOOKS_IO_ERRORS_SUPPRESSED', `hook library ${this.name}: dropped ${dropped} IOService error lines over the limit of ${IO_ERROR_LINES_PER_SECOND}/s`));
  /** performance.now() at or before the start of the library's current process (or thread): the host's own clock for its CPU use. */
  private childSince = 0;
  /** Signs and verifies with the keys the library holds (select_key's `held: true`). */
  readonly keyHolder: LibraryKeyHolder;
  /** The sockets its `allow-connect` policy lends it (lent-network.ts). */
  private readonly network: LentNetwork;
  /** The library's own statistics; kept apart when the host is given nowhere to put them (a bench). */
  private readonly statistics: LibraryStatistics;

  constructor(
    readonly config: HookLibraryConfig,
    readonly index: number,
    private readonly deps: LibraryHostDeps,
  ) {
    this.name = config.library;
    this.stats = new LibraryStats(config.library, index);
    this.statistics = deps.statistics ?? new LibraryStatistics(new StatsMgr());
    this.network = new LentNetwork(config.sandbox['allow-connect'], (message) => {
      if (this.session?.loaded) this.session.port.postMessage(message);
    });
    this.keyHolder = new LibraryKeyHolder(config.library, {
      post: (message) => {
        const session = this.session;
        if (!session?.loaded || this.stats.state !== 'ready') return false;
        session.port.postMessage(message);
        return true;
      },
      deadlineMs: () => this.policy['callout-timeout-ms'],
      failed: (kind, message) => this.recordFailure(serializeError(kind, new Error(message)), 'select_key'),
    });
    this.log = new LibraryLog(config.library, config.sandbox['log-lines-per-second']);
    this.redaction = seesSecrets(config.sandbox) ? undefined : new SecretRedaction();
    this.configuredKeys = this.redaction ?? new SecretRedaction();
    this.stats.isolation = config.sandbox.isolation;
    this.memory = new LibraryMemoryWatch(config.library, { heapMb: config.sandbox['max-heap-mb'], externalMb: maxExternalMb(config.sandbox) });
  }

  get policy(): HookLibraryConfig['sandbox'] {
    return this.config.sandbox;
  }

  get state(): LibraryState {
    return this.stats.state;
  }

  hasCallouts(hook: string): boolean {
    return (this.registrations[hook] ?? 0) > 0;
  }

  hookNames(): string[] {
    return Object.keys(this.registrations);
  }

  /** Starts the worker and checks `version()` (Kea's validateLibrary); `load` is not run. */
  async open(): Promise<void> {
    this.stopping = false;
    // piscina costs about 10 MB of RSS to load: a daemon with no thread library never loads it.
    PiscinaClass ??= (await import('piscina')).Piscina;
    this.stats.state = 'starting';
    try {
      this.pool = this.createPool();
      this.childSince = performance.now();
      running.add(this);
    } catch (err) {
      this.stats.state = 'stopped';
      throw new HookLibraryError(this.name, `hook library ${this.name}: ${(err as Error).message}`);
    }
    const result = (await this.pool.run({ kind: 'open' })) as OpenResult;
    if (result.error) {
      await this.destroyPool();
      this.stats.state = 'stopped';
      throw new HookLibraryError(this.name, withLoadHint(result.error.message));
    }
  }

  /** Runs `load` in the worker opened by open(). Rejects, naming the library, when load fails. */
  async start(): Promise<void> {
    if (!this.pool) await this.open();
    await this.startSession();
  }

  /** Sends callouts for `hook` to the library. Never rejects. */
  call(hook: string, status: NextStepStatus, args: Record<string, unknown>, context?: Record<string, unknown>): Promise<CalloutOutcome> {
    this.stats.calls++;
    if (this.redaction) args = this.redactArguments(hook, args);
    if (this.stats.state === 'quarantined') return Promise.resolve(this.quarantinedOutcome(status));
    if (this.stats.state === 'stopped') return Promise.resolve({ status, nonZero: 0, skipped: true });
    return new Promise((resolve) => {
      // No `context` key when there is none: structured clone would carry it.
      const request: CalloutRequest = context ? { id: this.nextId++, hook, status, args, context } : { id: this.nextId++, hook, status, args };
      const pending: Pending = { request, resolve, sentAt: 0 };
      if (this.waiting.length === 0 && this.canSend()) this.send(pending);
      else this.waiting.push(pending);
    });
  }

  /** Hands the worker the configuration snapshot once; callouts refer to it by version. */
  publishSnapshot(version: number, json_config: unknown, server_config: unknown): void {
    this.configuredKeys.setConfiguration(json_config);
    this.network.setConfiguration(json_config);
    if (this.redaction) {
      json_config = this.redaction.redact(json_config);
      server_config = this.redaction.redact(server_config);
    }
    this.snapshot = { version, json_config, server_config };
    if (this.session?.loaded) this.session.port.postMessage({ t: 'snapshot', ...this.snapshot });
  }

  /** Runs `unload` (its failure is logged, never fatal) and stops the worker. */
  async stop(): Promise<void> {
    this.stopping = true;
    const session = this.session;
    if (session?.loaded) {
      const ended = new Promise<void>((resolve) => (session.ended = resolve));
      session.port.postMessage({ t: 'unload' });
      const timer = setTimeout(() => {
        this.log.warn('HOOKS_UNLOAD_TIMEOUT', `hook library ${this.name}: unload() did not finish in ${this.policy['load-timeout-ms']} ms; terminating its worker`);
        session.abort.abort();
      }, this.policy['load-timeout-ms']);
      await ended;
      clearTimeout(timer);
    } else if (session) {
      session.abort.abort();
    }
    this.failAll(undefined);
    this.keyHolder.abandonAll(`hook library ${this.name} was unloaded`);
    this.network.closeAll();
    await this.destroyPool();
    if (this.stats.state !== 'quarantined') this.stats.state = 'stopped';
    this.registrations = {};
    this.deps.onRegistrationsChanged();
    this.statistics.removeAll(this);
    this.log.close();
  }

  /**
   * The daemon must exit now, whatever its libraries are doing (a hung unload() or
   * callout, a spinning loop): every worker thread is terminated and every sandbox
   * process killed (SIGKILL, sent before this returns), without unload(). The names
   * of the libraries that were still running.
   */
  static stopAllNow(): string[] {
    const names: string[] = [];
    for (const host of [...running]) {
      names.push(host.name);
      host.stopping = true;
      host.session?.abort.abort();
      void host.destroyPool();
      host.log.close();
    }
    return names;
  }

  /** `hooks-restart`: out of quarantine (or a stopped state) with a fresh restart budget. */
  async restart(): Promise<void> {
    if (this.stats.state === 'ready' || this.stats.state === 'starting' || this.stats.state === 'restarting') {
      throw new HookLibraryError(this.name, `hook library ${this.name} is ${this.stats.state}, not quarantined`);
    }
    this.restartTimes = [];
    this.stats.quarantineReason = null;
    try {
      await this.open();
      await this.startSession();
      this.log.info('HOOKS_LIBRARY_RESTARTED', `hook library ${this.name} is back in service`);
    } catch (err) {
      this.quarantine(`restart failed: ${this.log.quote((err as Error).message)}`);
      throw err;
    }
  }

  // -------------------------------------------------------------------------

  private createPool(): Piscina | ProcessPool {
    const policy = this.policy;
    const workerData: WorkerBootData = {
      libraryUrl: this.libraryUrl(),
      libraryName: this.name,
      libraryIndex: this.index,
      parameters: this.config.parameters,
      hookPoints: this.deps.hookPoints,
      onFailure: policy['on-failure'],
      logLinesPerSecond: policy['log-lines-per-second'],
      ioCallTimeoutMs: Math.max(1000, policy['callout-timeout-ms']),
    };
    if (policy.isolation === 'process') {
      const path = fileURLToPath(workerData.libraryUrl);
      if (/\.[cm]?ts$/.test(path)) throw new Error('a library in "isolation": "process" must be JavaScript (the sandbox holds no TypeScript loader); build it first');
      // Everything on the 'io' channel goes on to the IOServiceBridge, which checks each message in full and fails the library on one that does not fit.
      const pool = new ProcessPool(sandboxCommand(path, policy), workerData, () => true);
      pool.on('error', (err: Error) => this.onIdleWorkerError(err));
      return pool;
    }
    const needsTsx = RUNNING_TS || this.name.endsWith('.ts');
    const pool = new PiscinaClass!({
      filename: WORKER_FILE.href,
      minThreads: 1,
      maxThreads: 1,
      idleTimeout: Infinity,
      atomics: 'disabled',
      concurrentTasksPerWorker: 1,
      recordTiming: false,
      workerData,
      resourceLimits: {
        maxOldGenerationSizeMb: policy['max-heap-mb'],
        maxYoungGenerationSizeMb: Math.max(2, Math.min(16, Math.floor(policy['max-heap-mb'] / 8))),
      },
      ...(needsTsx ? { execArgv: ['--import', 'tsx'] } : {}),
    });
    // An idle worker's crash is emitted here; without a listener it would kill the server.
    pool.on('error', (err: Error) => this.onIdleWorkerError(err));
    return pool;
  }

  private onIdleWorkerError(err: Error): void {
    this.stats.recordFailure('crash', err.message);
    this.log.error('HOOKS_WORKER_ERROR', `hook library ${this.name}: worker failed while idle: ${this.log.quote(err.message)}`);
  }

  /**
   * The arguments without TSIG secrets. select_key's tsig_key is the usual case and is
   * copied alone; other hooks (commands, whose answers may hold a configuration) are
   * copied whole.
   */
  private redactArguments(hook: string, args: Record<string, unknown>): Record<string, unknown> {
    const key = args.tsig_key;
    if (hook === 'select_key') {
      if (typeof key !== 'object' || key === null) return args;
      const { secret: _secret, ...named } = key as Record<string, unknown>;
      return { ...args, tsig_key: named };
    }
    return this.redaction!.redact(args);
  }

  /**
   * select_key's key, as the library set it, made whole from the configuration (or refused).
   * Without secrets every key is taken by name; a library that sees them may also bring its
   * own, so only a key without a secret is looked up.
   */
  private restoreKey(result: CalloutResult): void {
    if (!result.set || !('tsig_key' in result.set)) return;
    const chosen = result.set.tsig_key;
    if (typeof chosen === 'object' && chosen !== null && (chosen as { held?: unknown }).held === true) {
      // A key the library holds: the engine asks this library for its MACs.
      const { name, algorithm } = chosen as { name?: unknown; algorithm?: unknown };
      result.set.tsig_key = { name, algorithm, held: this.keyHolder };
      return;
    }
    if (!this.redaction && (typeof chosen !== 'object' || chosen === null || 'secret' in chosen)) return;
    const restored = this.configuredKeys.restoreKey(chosen);
    if ('key' in restored) {
      result.set.tsig_key = restored.key;
      return;
    }
    delete result.set.tsig_key;
    result.failure ??= restored.error;
  }

  private libraryUrl(): string {
    const path = this.name;
    if (path.startsWith('file:')) return path;
    return pathToFileURL(isAbsolute(path) ? path : resolvePath(this.deps.baseDir ?? process.cwd(), path)).href;
  }

  private async destroyPool(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    running.delete(this);
    if (pool) await pool.destroy().catch(() => {});
  }

  private startSession(replacement = false): Promise<void> {
    const pool = this.pool!;
    // A worker thread gets its callout port transferred; a process has its channel's.
    const channel = pool instanceof ProcessPool ? undefined : new MessageChannel();
    const port = channel?.port1 ?? new IpcCalloutPort();
    const io = new MessageChannel();
    const abort = new AbortController();
    const bridge: IOServiceBridge = new IOServiceBridge(this.deps.io, this.name, new IORation(ioRationLimits(this.policy)), this.policy['callout-timeout-ms'], {
      callbackFailed: (err) => {
        this.stats.recordFailure('io-callback', err.message);
        if (this.ioErrorLines.take()) this.log.error('HOOKS_IO_CALLBACK_FAILED', `hook library ${this.name}: IOService callback failed: ${this.log.quote(err.message)}`);
      },
      violation: (kind, message, err) => {
        const session = this.session;
        if (session?.bridge !== bridge || session.abortedFor) return;
        // Not budgeted: once per worker, and workers are bounded by the restart budget.
        this.log.error('HOOKS_IO_VIOLATION', `hook library ${this.name}: ${message}; terminating its worker${err?.stack ? ` (${this.log.quote(err.stack, 4096)})` : ''}`);
        this.terminate(session, kind, message);
      },
    });
    bridge.serve(io.port1);
    const loaded = new Promise<void>((resolve, reject) => {
      const session: Session = { port, abort, bridge, loaded: false, settleLoad: { resolve, reject }, replacement, startedAt: performance.now(), reportedSuppressed: 0 };
      this.session = session;
      port.on('message', (m: unknown) => this.onWorkerMessage(session, m));
      const overLimit = (message: string) => this.terminate(session, 'oom', message);
      if (pool instanceof ProcessPool) {
        this.memory.watchProcess(() => pool.pid, overLimit);
        pool.heapWitness = () => this.memory.heapEvidence();
      }
      else this.memory.watchThread(overLimit);
      session.loadTimer = setTimeout(() => {
        session.abortedFor = { kind: 'load', message: `load() did not finish in ${this.policy['load-timeout-ms']} ms` };
        abort.abort();
      }, this.policy['load-timeout-ms']);
      const run = pool instanceof ProcessPool
        ? pool.run({ kind: 'session', calloutPort: port as IpcCalloutPort, ioPort: io.port2 }, { signal: abort.signal })
        : pool.run({ kind: 'session', calloutPort: channel!.port2, ioPort: io.port2 } satisfies SessionTask, { transferList: [channel!.port2, io.port2], signal: abort.signal });
      run.then(
        (result: SessionResult) => this.onSessionEnded(session, undefined, result),
        (err: Error) => this.onSessionEnded(session, err, undefined),
      );
    });
    return loaded;
  }

  private onWorkerMessage(session: Session, raw: unknown): void {
    if (session !== this.session) return;
    const parsed = WorkerMessageParser.safeParse(raw);
    if (!parsed.success) {
      this.terminate(session, 'protocol', `worker sent an invalid message: ${parsed.error.issues[0]?.message ?? 'unknown'}`);
      return;
    }
    const message: WorkerMessage = parsed.data;
    switch (message.t) {
      case 'results':
        for (const result of message.batch) {
          // Counts the statistics take from a result are bounded by what the library could have done.
          const hook = this.inFlight.get(result.id)?.request.hook;
          const callouts = hook === undefined ? 0 : Math.max(this.registrations[hook] ?? 0, result.registrations?.[hook] ?? 0);
          if (hook !== undefined && result.nonZero > callouts) {
            this.terminate(session, 'protocol', `worker reported ${result.nonZero} non-zero returns from a round trip of at most ${callouts} callouts`);
            return;
          }
          this.onResult(result);
        }
        this.pump();
        return;
      case 'loaded':
        clearTimeout(session.loadTimer);
        session.loaded = true;
        this.multiThreading = message.multiThreadingCompatible;
        this.stats.multiThreadingCompatible = message.multiThreadingCompatible;
        this.stats.state = 'ready';
        this.setRegistrations(message.registrations);
        if (this.snapshot) session.port.postMessage({ t: 'snapshot', ...this.snapshot });
        this.log.info('HOOKS_LIBRARY_LOADED', `hook library ${this.name} loaded in its ${this.policy.isolation === 'process' ? 'sandboxed process' : 'worker thread'} (${registeredNames(message.registrations, (name) => this.log.quote(name, 256))})`);
        session.settleLoad.resolve();
        if (session.replacement) this.replayConfigured();
        this.pump();
        return;
      case 'load-failed':
        clearTimeout(session.loadTimer);
        session.loadError = message.error;
        return;
      case 'log': {
        // The worker's count of what it dropped is the library's word: believed only as far
        // as a library could have logged at all since the session began.
        session.reportedSuppressed += message.suppressed;
        if (session.reportedSuppressed > ((performance.now() - session.startedAt + 1000) / 1000) * MAX_PLAUSIBLE_LOG_LINES_PER_SECOND) {
          this.terminate(session, 'protocol', `worker reported ${session.reportedSuppressed} log lines dropped since it started, more than it could have written`);
          return;
        }
        this.stats.logLinesSuppressed += message.suppressed + this.log.libraryLines(message.lines);
        this.log.workerDropped(message.suppressed);
        return;
      }
      case 'registrations':
        this.setRegistrations(message.registrations);
        return;
      case 'unloaded':
        session.unloadReported = true;
        this.logUnload(message.unloadReturn, message.error);
        return;
      case 'memory':
        this.memory.report(message.heapBytes, message.externalBytes);
        return;
      case 'net-open':
      case 'net-send':
      case 'net-close':
      case 'net-ack':
        this.network.handle(message);
        return;
      case 'key-results':
        this.keyHolder.onResults(message.batch);
        return;
      case 'stats':
        for (const refusal of this.statistics.apply(this, message.updates)) {
          this.log.warn('HOOKS_STATISTIC_REFUSED', `hook library ${this.name}: ${this.log.quote(refusal, 512)}`);
        }
        return;
    }
  }

  private onResult(result: CalloutResult): void {
    const pending = this.inFlight.get(result.id);
    if (!pending) return; // answered after its worker was written off; nothing waits for it
    this.inFlight.delete(result.id);
    this.stats.recordLatency((performance.now() - pending.sentAt) * 1000);
    if (result.nonZero > 0) this.stats.nonZeroReturns += result.nonZero;
    const oversized = (result.set || result.context) && oversizedChanges(result);
    if (oversized) {
      // More than the host keeps for a library (protocol.ts HELD_LIMITS): its changes are dropped.
      result.set = result.context = undefined;
      result.failure ??= serializeError('invalid-argument', new Error(oversized));
    }
    if (pending.request.hook === 'select_key') this.restoreKey(result);
    if (result.registrations) this.setRegistrations(result.registrations);
    if (result.failure) this.recordFailure(result.failure, pending.request.hook);
    pending.resolve({
      status: (result.status >= 0 && result.status <= 3 ? result.status : 0) as NextStepStatus,
      set: result.set,
      deleted: result.deleted,
      context: result.context,
      nonZero: result.nonZero,
      failure: result.failure,
    });
  }

  private onSessionEnded(session: Session, err: Error | undefined, result: SessionResult | undefined): void {
    clearTimeout(session.loadTimer);
    session.bridge.close(`hook library ${this.name}: worker stopped`);
    session.port.close();
    if (session !== this.session) return;
    this.session = undefined;
    this.memory.unwatch();
    this.network.closeAll();
    this.keyHolder.abandonAll(`hook library ${this.name}: its worker stopped`);
    if (this.stopping) {
      // The session result carries the unload outcome too: log it from there when
      // the 'unloaded' message was still queued on the port closed above.
      if (session.loaded && !session.unloadReported && result) this.logUnload(result.unloadReturn, result.error);
      session.ended?.();
      session.settleLoad.reject(new HookLibraryError(this.name, `hook library ${this.name} was stopped while loading`));
      return;
    }
    let cause = session.abortedFor ?? (err ? classifyDeath(err) : undefined)
      ?? (session.loadError ?? result?.error ? { kind: 'load' as const, message: (session.loadError ?? result!.error!).message } : undefined)
      ?? { kind: 'crash' as const, message: 'worker session ended unexpectedly' };
    // SIGXCPU is how the kernel ends a process at its CPU limit, and also a signal the
    // library can send itself: believed only when the process could have used that much.
    const cpuSeconds = this.policy['max-cpu-seconds'];
    if (cause.kind === 'cpu-limit' && ((performance.now() - this.childSince) / 1000) * availableParallelism() < cpuSeconds) {
      cause = { kind: 'crash', message: `the library process was ended by SIGXCPU before it could have used its ${cpuSeconds} CPU seconds` };
    }
    if (!session.loaded) {
      // Loading failed: at start this rejects the configuration; on a replacement it is one more restart.
      session.settleLoad.reject(new HookLibraryError(this.name, cause.kind === 'load' ? cause.message : `hook library ${this.name}: worker died while loading (${cause.kind}): ${cause.message}`));
      if (this.stats.state === 'starting') {
        this.stats.state = 'stopped';
        void this.destroyPool();
        return;
      }
    }
    const failure: SerializedError = { kind: cause.kind, name: 'WorkerDied', message: cause.message };
    if (this.inFlight.size === 0) this.recordFailure(failure, undefined);
    this.failAll(failure);
    this.restartOrQuarantine(cause.kind, cause.message);
  }

  private logUnload(unloadReturn: number | null, error: SerializedError | undefined): void {
    if (error || (unloadReturn !== null && unloadReturn !== 0)) {
      const why = error ? `threw ${this.log.quote(error.name, 64)}: ${this.log.quote(error.message)}` : `returned ${unloadReturn}`;
      this.log.error('HOOKS_UNLOAD_FAILED', `hook library ${this.name}: unload() ${why}`);
    } else {
      this.log.info('HOOKS_LIBRARY_UNLOADED', `hook library ${this.name} unloaded`);
    }
  }

  private restartOrQuarantine(kind: FailureKind, message: string): void {
    const now = Date.now();
    const windowMs = this.policy['restart-window-s'] * 1000;
    this.restartTimes = this.restartTimes.filter((t) => now - t < windowMs);
    if (this.restartTimes.length >= this.policy['max-restarts']) {
      this.quarantine(`${this.restartTimes.length} restarts in ${this.policy['restart-window-s']} s; last failure: ${kind}: ${this.log.quote(message)}`);
      return;
    }
    this.restartTimes.push(now);
    this.childSince = performance.now();
    this.stats.restarts++;
    this.stats.state = 'restarting';
    this.log.warn('HOOKS_LIBRARY_RESTARTING', `hook library ${this.name}: worker lost (${kind}: ${this.log.quote(message)}); starting a replacement and running load() again`);
    if (kind === 'load' && this.pool) {
      // A load() that failed left its worker alive, module state and timers included:
      // the next attempt gets a fresh thread, as a real replacement would.
      const used = this.pool;
      this.pool = this.createPool();
      void used.destroy().catch(() => {});
    }
    // piscina has already begun replacing a dead worker; the new session waits for it.
    this.startSession(true).catch(() => {
      /* the failure comes back through onSessionEnded */
    });
  }

  /**
   * A replacement worker has run load() but has not seen the configuration: hand it
   * d2_srv_configured again (the snapshot it now holds, its own io_context), so a
   * library that keeps io_context from there works after a restart. Its status is
   * ignored: the configuration was accepted long ago.
   */
  private replayConfigured(): void {
    if (!this.snapshot || !this.hasCallouts('d2_srv_configured')) return;
    const version = this.snapshot.version;
    void this.call('d2_srv_configured', NextStep.CONTINUE, {
      io_context: { [ARG_REF_KEY]: 'io_context' },
      json_config: { [ARG_REF_KEY]: 'snapshot', version, part: 'json_config' },
      server_config: { [ARG_REF_KEY]: 'snapshot', version, part: 'server_config' },
      error: '',
    });
  }

  private quarantine(reason: string): void {
    this.stats.state = 'quarantined';
    this.stats.quarantineReason = reason;
    this.log.error('HOOKS_LIBRARY_QUARANTINED', `hook library ${this.name} quarantined: ${reason}; its callouts are skipped until hooks-restart`);
    for (const pending of this.waiting.splice(0)) pending.resolve(this.quarantinedOutcome(pending.request.status));
    void this.destroyPool();
  }

  private quarantinedOutcome(status: NextStepStatus): CalloutOutcome {
    const failure: SerializedError = {
      kind: 'quarantined',
      name: 'Quarantined',
      message: `hook library ${this.name} is quarantined: ${this.stats.quarantineReason ?? 'unknown reason'}`,
    };
    this.stats.recordFailure('quarantined', failure.message);
    return { status, nonZero: 0, failure };
  }

  private recordFailure(failure: SerializedError, hook: string | undefined): void {
    this.stats.recordFailure(failure.kind, failure.message);
    const where = hook ? ` on ${hook}` : '';
    this.log.error('HOOKS_CALLOUT_FAILED', `hook library ${this.name}${where}: ${failure.kind}: ${this.log.quote(failure.message)}`);
  }

  /** Resolves every callout sent or waiting: with `failure` (worker lost), or skipped (stopped). */
  private failAll(failure: SerializedError | undefined): void {
    clearTimeout(this.watchdog);
    this.watchdog = undefined;
    const sent = this.inFlight.values();
    this.inFlight.clear();
    this.outbox = [];
    for (const pending of sent) {
      if (failure) this.stats.recordFailure(failure.kind, failure.message);
      pending.resolve(failure ? { status: pending.request.status, nonZero: 0, failure } : { status: pending.request.status, nonZero: 0, skipped: true });
    }
    if (!failure) for (const pending of this.waiting.splice(0)) pending.resolve({ status: pending.request.status, nonZero: 0, skipped: true });
  }

  private canSend(): boolean {
    return this.session?.loaded === true && (this.multiThreading || this.inFlight.size === 0);
  }

  private pump(): void {
    while (this.waiting.length > 0 && this.canSend()) this.send(this.waiting.shift()!);
  }

  private send(pending: Pending): void {
    pending.sentAt = performance.now();
    this.inFlight.set(pending.request.id, pending);
    this.outbox.push(pending.request);
    if (!this.outboxQueued) {
      this.outboxQueued = true;
      // Callouts started in the same turn of the loop travel in one message, even when
      // they come from separate I/O callbacks (each NCR's datagram, each DNS answer):
      // setImmediate runs right after the poll phase that produced them.
      setImmediate(() => this.flushOutbox());
    }
    if (!this.watchdog) this.armWatchdog();
  }

  private flushOutbox(): void {
    this.outboxQueued = false;
    if (this.outbox.length === 0 || !this.session) return;
    const batch = this.outbox;
    this.outbox = [];
    try {
      this.session.port.postMessage({ t: 'callouts', batch });
    } catch (err) {
      // An argument the server set cannot be cloned: fail those callouts, not the worker.
      for (const request of batch) {
        const pending = this.inFlight.get(request.id);
        if (!pending) continue;
        this.inFlight.delete(request.id);
        const failure = serializeError('invalid-argument', new Error(`arguments for ${request.hook} cannot cross threads: ${(err as Error).message}`));
        pending.resolve({ status: request.status, nonZero: 0, failure });
      }
    }
  }

  /** One timer per library, set for the oldest callout in flight, instead of one per callout. */
  private armWatchdog(): void {
    const oldest = this.inFlight.first();
    if (!oldest) return;
    const timeout = this.policy['callout-timeout-ms'];
    const due = Math.max(0, oldest.sentAt + timeout - performance.now());
    this.watchdog = setTimeout(() => {
      this.watchdog = undefined;
      const first = this.inFlight.first();
      if (!first) return;
      if (performance.now() - first.sentAt >= timeout - 1 && this.session) {
        this.terminate(this.session, 'timeout', `callout on ${first.request.hook} did not finish within ${timeout} ms`);
      } else {
        this.armWatchdog();
      }
    }, due + 1);
  }

  private terminate(session: Session, kind: FailureKind, message: string): void {
    if (session.abortedFor) return;
    session.abortedFor = { kind, message };
    session.abort.abort();
  }

  private setRegistrations(registrations: Registrations): void {
    this.registrations = registrations;
    this.deps.onRegistrationsChanged();
  }
}

/** What killed a worker, from what piscina reports. */
function classifyDeath(err: Error): { kind: FailureKind; message: string } {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ERR_WORKER_OUT_OF_MEMORY') return { kind: 'oom', message: `worker ran out of memory: ${err.message}` };
  if (code === 'ERR_D2BOX_PROTOCOL') return { kind: 'protocol', message: err.message };
  if (code === 'ERR_D2BOX_CPU_LIMIT') return { kind: 'cpu-limit', message: err.message };
  if (/worker exited with code/i.test(err.message)) return { kind: 'exit', message: `library exited its worker: ${err.message}` };
  return { kind: 'crash', message: `uncaught ${err.name}: ${err.message}` };
}
