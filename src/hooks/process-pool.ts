/**
 * ProcessPool: one hook library in a sandboxed child process, behind the few
 * things LibraryHost asks of its piscina pool — run a task (with an abort
 * signal), report an idle death, destroy — so the host's callers cannot tell
 * the two isolation modes apart except by cost.
 *
 * Like piscina with one thread, a task runs on the live child, and a child that
 * died or was aborted is replaced by a new one when the next task comes. The
 * session task's ports are relayed over the child's channel (ipc-ports.ts): the
 * callout port as the channel 'callout', the IOService port as 'io'.
 *
 * The child is not trusted. Its channel is a socket of our own on its descriptor
 * CHANNEL_FD, not Node's IPC channel, whose deserializer throws uncaught on bad
 * bytes, buffers whatever length a header announces, and rebuilds structured
 * clone's back-references without limit. Here every byte goes through a
 * BoundedFrameReader, every envelope is checked before it goes anywhere, and
 * anything that does not fit, or that the host fails to handle, kills the child
 * (a 'protocol' death) and never reaches the daemon's main loop as a throw.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { MessagePort } from 'node:worker_threads';
import { Logger } from '../log/logger.js';
import { BoundedFrameReader, encodeFrame } from './channel-frames.js';
import { PortRelay } from './ipc-ports.js';
import type { SandboxCommand } from './process-sandbox.js';
import { OpenResultSchema, SerializedErrorSchema, SessionResultSchema } from './protocol-schemas.js';
import {
  CHANNEL_FD,
  CHANNEL_MAX_LOOP_SHARE,
  CHANNEL_MAX_UNREAD_BYTES,
  CHILD_FRAME_BOUNDS,
  HOST_FRAME_BOUNDS,
  type HostMessage,
  type HostToChild,
  type OpenTask,
  type WorkerBootData,
} from './protocol.js';

/** Main-loop time one chunk of a library's channel may take before its reading yields a turn. */
const CHANNEL_SLICE_MS = 2;
/** The loop-share budget's burst: a second's worth of CHANNEL_MAX_LOOP_SHARE. */
const LOOP_BURST_MS = 1000 * CHANNEL_MAX_LOOP_SHARE;
/** How long a dead child's channel and stderr may stay open before they are cut. */
const DRAIN_AFTER_EXIT_MS = 2000;
/** How much of the child's stderr is kept to explain its death. */
const STDERR_TAIL_CHARS = 4096;

interface RunningTask {
  kind: 'open' | 'session';
  resolve: (result: unknown) => void;
  reject: (err: Error) => void;
  relay?: PortRelay;
  calloutPort?: IpcCalloutPort;
}

/** Channel ids: the two fixed ones, and those PortRelay invents (a side's letter and a number). */
const RELAYED_CHANNEL = /^[hc][1-9]\d{0,9}$/;
const PORT_ENVELOPE_KEYS = new Set(['t', 'ch', 'm', 'close']);
const DONE_KEYS = new Set(['t', 'id', 'result']);
const FATAL_KEYS = new Set(['t', 'error']);

/** One library process and the channel to it. */
interface LibraryChild {
  process: ChildProcess;
  channel: Socket;
  reader: BoundedFrameReader;
  /** Main-loop milliseconds its channel may still take (CHANNEL_MAX_LOOP_SHARE), and when that was reckoned. */
  loopBudgetMs: number;
  loopBudgetAt: number;
}

/**
 * A session's callout port in process mode: straight on the child's channel.
 * Relaying it through a MessagePort pair in the host, as the IOService port is,
 * cost each batch two more structured-clone passes in the main thread (the bench
 * measured 2.5× the thread mode's round trip at 64 in flight that way); callouts
 * never carry ports, so nothing needs the relay here.
 */
export class IpcCalloutPort {
  private listener: ((message: unknown) => void) | undefined;
  private send: ((message: HostMessage) => void) | undefined;

  postMessage(message: HostMessage): void {
    // Throws at once on a value that cannot be sent, as MessagePort.postMessage does.
    this.send?.(message);
  }

  on(_event: 'message', listener: (message: unknown) => void): this {
    this.listener = listener;
    return this;
  }

  close(): void {
    this.listener = undefined;
    this.send = undefined;
  }

  /** @internal ProcessPool: ties the port to the child its session runs on. */
  bind(send: (message: HostMessage) => void): void {
    this.send = send;
  }

  /** @internal ProcessPool: a message for the session. */
  deliver(message: unknown): void {
    this.listener?.(message);
  }
}

