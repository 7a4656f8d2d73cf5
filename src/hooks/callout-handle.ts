/**
 * CalloutHandle, the server's side: the arguments of a hook call, the next-step
 * status, and each library's context for the life of one request (Kea keeps
 * context per library per handle, across hook points). Libraries see a copy in
 * their worker; what they change comes back through LibraryHost and is applied
 * here only after it passed the hook point's schema.
 */
import { NextStep, type NextStepStatus } from './protocol.js';

const DONE: Promise<void> = Promise.resolve();

export class NoSuchArgument extends Error {
  override name = 'NoSuchArgument';
}

export class CalloutHandle {
  private readonly args = new Map<string, unknown>();
  private status: NextStepStatus = NextStep.CONTINUE;
  /** Per library (by index) context; a library never sees another's. */
  private readonly contexts = new Map<number, Record<string, unknown>>();
  private destroyHook: (() => Promise<void>) | undefined;
  private destroyed = false;

  /** Set by HooksManager when context_destroy callouts exist. */
  onDestroy(callback: () => Promise<void>): void {
    this.destroyHook = callback;
  }

  setArgument(name: string, value: unknown): this {
    this.args.set(name, value);
    return this;
  }

  getArgument<T = unknown>(name: string): T {
    if (!this.args.has(name)) throw new NoSuchArgument(`unable to find argument with name ${name}`);
    return this.args.get(name) as T;
  }

  hasArgument(name: string): boolean {
    return this.args.has(name);
  }

  deleteArgument(name: string): void {
    this.args.delete(name);
  }

  deleteAllArguments(): void {
    this.args.clear();
  }

  getArgumentNames(): string[] {
    return [...this.args.keys()];
  }

  /** All arguments, for sending to a worker. */
  argumentEntries(): IterableIterator<[string, unknown]> {
    return this.args.entries();
  }

  /** Each argument in insertion order, without the iterator and [name, value] pairs argumentEntries allocates. */
  forEachArgument(callback: (value: unknown, name: string) => void): void {
    this.args.forEach(callback);
  }

  getStatus(): NextStepStatus {
    return this.status;
  }

  setStatus(status: NextStepStatus): void {
    this.status = status;
  }

  getLibraryContext(libraryIndex: number): Record<string, unknown> | undefined {
    return this.contexts.get(libraryIndex);
  }

  setLibraryContext(libraryIndex: number, context: Record<string, unknown>): void {
    if (Object.keys(context).length === 0) this.contexts.delete(libraryIndex);
    else this.contexts.set(libraryIndex, context);
  }

  /** Whether destroy() has context_destroy callouts to run (else it settles at once). */
  get hasDestroyCallouts(): boolean {
    return this.destroyHook !== undefined && !this.destroyed;
  }

  /** Runs context_destroy callouts (once); call when the request is over. */
  destroy(): Promise<void> {
    if (this.destroyed) return DONE;
    this.destroyed = true;
    const hook = this.destroyHook;
    if (!hook) {
      this.contexts.clear();
      return DONE;
    }
    return hook().then(() => {
      this.contexts.clear();
    });
  }
}
