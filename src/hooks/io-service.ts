/**
 * IOService: the main loop's task scheduler as Kea hands it to hook libraries
 * (`io_context` of d2_srv_configured). Each library gets an IOServiceBridge
 * exposed to its worker with comlink; the callbacks it posts are comlink proxies
 * that run back in the library's thread. Every task is owned by a library, so a
 * library's pending tasks can be cancelled when it unloads or its worker dies.
 *
 * The library is not trusted: every message it sends on its IOService port is
 * checked in full before comlink sees it, its use of the main loop is rationed
 * (io-ration.ts), and nothing it sends or does can throw on the main loop.
 */
import * as Comlink from 'comlink';
import type { MessagePort } from 'node:worker_threads';
import type { IORation } from './io-ration.js';
import { IOCallbackAnswerSchema, parseIOServiceCall } from './protocol-schemas.js';
import { nodeEndpoint, type FailureKind, type IOCallback } from './protocol.js';

interface Task {
  owner: string;
  cancel(): void;
}

/** A library may not keep more than this many tasks pending: past it, post/timers throw. */
export const MAX_PENDING_TASKS_PER_LIBRARY = 10_000;

export class IOService {
  private nextId = 1;
  private readonly tasks = new Map<number, Task>();
  private readonly perOwner = new Map<string, number>();

  post(owner: string, fn: () => void): number {
    const id = this.track(owner);
    const handle = setImmediate(() => {
      this.untrack(id);
      fn();
    });
    this.tasks.set(id, { owner, cancel: () => clearImmediate(handle) });
    return id;
  }

  setTimeout(owner: string, fn: () => void, ms: number): number {
    const id = this.track(owner);
    const handle = setTimeout(() => {
      this.untrack(id);
      fn();
    }, ms);
    this.tasks.set(id, { owner, cancel: () => clearTimeout(handle) });
    return id;
  }

  setInterval(owner: string, fn: () => void, ms: number): number {
    const id = this.track(owner);
    const handle = setInterval(fn, Math.max(1, ms));
    this.tasks.set(id, { owner, cancel: () => clearInterval(handle) });
    return id;
  }

  cancel(owner: string, id: number): boolean {
    const task = this.tasks.get(id);
    if (!task || task.owner !== owner) return false;
    task.cancel();
    this.untrack(id);
    return true;
  }

  cancelAll(owner: string): number {
    let cancelled = 0;
    for (const [id, task] of this.tasks) {
      if (task.owner !== owner) continue;
      task.cancel();
      this.untrack(id);
      cancelled++;
    }
    return cancelled;
  }

  pending(owner?: string): number {
    return owner === undefined ? this.tasks.size : (this.perOwner.get(owner) ?? 0);
  }

  private track(owner: string): number {
    const count = this.perOwner.get(owner) ?? 0;
    if (count >= MAX_PENDING_TASKS_PER_LIBRARY) {
      throw new Error(`library ${owner} has ${count} IOService tasks pending, the limit`);
    }
    this.perOwner.set(owner, count + 1);
    return this.nextId++;
  }

  private untrack(id: number): void {
    const task = this.tasks.get(id);
    if (!task) return;
    this.tasks.delete(id);
    const count = (this.perOwner.get(task.owner) ?? 1) - 1;
    if (count <= 0) this.perOwner.delete(task.owner);
    else this.perOwner.set(task.owner, count);
  }
}

/** What the bridge tells its LibraryHost. */
export interface IOServiceBridgeEvents {
  /** A callback threw, rejected or did not answer in time: counted, and logged within a line budget. */
  callbackFailed(err: Error): void;
  /**
   * The library sent what the protocol does not allow, or stayed over its share:
   * its worker must go. `err` is set when the bridge itself failed (a stack to log).
   */
  violation(kind: Extract<FailureKind, 'protocol' | 'io-overload'>, message: string, err?: Error): void;
}

/** A callback the library handed over: the port it is called on, wrapped by comlink, answers checked. */
class LibraryCallback {
  private readonly remote: Comlink.Remote<IOCallback>;
  /** Calls sent and not answered yet: an answer beyond them is a message nobody asked for (a flood, on a thread). */
  private unanswered = 0;

