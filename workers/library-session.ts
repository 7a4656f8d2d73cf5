/**
 * The worker side of one hook library, whatever contains it: a worker thread
 * (hook-worker.ts, piscina's task handler) or a sandboxed child process
 * (process-worker.ts). It loads the library when the host starts a session
 * (never at module top level, where a failure would wedge piscina:
 * specs/deps.md §1), then serves callouts over the session's port until the
 * host asks it to unload.
 */
import type { MessagePort } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import {
  HOOKS_VERSION,
  NextStep,
  isArgRef,
  serializeError,
  type ArgRef,
  type CalloutRequest,
  type CalloutResult,
  type FailureKind,
  type HostMessage,
  type KeyOperation,
  type KeyOperationResult,
  type OpenResult,
  type SerializedError,
  type SessionResult,
  type WorkerBootData,
  type WorkerMessage,
} from '../src/hooks/protocol.js';
import { CalloutHandle } from './callout-handle.js';
import type { Callout } from './hooks-api.js';
import { IOServiceClient } from './io-service.js';
import { LibraryHandle } from './library-handle.js';
import { LogCapture } from './log-capture.js';
import { LibraryStatsMgr } from './stats-mgr.js';
import { LentNetworkClient } from './lent-network.js';

/** What a session needs of its callout port: a MessagePort, or the process mode's IPC channel. */
export interface CalloutPort {
  postMessage(message: WorkerMessage): void;
  on(event: 'message', listener: (message: HostMessage) => void): unknown;
  close(): void;
}

interface LibraryModule {
  version?: unknown;
  load?: unknown;
  unload?: unknown;
  multi_threading_compatible?: unknown;
  [name: string]: unknown;
}

class LibraryLoadError extends Error {
  override name = 'LibraryLoadError';
}

async function importLibrary(boot: WorkerBootData): Promise<LibraryModule> {
  try {
    return (await import(boot.libraryUrl)) as LibraryModule;
  } catch (err) {
    throw new LibraryLoadError(`cannot open library ${boot.libraryName}: ${(err as Error)?.message ?? String(err)}`);
  }
}

async function checkVersion(boot: WorkerBootData, mod: LibraryModule): Promise<number> {
  if (typeof mod.version !== 'function') {
    throw new LibraryLoadError(`library ${boot.libraryName} has no version() function`);
  }
  const version = await (mod.version as () => unknown)();
  if (version !== HOOKS_VERSION) {
    throw new LibraryLoadError(
      `library ${boot.libraryName}: version() returned ${String(version)}, the hooks framework is version ${HOOKS_VERSION}`,
    );
  }
  return version;
}

