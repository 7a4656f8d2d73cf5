/**
 * LibraryHandle, the worker's side: the library's callout table and parameters.
 * The host learns the table from `registrations` after load and whenever a
 * callout changes it, so it only sends callouts this library has.
 */
import { MAX_CALLOUTS_PER_HOOK, type Registrations } from '../src/hooks/protocol.js';
import type { Callout, KeyHolder, LentSocket, LibraryHandle as LibraryHandleApi, StatsMgr } from './hooks-api.js';
import type { LentNetworkClient } from './lent-network.js';

const NO_CALLOUTS: readonly Callout[] = Object.freeze([]);

export class NoSuchHook extends Error {
  override name = 'NoSuchHook';
}

export class LibraryHandle implements LibraryHandleApi {
  private readonly callouts = new Map<string, Callout[]>();
  /** Set whenever the table changes; the worker reports it and clears this. */
  dirty = false;

  constructor(
    private readonly libraryName: string,
    private readonly parameters: Readonly<Record<string, unknown>>,
    private readonly hookPoints: ReadonlySet<string>,
    readonly statsMgr: StatsMgr,
    private readonly network: LentNetworkClient,
  ) {}

  connect(endpoint: { address: string; port: number; protocol: 'udp' | 'tcp' }): Promise<LentSocket> {
    return this.network.connect(endpoint);
  }

  registerCallout(hook: string, callout: Callout): void {
    // As Kea's CalloutManager: only registered hook points, or command hooks.
    if (!this.hookPoints.has(hook) && !hook.startsWith('$')) {
      throw new NoSuchHook(`hook name ${hook} is not recognized`);
    }
    if (typeof callout !== 'function') throw new TypeError(`callout for ${hook} is not a function`);
    if ((this.callouts.get(hook)?.length ?? 0) >= MAX_CALLOUTS_PER_HOOK) throw new RangeError(`hook ${hook} has ${MAX_CALLOUTS_PER_HOOK} callouts of this library, the most it may register`);
    // Copy on write: a chain iterating the old list is not disturbed (as Kea).
    this.setList(hook, [...(this.callouts.get(hook) ?? []), callout]);
  }

  deregisterCallout(hook: string, callout: Callout): boolean {
    const list = this.callouts.get(hook);
    if (!list) return false;
    const kept = list.filter((c) => c !== callout);
    if (kept.length === list.length) return false;
    this.setList(hook, kept);
    return true;
  }

  deregisterAllCallouts(hook: string): boolean {
    const had = (this.callouts.get(hook)?.length ?? 0) > 0;
    this.callouts.delete(hook);
    if (had) this.dirty = true;
    return had;
  }

  registerCommandCallout(command: string, callout: Callout): void {
    if (typeof command !== 'string' || command.length === 0) throw new TypeError('command name must be a non-empty string');
    this.registerCallout('$' + command.replaceAll('-', '_'), callout);
  }

  getParameter(name: string): unknown {
    return Object.hasOwn(this.parameters, name) ? this.parameters[name] : null;
  }

  getParameters(): Record<string, unknown> {
    return this.parameters as Record<string, unknown>;
  }

  getParameterNames(): string[] {
    return Object.keys(this.parameters);
  }

  getLibraryName(): string {
    return this.libraryName;
  }

  /** The holder of the keys this library hands back as held (registerKeyHolder). */
  keyHolder: KeyHolder | undefined;

  registerKeyHolder(holder: KeyHolder): void {
    if (typeof holder?.sign !== 'function' || typeof holder?.verify !== 'function') throw new TypeError('a key holder has sign and verify functions');
    this.keyHolder = holder;
  }

  calloutsFor(hook: string): readonly Callout[] {
    return this.callouts.get(hook) ?? NO_CALLOUTS;
  }

  registrations(): Registrations {
    const table: Registrations = {};
    for (const [hook, list] of this.callouts) if (list.length > 0) table[hook] = list.length;
    return table;
  }

  private setList(hook: string, list: Callout[]): void {
    if (list.length === 0) this.callouts.delete(hook);
    else this.callouts.set(hook, list);
    this.dirty = true;
  }
}
