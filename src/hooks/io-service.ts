/**
 * IOService: the main loop's task scheduler as Kea hands it to hook libraries
 * (`io_context` of d2_srv_configured). Each library gets an IOServiceBridge
 * exposed to its worker with comlink; the callbacks it posts are comlink proxies
 * that run back in the library's thread. Every task is owned by a library, so a
 * library's pending tasks can be cancelled when it unloads or its worker dies.
 */
import * as Comlink from 'comlink';
import type { MessagePort } from 'node:worker_threads';
import { acceptIOServiceMessage } from './protocol-schemas.js';
import { nodeEndpoint, type IOCallback, type IOServiceRemote } from './protocol.js';

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

/**
 * One library's view of the IOService, served on its worker's IOService port.
 * Runs a fired callback in the worker with a deadline (comlink would otherwise
 * wait forever on a dead or hung worker) and reports failures to the host.
 */
export class IOServiceBridge implements IOServiceRemote {
  private closed = false;
  private readonly pendingCalls = new Set<(err: Error) => void>();
  private readonly proxies = new Set<Comlink.Remote<IOCallback>>();
  /** Ids of this bridge's own pending tasks: the owner name alone is not unique (a library configured twice). */
  private readonly tasks = new Set<number>();

  constructor(
    private readonly io: IOService,
    private readonly owner: string,
    private readonly callbackTimeoutMs: number,
    private readonly onCallbackFailure: (err: Error) => void,
  ) {}

  /**
   * Serves this bridge on `port` until close(). Only the four methods are
   * exposed: comlink lets the other side walk any property path, and this
   * object holds the shared IOService.
   */
  serve(port: MessagePort): void {
    const api: IOServiceRemote = {
      post: (cb) => this.post(cb),
      setTimeout: (cb, ms) => this.setTimeout(cb, ms),
      setInterval: (cb, ms) => this.setInterval(cb, ms),
      cancel: (id) => this.cancel(id),
    };
    Comlink.expose(Object.freeze(api), callsOnly(nodeEndpoint(port)));
    this.port = port;
  }
  private port: MessagePort | undefined;

  post(callback: IOCallback): number {
    const remote = this.adopt(callback);
    const id: number = this.io.post(this.owner, () => {
      this.tasks.delete(id);
      this.fire(remote, true);
    });
    this.tasks.add(id);
    return id;
  }

  setTimeout(callback: IOCallback, ms: number): number {
    const remote = this.adopt(callback);
    const id: number = this.io.setTimeout(this.owner, () => {
      this.tasks.delete(id);
      this.fire(remote, true);
    }, checkDelay(ms));
    this.tasks.add(id);
    return id;
  }

  setInterval(callback: IOCallback, ms: number): number {
    const remote = this.adopt(callback);
    const id = this.io.setInterval(this.owner, () => this.fire(remote, false), checkDelay(ms));
    this.tasks.add(id);
    return id;
  }

  cancel(id: number): boolean {
    return this.tasks.delete(id) && this.io.cancel(this.owner, id);
  }

  /** Cancels the library's tasks and fails calls still waiting on its worker. */
  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    for (const id of this.tasks) this.io.cancel(this.owner, id);
    this.tasks.clear();
    const err = new Error(reason);
    for (const fail of this.pendingCalls) fail(err);
    this.pendingCalls.clear();
    this.proxies.clear();
    this.port?.close();
  }

  private adopt(callback: IOCallback): Comlink.Remote<IOCallback> {
    if (this.closed) throw new Error(`library ${this.owner} is unloaded`);
    const remote = callback as unknown as Comlink.Remote<IOCallback>;
    this.proxies.add(remote);
    return remote;
  }

  private fire(remote: Comlink.Remote<IOCallback>, once: boolean): void {
    if (this.closed) return;
    let timer: NodeJS.Timeout | undefined;
    let fail!: (err: Error) => void;
    const deadline = new Promise<never>((_, reject) => {
      fail = reject;
      timer = setTimeout(() => reject(new Error(`IOService callback did not finish in ${this.callbackTimeoutMs} ms`)), this.callbackTimeoutMs);
    });
    this.pendingCalls.add(fail);
    Promise.race([remote(), deadline])
      .catch((err: Error) => {
        if (!this.closed) this.onCallbackFailure(err);
      })
      .finally(() => {
        clearTimeout(timer);
        this.pendingCalls.delete(fail);
        if (once && !this.closed) {
          this.proxies.delete(remote);
          void Promise.resolve(remote[Comlink.releaseProxy]()).catch(() => {});
        }
      });
  }
}

function checkDelay(ms: number): number {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0 || ms > 2_147_483_647) {
    throw new RangeError(`timer delay must be a number of milliseconds between 0 and 2147483647, got ${String(ms)}`);
  }
  return ms;
}

/** `endpoint`, passing on only the calls a library may make (acceptIOServiceMessage). */
function callsOnly(endpoint: Comlink.Endpoint): Comlink.Endpoint {
  const wrapped = new WeakMap<object, EventListener>();
  return {
    postMessage: (message: unknown, transfer?: Transferable[]) => endpoint.postMessage(message, transfer),
    addEventListener: (type: string, listener: EventListenerOrEventListenerObject) => {
      const filtered: EventListener = (event) => {
        if (!acceptIOServiceMessage((event as MessageEvent).data)) return;
        if ('handleEvent' in listener) listener.handleEvent(event);
        else listener(event);
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