/** The session task in process mode: the callout port is the channel's, the IOService port is relayed. */
export interface ProcessSessionTask {
  kind: 'session';
  calloutPort: IpcCalloutPort;
  ioPort: MessagePort;
}

export interface RunOptions {
  transferList?: MessagePort[];
  signal?: AbortSignal;
}

export class ProcessPool extends EventEmitter {
  private child: LibraryChild | undefined;
  private readonly tasks = new Map<number, RunningTask>();
  private nextTaskId = 1;
  private stderrTail = '';
  private fatal: { name: string; message: string } | undefined;
  private protocolError: string | undefined;
  private destroyed = false;
  /** The host's own evidence that the child came near its heap limit (LibraryMemoryWatch); without it, stderr's claim is not believed. */
  heapWitness: (() => { nearLimit: boolean; peakMb: number }) | undefined;
  private readonly log = new Logger('d2box-hooks');

  constructor(
    private readonly command: SandboxCommand,
    private readonly boot: WorkerBootData,
    /** What the IOService port may receive from the child (comlink calls it is allowed to make). */
    private readonly acceptIO: (message: unknown) => boolean,
  ) {
    super();
  }

  /** The child's PID, while one runs (the outermost process: prlimit became bwrap). */
  get pid(): number | undefined {
    return this.child?.process.pid;
  }

  run(task: OpenTask | ProcessSessionTask, options: RunOptions = {}): Promise<unknown> {
    if (this.destroyed) return Promise.reject(new Error('the library process pool was destroyed'));
    const child = this.child ?? this.spawnChild();
    const id = this.nextTaskId++;
    return new Promise((resolve, reject) => {
      const running: RunningTask = { kind: task.kind, resolve, reject };
      this.tasks.set(id, running);
      if (task.kind === 'session') {
        running.relay = new PortRelay((envelope) => this.post(child, envelope), 'h');
        running.relay.attach('io', task.ioPort, this.acceptIO);
        running.calloutPort = task.calloutPort;
        task.calloutPort.bind((m) => this.postNow(child, { t: 'port', ch: 'callout', m }));
      }
      options.signal?.addEventListener('abort', () => {
        if (this.tasks.has(id)) this.retire(child, Object.assign(new Error('The task has been aborted'), { name: 'AbortError' }));
      }, { once: true });
      this.post(child, { t: 'task', id, task: task.kind === 'open' ? task : { kind: 'session' } });
    });
  }

  async destroy(): Promise<void> {
    this.destroyed = true;
    const child = this.child;
    if (!child) return;
    const exited = new Promise<void>((resolve) => child.process.once('exit', () => resolve()));
    this.retire(child, new Error('the library process pool was destroyed'));
    if (child.process.exitCode === null && child.process.signalCode === null) await exited;
  }

  /**
   * Writes the child off at once: its tasks fail with `err`, the next task gets a
   * new child, and what the old one still sends or how it ends no longer counts.
   */
  private retire(child: LibraryChild, err: Error): void {
    if (child !== this.child) return;
    this.child = undefined;
    this.failTasks(err);
    this.kill(child);
  }

  private kill(child: LibraryChild): void {
    child.channel.destroy();
    child.process.kill('SIGKILL');
  }

