/**
 * CalloutHandle, the library's side, for one round trip: the arguments the host
 * sent, the status, and this library's context. It records what the library set
 * or deleted, so only changes travel back.
 */
import type { NextStepStatus } from '../src/hooks/protocol.js';
import type { CalloutHandle as CalloutHandleApi, LibraryHandle } from './hooks-api.js';

export class NoSuchArgument extends Error {
  override name = 'NoSuchArgument';
}

export class NoSuchCalloutContext extends Error {
  override name = 'NoSuchCalloutContext';
}

export class CalloutHandle implements CalloutHandleApi {
  private status: NextStepStatus;
  private set: Record<string, unknown> | undefined;
  private deleted: Set<string> | undefined;
  private context: Record<string, unknown>;
  private contextChanged = false;

  constructor(
    private readonly hook: string,
    private readonly args: Record<string, unknown>,
    status: NextStepStatus,
    context: Record<string, unknown> | undefined,
    private readonly library: LibraryHandle,
    private readonly libraryIndex: number,
  ) {
    this.status = status;
    this.context = context ?? {};
  }

  getArgument<T = unknown>(name: string): T {
    if (!Object.hasOwn(this.args, name)) throw new NoSuchArgument(`unable to find argument with name ${name}`);
    return this.args[name] as T;
  }

  setArgument(name: string, value: unknown): void {
    this.args[name] = value;
    (this.set ??= {})[name] = value;
    this.deleted?.delete(name);
  }

  deleteArgument(name: string): void {
    if (!Object.hasOwn(this.args, name)) return;
    delete this.args[name];
    if (this.set) delete this.set[name];
    (this.deleted ??= new Set()).add(name);
  }

  deleteAllArguments(): void {
    for (const name of Object.keys(this.args)) this.deleteArgument(name);
  }

  getArgumentNames(): string[] {
    return Object.keys(this.args);
  }

  getStatus(): NextStepStatus {
    return this.status;
  }

  setStatus(status: NextStepStatus): void {
    // Not an integer, it could not cross back (the host's protocol check would terminate the
    // worker and every callout in flight on it): fail this callout instead. Integers that are
    // no next-step status stay allowed; the host treats them as CONTINUE.
    if (!Number.isInteger(status)) {
      throw new TypeError(`setStatus: ${String(status)} is not a next-step status (use NextStep.CONTINUE, SKIP, DROP or PARK)`);
    }
    this.status = status;
  }

  getContext<T = unknown>(name: string): T {
    if (!Object.hasOwn(this.context, name)) {
      throw new NoSuchCalloutContext(`unable to find callout context item ${name} in the context associated with current library`);
    }
    return this.context[name] as T;
  }

  setContext(name: string, value: unknown): void {
    this.context[name] = value;
    this.contextChanged = true;
  }

  deleteContext(name: string): void {
    if (!Object.hasOwn(this.context, name)) return;
    delete this.context[name];
    this.contextChanged = true;
  }

  deleteAllContext(): void {
    this.context = {};
    this.contextChanged = true;
  }

  getContextNames(): string[] {
    return Object.keys(this.context);
  }

  getCurrentLibrary(): string {
    return this.library.getLibraryName();
  }

  getCurrentLibraryIndex(): number {
    return this.libraryIndex;
  }

  getCurrentHook(): string {
    return this.hook;
  }

  getLibraryHandle(): LibraryHandle {
    return this.library;
  }

  /** What goes back to the host. */
  changes(): {
    status: NextStepStatus;
    set?: Record<string, unknown>;
    deleted?: string[];
    context?: Record<string, unknown>;
  } {
    return {
      status: this.status,
      set: this.set,
      deleted: this.deleted && this.deleted.size > 0 ? [...this.deleted] : undefined,
      context: this.contextChanged ? this.context : undefined,
    };
  }
}