  constructor(
    private readonly port: MessagePort,
    onBadAnswer: (why: string) => void,
    backstop: (err: unknown) => void,
  ) {
    this.remote = Comlink.wrap<IOCallback>(checked(nodeEndpoint(port), (data) => {
      if (this.unanswered === 0) {
        onBadAnswer('a callback sent a message the host did not ask for');
        return false;
      }
      const answer = IOCallbackAnswerSchema.safeParse(data);
      if (!answer.success) {
        onBadAnswer(`a callback answered with what comlink does not send: ${issueText(answer.error)}`);
        return false;
      }
      this.unanswered--;
      return true;
    }, backstop));
  }

  call(): Promise<unknown> {
    this.unanswered++;
    return this.remote() as Promise<unknown>;
  }

  /**
   * Closes its port (both ends: the library's side sees it close). Not comlink's
   * release, which waits for an answer the library could withhold.
   */
  release(): void {
    this.port.close();
  }
}

interface BridgeTask {
  callback: LibraryCallback;
  repeat: boolean;
  /** Fired and not answered yet. */
  running: boolean;
  /** Due, and held back by the ration (once-callbacks only). */
  waiting: boolean;
}

/**
 * One library's view of the IOService, served on its worker's IOService port.
 * Runs a fired callback in the worker with a deadline (comlink would otherwise
 * wait forever on a dead or hung worker), within the library's ration, and
 * reports failures to the host.
 */
export class IOServiceBridge {
  private closed = false;
  /** This bridge's own tasks by IOService id: the owner name alone is not unique (a library configured twice). */
  private readonly tasks = new Map<number, BridgeTask>();
  /** Once-callbacks that came due while the library was over its ration, oldest first. */
  private readonly waiting: number[] = [];
  private pendingCallbacks = 0;
  private readonly pendingCalls = new Set<(err: Error) => void>();
  private drainTimer: NodeJS.Timeout | undefined;
  private port: MessagePort | undefined;

  constructor(
    private readonly io: IOService,
    private readonly owner: string,
    private readonly ration: IORation,
    private readonly callbackTimeoutMs: number,
    private readonly events: IOServiceBridgeEvents,
  ) {}

  /**
   * Serves this bridge on `port` until close(). Only the four methods are
   * exposed: comlink lets the other side walk any property path, and this
   * object holds the shared IOService.
   */
  serve(port: MessagePort): void {
    const api = {
      post: (cb: LibraryCallback) => this.post(cb),
      setTimeout: (cb: LibraryCallback, ms: number) => this.setTimeout(cb, ms),
      setInterval: (cb: LibraryCallback, ms: number) => this.setInterval(cb, ms),
      cancel: (id: number) => this.cancel(id),
    };
    this.port = port;
    Comlink.expose(Object.freeze(api), checked(nodeEndpoint(port), (data) => this.admit(data), (err) => this.backstop(err)));
  }

  post(callback: LibraryCallback): number {
    this.adopt(callback);
    return this.schedule(callback, false, (due) => this.io.post(this.owner, due));
  }

  setTimeout(callback: LibraryCallback, ms: number): number {
    this.adopt(callback);
    const delay = checkDelay(ms, callback);
    return this.schedule(callback, false, (due) => this.io.setTimeout(this.owner, due, delay));
  }

  setInterval(callback: LibraryCallback, ms: number): number {
    this.adopt(callback);
    const period = Math.max(this.ration.limits.minIntervalMs, checkDelay(ms, callback));
    return this.schedule(callback, true, (due) => this.io.setInterval(this.owner, due, period));
  }

  cancel(id: number): boolean {
    const task = this.tasks.get(id);
    // A once-callback under way has run, as far as cancelling goes.
    if (!task || (!task.repeat && task.running)) return false;
    this.tasks.delete(id);
    this.io.cancel(this.owner, id);
    if (task.waiting) this.waiting.splice(this.waiting.indexOf(id), 1);
    if (!task.running) task.callback.release();
    return true;
  }