  private spawnChild(): LibraryChild {
    this.stderrTail = '';
    this.fatal = undefined;
    this.protocolError = undefined;
    const stdio: ('ignore' | 'pipe')[] = ['ignore', 'ignore', 'pipe'];
    stdio[CHANNEL_FD] = 'pipe';
    const proc = spawn(this.command.file, this.command.args, { stdio, env: this.command.env });
    const child: LibraryChild = {
      process: proc,
      channel: proc.stdio[CHANNEL_FD] as Socket,
      reader: new BoundedFrameReader(CHILD_FRAME_BOUNDS),
      loopBudgetMs: LOOP_BURST_MS,
      loopBudgetAt: performance.now(),
    };
    this.child = child;
    proc.stderr!.setEncoding('utf8');
    proc.stderr!.on('data', (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-STDERR_TAIL_CHARS);
    });
    proc.stderr!.on('error', () => {});
    child.channel.on('data', (chunk: Buffer) => this.onChannelData(child, chunk));
    // A write that fails (the child is gone, or closed its end) writes the child off;
    // its exit reports how it ended.
    child.channel.on('error', () => {
      if (child === this.child) child.process.kill('SIGKILL');
    });
    proc.on('error', (err) => this.onChildGone(child, err));
    // The death counts once the channel and stderr are drained ('close'): the child's
    // last frames (its fatal report) and its last words (a heap-limit message) may still
    // be in flight at 'exit'. Should anything keep them open, they are cut after a while.
    proc.on('close', (code, signal) => this.onChildGone(child, this.deathError(code, signal)));
    proc.once('exit', () => {
      setTimeout(() => {
        child.channel.destroy();
        proc.stderr?.destroy();
      }, DRAIN_AFTER_EXIT_MS).unref();
    });
    this.post(child, { t: 'boot', boot: this.boot });
    return child;
  }

  /**
   * Sends to the child. A message that cannot be encoded throws here, at once,
   * as MessagePort.postMessage does (the callout port relies on it). A child that
   * leaves more than CHANNEL_MAX_UNREAD_BYTES unread has stopped reading: it is
   * written off rather than buffered for.
   */
  private postNow(child: LibraryChild, message: HostToChild): void {
    if (child.channel.destroyed) return;
    const frame = encodeFrame(message, HOST_FRAME_BOUNDS);
    if (child.channel.writableLength > CHANNEL_MAX_UNREAD_BYTES) {
      this.violation(child, `nothing while ${child.channel.writableLength} bytes to it were left unread`);
      return;
    }
    child.channel.write(frame);
  }

  /** postNow() for the host's own messages and relayed ports, where nobody could take a throw. */
  private post(child: LibraryChild, message: HostToChild): void {
    try {
      this.postNow(child, message);
    } catch {
      if (child === this.child) child.process.kill('SIGKILL');
    }
  }

  private onChannelData(child: LibraryChild, chunk: Buffer): void {
    if (child !== this.child) return;
    const started = performance.now();
    let messages: unknown[];
    try {
      messages = child.reader.read(chunk);
    } catch (err) {
      this.violation(child, (err as Error).message);
      return;
    }
    for (const message of messages) {
      if (child !== this.child) return;
      try {
        this.onChildMessage(child, message);
      } catch (err) {
        this.backstop(child, err);
      }
    }
    const now = performance.now();
    child.loopBudgetMs = Math.min(LOOP_BURST_MS, child.loopBudgetMs + (started - child.loopBudgetAt) * CHANNEL_MAX_LOOP_SHARE) - (now - started);
    child.loopBudgetAt = now;
    if (child.loopBudgetMs < 0 && child === this.child) {
      this.violation(child, `frames that kept the main loop busy more than ${CHANNEL_MAX_LOOP_SHARE * 100}% of the time`);
      return;
    }
    if (now - started > CHANNEL_SLICE_MS && !child.channel.destroyed) {
      // The socket hands over many chunks in one go: a library whose frames keep the
      // loop busy reads on only after everything else has had its turn.
      child.channel.pause();
      setImmediate(() => {
        if (!child.channel.destroyed) child.channel.resume();
      });
    }
  }

  /**
   * Whatever the checks missed and the host then failed on: the library's
   * failure, with the stack to find the gap by; the daemon goes on.
   */
  private backstop(child: LibraryChild, err: unknown): void {
    const error = err instanceof Error ? err : new Error(String(err));
    this.log.error('HOOKS_CHANNEL_FAILED', `hook library ${this.boot.libraryName}: handling a message from its process failed; ending the process: ${error.stack ?? error.message}`);
    this.violation(child, `a message the host failed to handle (${error.name}: ${error.message})`);
  }

  private onChildMessage(child: LibraryChild, message: unknown): void {
    if (!isRecord(message)) return this.violation(child, 'a message that is not an object');
    switch (message.t) {
      case 'port':
        return this.onPortEnvelope(child, message);
      case 'done': {
        if (!hasOnlyKeys(message, DONE_KEYS)) return this.violation(child, 'a task answer with unknown fields');
        const id = message.id;
        const running = typeof id === 'number' ? this.tasks.get(id) : undefined;
        if (!running) return this.violation(child, `an answer to task ${JSON.stringify(id)}, which is not running`);
        const parsed = (running.kind === 'open' ? OpenResultSchema : SessionResultSchema).safeParse(message.result);
        if (!parsed.success) return this.violation(child, `an answer to its ${running.kind} task that is not a result of it: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
        this.tasks.delete(id as number);
        running.relay?.close();
        running.calloutPort?.close();
        running.resolve(parsed.data);
        return;
      }
      case 'fatal': {
        const parsed = SerializedErrorSchema.safeParse(message.error);
        if (!hasOnlyKeys(message, FATAL_KEYS) || !parsed.success) return this.violation(child, 'a fatal-error report that is not one');
        this.fatal ??= { name: parsed.data.name, message: parsed.data.message };
        return;
      }
      default:
        return this.violation(child, `a message of unknown type ${JSON.stringify(message.t)?.slice(0, 64)}`);
    }
  }

  /** `{ t: 'port', ch, m }` or `{ t: 'port', ch, close: true }`, on a channel that can exist. */
  private onPortEnvelope(child: LibraryChild, envelope: Record<string, unknown>): void {
    const { ch, m, close } = envelope;
    if (!hasOnlyKeys(envelope, PORT_ENVELOPE_KEYS)) return this.violation(child, 'a port message with unknown fields');
    if (typeof ch !== 'string' || !(ch === 'callout' || ch === 'io' || RELAYED_CHANNEL.test(ch))) {
      return this.violation(child, 'a port message without a valid channel');
    }
    if (close !== undefined) {
      if (close !== true || m !== undefined || ch === 'callout') return this.violation(child, `a close of channel ${ch} that is not one`);
    } else if (!isRecord(m)) {
      return this.violation(child, `a message on channel ${ch} that is not an object`);
    }
    for (const running of this.tasks.values()) {
      if (ch === 'callout') running.calloutPort?.deliver(m);
      else running.relay?.deliver(close ? { t: 'port', ch, close: true } : { t: 'port', ch, m });
    }
  }

  private violation(child: LibraryChild, what: string): void {
    if (child !== this.child) return;
    // Not retired at once: the exit reports it, with this as the cause.
    this.protocolError ??= `the library's process sent ${what}`;
    this.kill(child);
  }

  private onChildGone(child: LibraryChild, err: Error): void {
    if (child !== this.child) return;
    this.child = undefined;
    child.channel.destroy();
    const hadTasks = this.tasks.size > 0;
    this.failTasks(err);
    if (!hadTasks && !this.destroyed) this.emit('error', err);
  }

  private failTasks(err: Error): void {
    const tasks = [...this.tasks.values()];
    this.tasks.clear();
    for (const running of tasks) {
      running.relay?.close();
      running.calloutPort?.close();
      running.reject(err);
    }
  }

  /** The child's end, in the words piscina uses for a worker's, so LibraryHost classifies both alike. */
  private deathError(code: number | null, signal: NodeJS.Signals | null): Error {
    if (this.protocolError) return Object.assign(new Error(this.protocolError), { code: 'ERR_D2BOX_PROTOCOL' });
    if (/heap limit|heap out of memory|Allocation failed/i.test(this.stderrTail)) {
      // The library writes its own stderr: the text alone would let it choose `oom` for its death.
      const evidence = this.heapWitness?.();
      if (!evidence?.nearLimit) {
        const claim = this.stderrTail.split('\n').find((line) => /heap limit|heap out of memory|Allocation failed/i.test(line)) ?? '';
        return new Error(
          `the library process wrote of running out of heap, but the host saw its sandbox hold at most ${evidence?.peakMb ?? '?'} MB, not near its heap limit (${code !== null ? `exit code ${code}` : `signal ${signal}`}): ${JSON.stringify(claim.slice(0, 500))}`,
        );
      }
      return Object.assign(new Error(`the library process reached its heap limit (the host saw its sandbox hold ${evidence.peakMb} MB)`), { code: 'ERR_WORKER_OUT_OF_MEMORY' });
    }
    if (this.fatal) return Object.assign(new Error(this.fatal.message), { name: this.fatal.name });
    // bwrap, the outermost process of the sandbox's PID namespace, reports a command
    // killed by a signal as exit code 128 + the signal's number.
    signal ??= code !== null && code > 128 ? signalName(code - 128) : null;
    if (signal === 'SIGXCPU') return Object.assign(new Error('the library process used up its CPU time (max-cpu-seconds)'), { code: 'ERR_D2BOX_CPU_LIMIT' });
    if (signal) return new Error(`the library process was killed by ${signal}`);
    const tail = this.stderrTail.trim().split('\n').slice(-3).join(' | ');
    return new Error(`worker exited with code ${code}${tail ? `: ${tail}` : ''}`);
  }
}

function signalName(signo: number): NodeJS.Signals | null {
  for (const [name, number] of Object.entries(osConstants.signals)) if (number === signo) return name as NodeJS.Signals;
  return null;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function hasOnlyKeys(record: Record<string, unknown>, allowed: Set<string>): boolean {
  for (const key of Object.keys(record)) if (!allowed.has(key)) return false;
  return true;
}
