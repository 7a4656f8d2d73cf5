/**
 * ProcessPool: one hook library in a sandboxed child process, behind the few
 * things LibraryHost asks of its piscina pool — run a task (with an abort
 * signal), report an idle death, destroy — so the host's callers cannot tell
 * the two isolation modes apart except by cost.
 *
 * Like piscina with one thread, a task runs on the live child, and a child that
 * died or was aborted is replaced by a new one when the next task comes. The
 * session task's ports are relayed over the IPC channel (ipc-ports.ts): the
 * callout port as the channel 'callout', the IOService port as 'io'.
 *
 * The child is not trusted: every envelope it sends is checked here before it
 * goes anywhere; one that does not fit kills it (a 'protocol' death).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { constants as osConstants } from 'node:os';
import type { MessagePort } from 'node:worker_threads';
import { PortRelay } from './ipc-ports.js';
import type { SandboxCommand } from './process-sandbox.js';
import type { ChildToHost, HostMessage, HostToChild, OpenTask, PortEnvelope, WorkerBootData } from './protocol.js';

/** How much of the child's stderr is kept to explain its death. */
const STDERR_TAIL_CHARS = 4096;

interface RunningTask {
  resolve: (result: unknown) => void;
  reject: (err: Error) => void;
  relay?: PortRelay;
  calloutPort?: IpcCalloutPort;
}

/**
 * A session's callout port in process mode: straight on the child's IPC channel.
 * Relaying it through a MessagePort pair in the host, as the IOService port is,
 * cost each batch two more structured-clone passes in the main thread (the bench
 * measured 2.5× the thread mode's round trip at 64 in flight that way); callouts
 * never carry ports, so nothing needs the relay here.
 */
export class IpcCalloutPort {
  private listener: ((message: unknown) => void) | undefined;
  private send: ((message: HostMessage) => void) | undefined;

  postMessage(message: HostMessage): void {
    // Throws at once on a value that cannot be serialized, as MessagePort.postMessage does.
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

/** The session task in process mode: the callout port is the IPC channel's, the IOService port is relayed. */
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
  private child: ChildProcess | undefined;
  private readonly tasks = new Map<number, RunningTask>();
  private nextTaskId = 1;
  private stderrTail = '';
  private fatal: { name: string; message: string } | undefined;
  private protocolError: string | undefined;
  private destroyed = false;

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
    return this.child?.pid;
  }

  run(task: OpenTask | ProcessSessionTask, options: RunOptions = {}): Promise<unknown> {
    if (this.destroyed) return Promise.reject(new Error('the library process pool was destroyed'));
    const child = this.child ?? this.spawnChild();
    const id = this.nextTaskId++;
    return new Promise((resolve, reject) => {
      const running: RunningTask = { resolve, reject };
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
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    this.retire(child, new Error('the library process pool was destroyed'));
    if (child.exitCode === null && child.signalCode === null) await exited;
  }

  /**
   * Writes the child off at once: its tasks fail with `err`, the next task gets a
   * new child, and what the old one still sends or how it ends no longer counts.
   */
  private retire(child: ChildProcess, err: Error): void {
    if (child !== this.child) return;
    this.child = undefined;
    this.failTasks(err);
    child.kill('SIGKILL');
  }

  private spawnChild(): ChildProcess {
    this.stderrTail = '';
    this.fatal = undefined;
    this.protocolError = undefined;
    const child = spawn(this.command.file, this.command.args, {
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      serialization: 'advanced',
      env: this.command.env,
    });
    this.child = child;
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-STDERR_TAIL_CHARS);
    });
    child.on('message', (message: unknown) => this.onChildMessage(child, message));
    child.on('error', (err) => this.onChildGone(child, err));
    child.on('exit', (code, signal) => this.onChildGone(child, this.deathError(code, signal)));
    this.post(child, { t: 'boot', boot: this.boot });
    return child;
  }

  /**
   * Sends to the child. A message that cannot be serialized throws here, at once,
   * as MessagePort.postMessage does (the callout port relies on it); one that
   * cannot be written fails like the worker did: the child is written off.
   */
  private postNow(child: ChildProcess, message: HostToChild): void {
    if (!child.connected) return;
    child.send(message, (err) => {
      if (err && child === this.child) child.kill('SIGKILL');
    });
  }

  /** postNow() for the host's own messages and relayed ports, where nobody could take a throw. */
  private post(child: ChildProcess, message: HostToChild): void {
    try {
      this.postNow(child, message);
    } catch {
      if (child === this.child) child.kill('SIGKILL');
    }
  }

  private onChildMessage(child: ChildProcess, raw: unknown): void {
    if (child !== this.child) return;
    const message = raw as ChildToHost;
    if (typeof message !== 'object' || message === null) return this.violation(child, 'a message that is not an object');
    switch (message.t) {
      case 'port': {
        if (typeof message.ch !== 'string') return this.violation(child, 'a port message without a channel');
        for (const running of this.tasks.values()) {
          if (message.ch === 'callout') running.calloutPort?.deliver(message.m);
          else running.relay?.deliver(message as PortEnvelope);
        }
        return;
      }
      case 'done': {
        const running = this.tasks.get(message.id);
        if (!running) return this.violation(child, `an answer to task ${String(message.id)}, which is not running`);
        this.tasks.delete(message.id);
        running.relay?.close();
        running.calloutPort?.close();
        // The result's shape is the host's to check (LibraryHost reads it as piscina's).
        running.resolve(typeof message.result === 'object' && message.result !== null ? message.result : {});
        return;
      }
      case 'fatal': {
        const error = message.error as { name?: unknown; message?: unknown } | undefined;
        this.fatal = { name: String(error?.name ?? 'Error'), message: String(error?.message ?? '') };
        return;
      }
      default:
        return this.violation(child, `a message of unknown type ${JSON.stringify((message as { t?: unknown }).t)}`);
    }
  }

  private violation(child: ChildProcess, what: string): void {
    // Not retired at once: the exit reports it, with this as the cause.
    this.protocolError ??= `the library's process sent ${what}`;
    child.kill('SIGKILL');
  }

  private onChildGone(child: ChildProcess, err: Error): void {
    if (child !== this.child) return;
    this.child = undefined;
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
      return Object.assign(new Error('the library process reached its heap limit'), { code: 'ERR_WORKER_OUT_OF_MEMORY' });
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