  /** Cancels the library's tasks and fails calls still waiting on its worker. */
  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.drainTimer);
    for (const [id, task] of this.tasks) {
      this.io.cancel(this.owner, id);
      task.callback.release();
    }
    this.tasks.clear();
    this.waiting.length = 0;
    const err = new Error(reason);
    for (const fail of this.pendingCalls) fail(err);
    this.pendingCalls.clear();
    this.port?.close();
  }

  /**
   * A message from the library, checked in full: what comlink may see (with the
   * callback's wire value replaced by a LibraryCallback), or undefined.
   */
  private admit(data: unknown): unknown {
    if (this.closed) return undefined;
    const parsed = parseIOServiceCall(data);
    if (!parsed.success) {
      this.fail('protocol', `IOService: the library sent a message the protocol does not allow (${issueText(parsed.error)})`);
      return undefined;
    }
    const call = parsed.data as { id: string; type: string; argumentList?: { type: string; value: unknown }[] };
    if (call.type !== 'APPLY') return call;
    const first = call.argumentList![0]!;
    const port = first.type === 'HANDLER' ? (first.value as MessagePort) : undefined;
    const refusal = this.callRefusal(port !== undefined);
    if (refusal !== undefined) {
      // Refused before comlink or a callback proxy is made: a storm costs the main loop as little as can be.
      port?.close();
      this.port?.postMessage({ id: call.id, type: 'HANDLER', name: 'throw', value: { isError: true, value: { name: 'Error', message: `IOService: ${refusal}` } } });
      if (this.ration.refused()) {
        this.fail('io-overload', `IOService: more than ${this.ration.limits.callsPerSecond} calls refused in one second (io-calls-per-second, io-max-timers)`);
      } else {
        this.heldBack();
      }
      return undefined;
    }
    if (port) call.argumentList![0] = { type: 'RAW', value: new LibraryCallback(port, (why) => this.fail('protocol', `IOService: ${why}`), (err) => this.backstop(err)) };
    return call;
  }

  /** Why a call must be refused (over the library's ration), if it must; counts it against the call rate. */
  private callRefusal(addsTask: boolean): string | undefined {
    const { limits } = this.ration;
    if (!this.ration.calls.take()) return `more than ${limits.callsPerSecond} calls per second (io-calls-per-second); call refused`;
    if (addsTask && this.tasks.size >= limits.maxTimers) return `${this.tasks.size} tasks live, the library's io-max-timers; call refused`;
    return undefined;
  }

  /** A call that comes when the bridge is closed is refused (its callback released). */
  private adopt(callback: LibraryCallback): void {
    if (!this.closed) return;
    callback.release();
    throw new Error(`IOService: library ${this.owner} is unloaded`);
  }

  private schedule(callback: LibraryCallback, repeat: boolean, start: (due: () => void) => number): number {
    let id: number;
    try {
      id = start(() => this.due(id));
    } catch (err) {
      callback.release();
      throw err;
    }
    this.tasks.set(id, { callback, repeat, running: false, waiting: false });
    return id;
  }

  /** A task's time came (the IOService calls this from a timer: it must not throw). */
  private due(id: number): void {
    try {
      const task = this.tasks.get(id);
      if (!task || this.closed) return;
      // An interval whose last run is still under way skips this tick; its own slowness, not an overload.
      if (task.running) return;
      if (this.waiting.length > 0 || !this.mayFire()) {
        this.heldBack();
        if (task.repeat || this.closed) return; // an interval's tick is skipped
        task.waiting = true;
        this.waiting.push(id);
        this.scheduleDrain();
        return;
      }
      this.fire(id, task);
    } catch (err) {
      this.backstop(err);
    }
  }

  /** Whether a callback may be fired now (and if so, it is counted against the rate). */
  private mayFire(): boolean {
    return this.pendingCallbacks < this.ration.limits.maxPendingCallbacks && this.ration.callbacks.take();
  }

  private fire(id: number, task: BridgeTask): void {
    task.running = true;
    this.pendingCallbacks++;
    let timer: NodeJS.Timeout | undefined;
    let fail!: (err: Error) => void;
    const deadline = new Promise<never>((_, reject) => {
      fail = reject;
      timer = setTimeout(() => reject(new Error(`IOService callback did not finish in ${this.callbackTimeoutMs} ms`)), this.callbackTimeoutMs);
    });
    this.pendingCalls.add(fail);
    Promise.race([Promise.resolve().then(() => task.callback.call()), deadline])
      .catch((err: unknown) => {
        if (!this.closed) this.events.callbackFailed(err instanceof Error ? err : new Error(String(err)));
      })
      .finally(() => {
        clearTimeout(timer);
        this.pendingCalls.delete(fail);
        this.pendingCallbacks--;
        task.running = false;
        if (this.closed) return;
        if (!task.repeat) this.tasks.delete(id);
        // A once-callback is done with; an interval cancelled while it ran too.
        if (this.tasks.get(id) !== task) task.callback.release();
        this.drain();
      })
      .catch((err: unknown) => this.backstop(err));
  }

  /** Fires the once-callbacks held back, as far as the ration allows. */
  private drain(): void {
    while (this.waiting.length > 0 && !this.closed && this.mayFire()) {
      const id = this.waiting.shift()!;
      const task = this.tasks.get(id);
      if (!task) continue;
      task.waiting = false;
      this.fire(id, task);
    }
    if (this.waiting.length > 0 && this.pendingCallbacks < this.ration.limits.maxPendingCallbacks) this.scheduleDrain();
  }

  /** Drains again when the rate allows another callback (a finishing callback drains too). */
  private scheduleDrain(): void {
    if (this.drainTimer || this.closed) return;
    this.drainTimer = setTimeout(() => {
      this.drainTimer = undefined;
      try {
        this.drain();
      } catch (err) {
        this.backstop(err);
      }
    }, Math.max(1, this.ration.callbacks.msUntilToken()));
  }

  private heldBack(): void {
    if (!this.closed && this.ration.heldBack()) {
      const { limits } = this.ration;
      this.fail('io-overload', `IOService: over its share for more than ${limits.throttleSeconds} s in a row ` +
        `(io-max-timers ${limits.maxTimers}, io-max-pending-callbacks ${limits.maxPendingCallbacks}, ` +
        `io-callbacks-per-second ${limits.callbacksPerSecond}, io-calls-per-second ${limits.callsPerSecond})`);
    }
  }

  /** The library's IOService ends here; its host terminates the worker. */
  private fail(kind: 'protocol' | 'io-overload', message: string, err?: Error): void {
    if (this.closed) return;
    this.close(`hook library ${this.owner}: ${message}`);
    this.events.violation(kind, message, err);
  }

  /** Anything the checks above missed: the library's failure, never the daemon's. */
  private backstop(err: unknown): void {
    const error = err instanceof Error ? err : new Error(String(err));
    try {
      this.fail('protocol', `IOService: handling what the library sent failed: ${error.message}`, error);
    } catch {
      // The host's own reporting failed: nothing more can be done from here.
    }
  }
}