/** Imports the library and checks `version()`, nothing more: Kea's validateLibraries. */
export async function openLibrary(boot: WorkerBootData): Promise<OpenResult> {
  try {
    return { version: await checkVersion(boot, await importLibrary(boot)) };
  } catch (err) {
    return { version: null, error: serializeError('load', err) };
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}

interface Snapshot {
  json_config: unknown;
  server_config: unknown;
}

/**
 * One library's life in its worker: `load`, then callouts served over `port`
 * until the host asks for `unload`. run() resolves when the library is unloaded
 * or failed to load.
 */
export class LibrarySession {
  private readonly logs: LogCapture;
  private readonly io: IOServiceClient;
  private readonly statsMgr: LibraryStatsMgr;
  private readonly network: LentNetworkClient;
  private library!: LibraryHandle;
  private mod!: LibraryModule;
  /** The current snapshot and the one before it, for callouts already under way. */
  private readonly snapshots = new Map<number, Snapshot>();
  private results: CalloutResult[] = [];
  private keyResults: KeyOperationResult[] = [];
  private flushQueued = false;
  private finish!: (result: SessionResult) => void;

  constructor(
    private readonly boot: WorkerBootData,
    private readonly port: CalloutPort,
    ioPort: MessagePort,
  ) {
    this.logs = new LogCapture(this.boot.logLinesPerSecond, (m) => this.send(m));
    this.io = new IOServiceClient(ioPort, this.boot.ioCallTimeoutMs);
    this.statsMgr = new LibraryStatsMgr((m) => this.port.postMessage(m));
    this.network = new LentNetworkClient((m) => this.send(m));
  }

  run(): Promise<SessionResult> {
    const done = new Promise<SessionResult>((resolve) => (this.finish = resolve));
    this.logs.install();
    this.port.on('message', (m: HostMessage) => this.onMessage(m));
    void this.load();
    return done;
  }

  private send(message: WorkerMessage): void {
    this.statsMgr.flush();
    this.port.postMessage(message);
  }

  private async load(): Promise<void> {
    try {
      this.mod = await importLibrary(this.boot);
      await checkVersion(this.boot, this.mod);
      const hookPoints = new Set(this.boot.hookPoints);
      this.library = new LibraryHandle(this.boot.libraryName, deepFreeze(this.boot.parameters), hookPoints, this.statsMgr, this.network);
      // Kea registers exports named after hook points before calling load().
      for (const hook of this.boot.hookPoints) {
        const fn = this.mod[hook];
        if (typeof fn === 'function') this.library.registerCallout(hook, fn as Callout);
      }
      if (typeof this.mod.load === 'function') {
        const rc = await (this.mod.load as (h: LibraryHandle) => unknown)(this.library);
        if (rc !== 0 && rc !== undefined) {
          throw new LibraryLoadError(`library ${this.boot.libraryName}: load() returned ${String(rc)}`);
        }
      }
      const mt = typeof this.mod.multi_threading_compatible === 'function'
        ? Number(await (this.mod.multi_threading_compatible as () => unknown)()) !== 0
        : false;
      this.library.dirty = false;
      this.send({ t: 'loaded', multiThreadingCompatible: mt, registrations: this.library.registrations() });
    } catch (err) {
      const error = serializeError('load', err);
      if (!(err instanceof LibraryLoadError)) error.message = `library ${this.boot.libraryName}: load() failed: ${error.message}`;
      this.send({ t: 'load-failed', error });
      this.finish({ unloadReturn: null, error });
    }
  }

  private onMessage(message: HostMessage): void {
    switch (message.t) {
      case 'callouts':
        for (const request of message.batch) {
          const result = this.runChain(request);
          if (result instanceof Promise) void result.then((r) => this.queueResult(r));
          else this.queueResult(result);
        }
        return;
      case 'net-opened':
      case 'net-datagram':
      case 'net-closed':
        this.network.onMessage(message);
        return;
      case 'key-ops':
        for (const op of message.batch) void this.runKeyOperation(op).then((r) => this.queueKeyResult(r));
        return;
      case 'snapshot':
        this.snapshots.set(message.version, deepFreeze({ json_config: message.json_config, server_config: message.server_config }));
        for (const version of this.snapshots.keys()) if (version < message.version - 1) this.snapshots.delete(version);
        return;
      case 'unload':
        void this.unload();
        return;
    }
  }

  private async unload(): Promise<void> {
    let unloadReturn: number | null = null;
    let error: SerializedError | undefined;
    try {
      if (typeof this.mod?.unload === 'function') {
        const rc = await (this.mod.unload as () => unknown)();
        unloadReturn = typeof rc === 'number' ? rc : 0;
      }
    } catch (err) {
      error = serializeError('throw', err);
    }
    this.logs.flush();
    this.send({ t: 'unloaded', unloadReturn, error });
    this.port.close();
    this.finish({ unloadReturn, error });
  }

  private decodeArguments(args: Record<string, unknown>): Record<string, unknown> {
    for (const name in args) {
      const value = args[name];
      if (isArgRef(value)) args[name] = this.resolveRef(value);
    }
    return args;
  }

  private resolveRef(ref: ArgRef): unknown {
    if (ref.__d2boxArgRef === 'io_context') return this.io;
    const snapshot = this.snapshots.get(ref.version);
    if (!snapshot) throw new Error(`configuration snapshot ${ref.version} is not known to this worker`);
    return snapshot[ref.part];
  }

  /**
   * Runs this library's callouts for one hook call, in registration order, as
   * Kea's CalloutManager::callCallouts does. Stays synchronous until a callout
   * returns a promise, so a batch of plain callouts costs no extra turns.
   */
  private runChain(request: CalloutRequest): CalloutResult | Promise<CalloutResult> {
    const started = performance.now();
    const suppressedBefore = this.logs.suppressedTotal;
    const callouts = this.library.calloutsFor(request.hook);
    const state: ChainState = { nonZero: 0, failure: undefined };
    let handle: CalloutHandle;
    try {
      handle = new CalloutHandle(request.hook, this.decodeArguments(request.args), request.status, request.context, this.library, this.boot.libraryIndex);
    } catch (err) {
      return this.result(request, undefined, state, started, suppressedBefore, serializeError('protocol', err));
    }
    for (let i = 0; i < callouts.length; i++) {
      let rc: unknown;
      try {
        rc = callouts[i]!(handle);
      } catch (err) {
        this.calloutFailed(handle, state, 'throw', err);
        continue;
      }
      if (rc !== null && typeof rc === 'object' && typeof (rc as Promise<unknown>).then === 'function') {
        return this.continueChain(request, handle, callouts, i, rc as Promise<unknown>, state, started, suppressedBefore);
      }
      if (rc !== 0 && rc !== undefined) this.calloutNonZero(handle, state, rc);
    }
    return this.result(request, handle, state, started, suppressedBefore);
  }

  private async continueChain(
    request: CalloutRequest,
    handle: CalloutHandle,
    callouts: readonly Callout[],
    index: number,
    pending: Promise<unknown>,
    state: ChainState,
    started: number,
    suppressedBefore: number,
  ): Promise<CalloutResult> {
    for (let i = index; i < callouts.length; i++) {
      let rc: unknown = pending;
      if (i !== index) {
        try {
          rc = callouts[i]!(handle);
        } catch (err) {
          this.calloutFailed(handle, state, 'throw', err);
          continue;
        }
      }
      try {
        rc = await rc;
      } catch (err) {
        this.calloutFailed(handle, state, 'reject', err);
        continue;
      }
      if (rc !== 0 && rc !== undefined) this.calloutNonZero(handle, state, rc);
    }
    return this.result(request, handle, state, started, suppressedBefore);
  }

  private calloutFailed(handle: CalloutHandle, state: ChainState, kind: FailureKind, err: unknown): void {
    // Kea: a callout that throws is logged, the status becomes DROP, the chain goes on.
    const error = serializeError(kind, err);
    state.failure ??= error;
    if (this.boot.onFailure === 'drop') handle.setStatus(NextStep.DROP);
    this.logs.write('error', `callout on ${handle.getCurrentHook()} ${kind === 'throw' ? 'threw' : 'rejected'}: ${error.name}: ${error.message}`);
  }

  private calloutNonZero(handle: CalloutHandle, state: ChainState, rc: unknown): void {
    state.nonZero++;
    this.logs.write('error', `callout on ${handle.getCurrentHook()} returned ${String(rc)}`);
  }

  private result(
    request: CalloutRequest,
    handle: CalloutHandle | undefined,
    state: ChainState,
    started: number,
    suppressedBefore: number,
    failure?: SerializedError,
  ): CalloutResult {
    failure ??= state.failure;
    if (!failure && this.logs.suppressedTotal > suppressedBefore) {
      failure = {
        kind: 'log-flood',
        name: 'LogFlood',
        message: `dropped ${this.logs.suppressedTotal - suppressedBefore} log lines over the limit of ${this.boot.logLinesPerSecond}/s`,
      };
    }
    const changes = handle?.changes();
    // Absent fields are left out, not set to undefined: structured clone would carry every key.
    const result: CalloutResult = {
      id: request.id,
      status: changes?.status ?? request.status,
      nonZero: state.nonZero,
      callouts: this.library.calloutsFor(request.hook).length,
      durationUs: (performance.now() - started) * 1000,
    };
    if (changes?.set) result.set = changes.set;
    if (changes?.deleted) result.deleted = changes.deleted;
    if (changes?.context) result.context = changes.context;
    if (failure) result.failure = failure;
    if (this.library.dirty) {
      this.library.dirty = false;
      result.registrations = this.library.registrations();
    }
    return result;
  }

  /** A sign or verify for a key this library holds; never rejects (a failure is reported as the library's). */
  private async runKeyOperation(op: KeyOperation): Promise<KeyOperationResult> {
    const holder = this.library?.keyHolder;
    try {
      if (!holder) throw new Error('the library registered no key holder (LibraryHandle.registerKeyHolder)');
      const key = { name: op.key, algorithm: op.algorithm };
      const data = Buffer.from(op.data, 'base64');
      if (op.op === 'sign') {
        const mac = await holder.sign(key, data);
        if (!(mac instanceof Uint8Array)) throw new TypeError('sign did not return a Uint8Array');
        return { id: op.id, mac: Buffer.from(mac.buffer, mac.byteOffset, mac.byteLength).toString('base64') };
      }
      const verified = await holder.verify(key, data, Buffer.from(op.mac ?? '', 'base64'));
      if (typeof verified !== 'boolean') throw new TypeError('verify did not return a boolean');
      return { id: op.id, verified };
    } catch (err) {
      return { id: op.id, error: serializeError('throw', err).message };
    }
  }

  private queueKeyResult(result: KeyOperationResult): void {
    this.keyResults.push(result);
    if (this.keyResults.length === 1) {
      queueMicrotask(() => {
        const batch = this.keyResults;
        this.keyResults = [];
        // 256 MACs of the largest size allowed are about 360 KB: inside a process channel's frame.
        for (let i = 0; i < batch.length; i += 256) this.send({ t: 'key-results', batch: batch.slice(i, i + 256) });
      });
    }
  }

  private queueResult(result: CalloutResult): void {
    this.results.push(result);
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => this.flushResults());
    }
  }

  private flushResults(): void {
    this.flushQueued = false;
    const batch = this.results;
    this.results = [];
    try {
      this.send({ t: 'results', batch });
    } catch {
      // Something a callout set cannot be cloned: send one by one, failing only the culprits.
      for (const result of batch) {
        try {
          this.send({ t: 'results', batch: [result] });
        } catch (err) {
          this.send({
            t: 'results',
            batch: [{
              id: result.id,
              status: result.status,
              nonZero: result.nonZero,
              callouts: result.callouts,
              durationUs: result.durationUs,
              failure: serializeError('invalid-argument', new Error(`a value the library set cannot cross threads: ${(err as Error).message}`)),
            }],
          });
        }
      }
    }
  }
}

interface ChainState {
  nonZero: number;
  failure: SerializedError | undefined;
}
