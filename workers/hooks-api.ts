/**
 * `d2box/hooks`: what a hook library imports. The names are Kea's
 * (`src/lib/hooks`): a library exports `version`, `load`, `unload`,
 * `multi_threading_compatible` and callouts named after hook points, and works
 * with a LibraryHandle in `load` and a CalloutHandle in each callout.
 */
export { HOOKS_VERSION, NextStep } from '../src/hooks/protocol.js';
export type { NextStepStatus, IOCallback } from '../src/hooks/protocol.js';

import type { IOCallback, NextStepStatus } from '../src/hooks/protocol.js';

/** A callout: 0 is success; non-zero is logged by the server and the chain goes on. */
export type Callout = (handle: CalloutHandle) => number | Promise<number>;

export interface LibraryHandle {
  /** Adds a callout on a hook point (several per hook run in registration order). */
  registerCallout(hook: string, callout: Callout): void;
  /** Removes this library's registrations of exactly this callout; true if any. */
  deregisterCallout(hook: string, callout: Callout): boolean;
  /** Removes all of this library's callouts on the hook; true if any. */
  deregisterAllCallouts(hook: string): boolean;
  /** Makes control command `command` answerable by `callout` (hook `$command`). */
  registerCommandCallout(command: string, callout: Callout): void;
  /** A parameter from the library's `parameters`, or null when absent. */
  getParameter(name: string): unknown;
  getParameters(): Record<string, unknown>;
  getParameterNames(): string[];
  /** The library as configured, e.g. its path. */
  getLibraryName(): string;
}

export interface CalloutHandle {
  /** An argument; throws NoSuchArgument when the hook point has none by that name. */
  getArgument<T = unknown>(name: string): T;
  setArgument(name: string, value: unknown): void;
  deleteArgument(name: string): void;
  deleteAllArguments(): void;
  getArgumentNames(): string[];

  getStatus(): NextStepStatus;
  setStatus(status: NextStepStatus): void;

  /** Per-library context, kept across hook points of one request. Missing name throws. */
  getContext<T = unknown>(name: string): T;
  setContext(name: string, value: unknown): void;
  deleteContext(name: string): void;
  deleteAllContext(): void;
  getContextNames(): string[];

  /** The library whose callout is running, as configured. */
  getCurrentLibrary(): string;
  /** The library's 1-based position in hooks-libraries (Kea's library index). */
  getCurrentLibraryIndex(): number;
  getCurrentHook(): string;
  getLibraryHandle(): LibraryHandle;
}

/** The server's IOService, as `d2_srv_configured` hands it over in `io_context`. */
export interface IOService {
  post(callback: IOCallback): Promise<number>;
  setTimeout(callback: IOCallback, ms: number): Promise<number>;
  setInterval(callback: IOCallback, ms: number): Promise<number>;
  cancel(id: number): Promise<boolean>;
}

/** The TSIG key `select_key` reads and may replace in `tsig_key`. */
export interface TsigKey {
  name: string;
  algorithm: 'HMAC-MD5' | 'HMAC-SHA1' | 'HMAC-SHA224' | 'HMAC-SHA256' | 'HMAC-SHA384' | 'HMAC-SHA512';
  secret: string;
  'digest-bits'?: number;
}

/**
 * What `select_key` may set in `tsig_key`: a configured key by its name (the portable way:
 * the server fills in algorithm and secret, in a thread and in a sandboxed process alike),
 * a whole key of the library's own (only where it sees secrets), or null for none.
 */
export type TsigKeyChoice = { name: string } | TsigKey | null;

/** A control command's answer, as a command callout sets it in `response`. */
export interface CommandResponse {
  result: number;
  text?: string;
  arguments?: unknown;
}