function checkDelay(ms: number, callback: LibraryCallback): number {
  if (!Number.isFinite(ms) || ms < 0 || ms > 2_147_483_647) {
    callback.release();
    throw new RangeError(`timer delay must be a number of milliseconds between 0 and 2147483647, got ${String(ms)}`);
  }
  return ms;
}

function issueText(error: { issues: { path: PropertyKey[]; message: string }[] }): string {
  const issue = error.issues[0];
  if (!issue) return 'unknown';
  return issue.path.length > 0 ? `${issue.path.map(String).join('.')}: ${issue.message}` : issue.message;
}

/**
 * `endpoint`, passing on to comlink only what `admit` lets through (possibly
 * rewritten). A throw while comlink handles a message lands in `backstop`
 * instead of on the main loop.
 */
function checked(endpoint: Comlink.Endpoint, admit: (data: unknown) => unknown, guard: (err: unknown) => void): Comlink.Endpoint {
  const wrapped = new WeakMap<object, EventListener>();
  return {
    postMessage: (message: unknown, transfer?: Transferable[]) => {
      try {
        endpoint.postMessage(message, transfer);
      } catch (err) {
        guard(err);
      }
    },
    addEventListener: (type: string, listener: EventListenerOrEventListenerObject) => {
      const filtered: EventListener = (event) => {
        try {
          const admitted = admit((event as MessageEvent).data);
          if (admitted === undefined || admitted === false) return;
          const data = admitted === true ? (event as MessageEvent).data : admitted;
          if ('handleEvent' in listener) listener.handleEvent({ data } as MessageEvent);
          else listener({ data } as MessageEvent);
        } catch (err) {
          guard(err);
        }
      };
      wrapped.set(listener, filtered);
      endpoint.addEventListener(type, filtered);
    },
    removeEventListener: (type: string, listener: EventListenerOrEventListenerObject) => {
      const filtered = wrapped.get(listener);
      if (filtered) endpoint.removeEventListener(type, filtered);
    },
    start: () => endpoint.start?.(),
  };
}
