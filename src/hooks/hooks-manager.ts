/**
 * HooksManager: the server's entry to the hooks framework, as Kea's
 * HooksManager. It loads a configuration's libraries (each in its own worker),
 * calls hook points through them in configuration order, applies each
 * library's isolation policy when it fails, and routes control commands that
 * libraries registered.
 */
import { z } from 'zod';
import { escapeControls } from '../log/log-text.js';
import { CalloutHandle } from './callout-handle.js';
import { IOService } from './io-service.js';
import { HooksLibrariesSchema, type HookLibraryConfig, type HookLibraryConfigInput } from './library-config.js';
import { HookLibraryError, LibraryHost, type CalloutOutcome } from './library-host.js';
import type { LibraryStatsSnapshot } from './library-stats.js';
import { LibraryStatistics } from './library-statistics.js';
import { StatsMgr } from '../stats/stats-mgr.js';
import { ARG_REF_KEY, NextStep, type ArgRef, type NextStepStatus, type SerializedError } from './protocol.js';
import { ServerHooks, type CommandResponse, type HookPoint } from './server-hooks.js';

export class HooksLoadError extends Error {
  override name = 'HooksLoadError';
  constructor(
    /** The library that failed, as configured; empty for a malformed hooks-libraries list. */
    readonly library: string,
    message: string,
  ) {
    super(message);
  }
}

/** One library's failure during a hook call, after its policy was applied. */
export interface CalloutFailure {
  library: string;
  failure: SerializedError;
}

/** What a hook call went through. */
export interface ChainReport {
  failures: CalloutFailure[];
}

const NO_FAILURES: ChainReport = Object.freeze({ failures: Object.freeze([]) as unknown as CalloutFailure[] });
/** What validateChanges returns when a library changed no argument (read-only). */
const NO_CHANGES = Object.freeze({ set: Object.freeze([]) as unknown as [string, unknown][], deleted: Object.freeze([]) as unknown as string[] });

export interface HooksManagerOptions {
  serverHooks?: ServerHooks;
  io?: IOService;
  /** Where relative library paths are resolved from (default: the working directory). */
  baseDir?: string;
}

export class HooksManager {
  readonly serverHooks: ServerHooks;
  readonly io: IOService;
  private readonly baseDir: string | undefined;
  private libraries: LibraryHost[] = [];
  /** Hook name → libraries with callouts on it, in configuration order. */
  private byHook = new Map<string, LibraryHost[]>();
  private snapshot: { version: number; json_config: unknown; server_config: unknown } | undefined;
  private snapshotVersion = 0;
  /** Where libraries' statistics go: the daemon's StatsMgr once useStatistics is called. */
  private statistics = new LibraryStatistics(new StatsMgr());

  constructor(options: HooksManagerOptions = {}) {
    this.serverHooks = options.serverHooks ?? new ServerHooks();
    this.io = options.io ?? new IOService();
    this.baseDir = options.baseDir;
  }

  /** Libraries' statistics are kept in `stats`, beside the daemon's (before any library is loaded). */
  useStatistics(stats: StatsMgr): void {
    this.statistics = new LibraryStatistics(stats);
  }

  /**
   * Replaces the loaded set with `configs`, as Kea does: the new libraries are
   * opened and their versions checked first; then the old set is unloaded (in
   * reverse order) and the new one loaded (in order). When a new library fails,
   * the configuration is rejected with an error naming it, and the old set is
   * loaded again, so the server keeps the libraries it had.
   */
  async loadLibraries(configs: readonly HookLibraryConfigInput[]): Promise<void> {
    const parsed = parseLibraries(configs);
    const fresh = parsed.map((config, i) => this.createHost(config, i + 1));
    try {
      await Promise.all(fresh.map((host) => host.open()));
    } catch (err) {
      await Promise.all(fresh.map((host) => host.stop()));
      throw this.loadError(err);
    }
    const old = this.libraries;
    await this.stopAll(old);
    this.libraries = fresh;
    try {
      for (const host of fresh) {
        if (this.snapshot) host.publishSnapshot(this.snapshot.version, this.snapshot.json_config, this.snapshot.server_config);
        await host.start();
      }
    } catch (err) {
      await this.stopAll(fresh);
      this.libraries = old;
      await this.revive(old);
      throw this.loadError(err);
    } finally {
      this.rebuildIndex();
    }
  }

  /** Checks that each library opens and has the right version, without keeping it (Kea's validateLibraries). */
  async validateLibraries(configs: readonly HookLibraryConfigInput[]): Promise<string[]> {
    let parsed: HookLibraryConfig[];
    try {
      parsed = parseLibraries(configs);
    } catch (err) {
      return [(err as Error).message];
    }
    const hosts = parsed.map((config, i) => this.createHost(config, i + 1, () => {}));
    const errors: string[] = [];
    await Promise.all(
      hosts.map(async (host) => {
        try {
          await host.open();
        } catch (err) {
          errors.push((err as Error).message);
        } finally {
          await host.stop();
        }
      }),
    );
    return errors;
  }

  /** Unloads every library, in reverse order (shutdown). */
  async unloadLibraries(): Promise<void> {
    const old = this.libraries;
    this.libraries = [];
    await this.stopAll(old);
    this.rebuildIndex();
  }

  getLibraryNames(): string[] {
    return this.libraries.map((host) => host.name);
  }

  getLibraryStatistics(): LibraryStatsSnapshot[] {
    return this.libraries.map((host) => host.stats.snapshot());
  }

  /** `hooks-restart`: brings a quarantined library back. */
  async restartLibrary(name: string): Promise<void> {
    const host = this.libraries.find((h) => h.name === name);
    if (!host) throw new HookLibraryError(name, `no hook library named ${name} is configured`);
    await host.restart();
  }

  /**
   * Publishes a new configuration snapshot to every library, once; callouts
   * refer to it by version. The objects are frozen here so nothing changes them.
   */
  publishConfiguration(jsonConfig: unknown, serverConfig: unknown): number {
    const version = ++this.snapshotVersion;
    this.snapshot = { version, json_config: deepFreeze(structuredClone(jsonConfig)), server_config: deepFreeze(structuredClone(serverConfig)) };
    for (const host of this.libraries) host.publishSnapshot(version, this.snapshot.json_config, this.snapshot.server_config);
    return version;
  }

  /**
   * Runs d2_srv_configured after a (re)configuration: publishes the snapshot
   * and calls the hook with io_context, json_config, server_config and error.
   * A DROP status rejects the configuration with the `error` text. `extra`: arguments
   * no hook point declares (the load tester numbers this call `loadtest_seq` 0).
   */
  async configured(jsonConfig: unknown, serverConfig: unknown, extra: Record<string, unknown> = {}): Promise<{ accepted: true } | { accepted: false; error: string }> {
    this.publishConfiguration(jsonConfig, serverConfig);
    const handle = await this.createCalloutHandle();
    try {
      for (const [name, value] of Object.entries(extra)) handle.setArgument(name, value);
      handle
        .setArgument('io_context', this.io)
        .setArgument('json_config', this.snapshot!.json_config)
        .setArgument('server_config', this.snapshot!.server_config)
        .setArgument('error', '');
      const report = await this.callCallouts('d2_srv_configured', handle);
      if (this.nextStep('d2_srv_configured', handle) === NextStep.DROP) {
        // The library's own text goes into config-set's answer and the daemon's log: on one line, and bounded.
        const text = handle.hasArgument('error') ? boundedErrorText(String(handle.getArgument('error'))) : '';
        const cause = report.failures[0];
        return {
          accepted: false,
          error: text || (cause ? `hook library ${cause.library} failed (${cause.failure.kind}): ${cause.failure.message}` : 'd2_srv_configured callout set status DROP'),
        };
      }
      return { accepted: true };
    } finally {
      await handle.destroy();
    }
  }

  /** A handle for one request; context_create callouts run now, context_destroy on destroy(). */
  async createCalloutHandle(): Promise<CalloutHandle> {
    const handle = new CalloutHandle();
    if (this.byHook.has('context_create')) await this.callCallouts('context_create', handle);
    if (this.byHook.has('context_destroy')) {
      handle.onDestroy(async () => {
        await this.callCallouts('context_destroy', handle);
      });
    }
    return handle;
  }

  /**
   * createCalloutHandle without a promise when no library has a context_create
   * callout (the usual case): the handle at once, context_destroy wired as there.
   */
  openCalloutHandle(): CalloutHandle | Promise<CalloutHandle> {
    if (this.byHook.has('context_create')) return this.createCalloutHandle();
    const handle = new CalloutHandle();
    if (this.byHook.has('context_destroy')) {
      handle.onDestroy(async () => {
        await this.callCallouts('context_destroy', handle);
      });
    }
    return handle;
  }

  calloutsPresent(hook: string): boolean {
    return this.byHook.has(hook);
  }

  /**
   * Calls every library's callouts on `hook`, in configuration order. The
   * status starts at CONTINUE. Resolves when all libraries answered or failed;
   * never rejects because of a library.
   */
  callCallouts(hook: string, handle: CalloutHandle): Promise<ChainReport> {
    handle.setStatus(NextStep.CONTINUE);
    const libraries = this.byHook.get(hook);
    if (!libraries) return Promise.resolve(NO_FAILURES);
    const point = this.serverHooks.get(hook);
    // One library on the hook, the usual case: one promise and no async frame per call.
    if (libraries.length === 1) return this.callOne(point, libraries[0]!, handle);
    return this.runChain(point, libraries, handle);
  }

  /** The status the server acts on after a hook call: unsupported values count as CONTINUE. */
  nextStep(hook: string, handle: CalloutHandle): NextStepStatus {
    return this.serverHooks.effectiveStatus(hook, handle.getStatus());
  }

  commandHandlersPresent(command: string): boolean {
    return this.byHook.has(ServerHooks.commandToHookName(command));
  }

  /** Commands registered by libraries through registerCommandCallout. */
  getCommandNames(): string[] {
    return [...this.byHook.keys()].filter(ServerHooks.isCommandHook).map(ServerHooks.hookToCommandName).sort();
  }

  /**
   * Routes a control command to the libraries that registered it. Result 2
   * when none did; result 1 with the library and the reason when one fails or
   * sets no response.
   */
  async callCommandHandlers(command: string, args?: unknown): Promise<CommandResponse> {
    const hook = ServerHooks.commandToHookName(command);
    if (!this.byHook.has(hook)) return { result: 2, text: `'${command}' command not supported.` };
    const handle = await this.createCalloutHandle();
    try {
      handle.setArgument('command', args === undefined ? { command } : { command, arguments: args });
      const report = await this.callCallouts(hook, handle);
      const failed = report.failures[0];
      if (failed) {
        return { result: 1, text: `command '${command}' failed in hook library ${failed.library}: ${failed.failure.kind}: ${failed.failure.message}` };
      }
      if (!handle.hasArgument('response')) return { result: 1, text: `no hook library set a response to '${command}'` };
      return handle.getArgument<CommandResponse>('response');
    } finally {
      await handle.destroy();
    }
  }

  // -------------------------------------------------------------------------

  private createHost(config: HookLibraryConfig, index: number, onRegistrationsChanged = () => this.rebuildIndex()): LibraryHost {
    return new LibraryHost(config, index, {
      hookPoints: this.serverHooks.getHookNames(),
      io: this.io,
      baseDir: this.baseDir,
      onRegistrationsChanged,
      statistics: this.statistics,
    });
  }

  /** runChain for a single library, without its async frame; the same steps. */
  private callOne(point: HookPoint, library: LibraryHost, handle: CalloutHandle): Promise<ChainReport> {
    try {
      if (!library.hasCallouts(point.name)) return Promise.resolve(NO_FAILURES);
      const before = handle.getStatus();
      return library.call(point.name, before, this.encodeArguments(point, handle), handle.getLibraryContext(library.index)).then((outcome) => {
        const failure = this.applyOutcome(point, library, handle, before, outcome);
        return failure ? { failures: [{ library: library.name, failure }] } : NO_FAILURES;
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private async runChain(point: HookPoint, libraries: readonly LibraryHost[], handle: CalloutHandle): Promise<ChainReport> {
    let failures: CalloutFailure[] | undefined;
    for (const library of libraries) {
      if (!library.hasCallouts(point.name)) continue;
      const before = handle.getStatus();
      const outcome = await library.call(point.name, before, this.encodeArguments(point, handle), handle.getLibraryContext(library.index));
      const failure = this.applyOutcome(point, library, handle, before, outcome);
      if (failure) (failures ??= []).push({ library: library.name, failure });
    }
    return failures ? { failures } : NO_FAILURES;
  }

  /** The handle's arguments as they travel: snapshots and the IOService by reference. */
  private encodeArguments(point: HookPoint, handle: CalloutHandle): Record<string, unknown> {
    const args: Record<string, unknown> = {};
    handle.forEachArgument((value, name) => {
      const transport = point.arguments[name]?.transport;
      if (transport === 'io_context') {
        args[name] = { [ARG_REF_KEY]: 'io_context' } satisfies ArgRef;
      } else if (transport === 'snapshot' && this.snapshot && (name === 'json_config' || name === 'server_config') && value === this.snapshot[name]) {
        args[name] = { [ARG_REF_KEY]: 'snapshot', version: this.snapshot.version, part: name } satisfies ArgRef;
      } else {
        args[name] = value;
      }
    });
    return args;
  }

  /**
   * Applies one library's round trip to the handle. Changes to declared
   * arguments must pass the hook point's schema; `in` arguments are never taken
   * back. A failure applies the library's `on-failure` policy: `drop` sets DROP
   * (as Kea does for a throwing callout), `continue` leaves the status as it was.
   */
  private applyOutcome(point: HookPoint, library: LibraryHost, handle: CalloutHandle, before: NextStepStatus, outcome: CalloutOutcome): SerializedError | undefined {
    if (outcome.skipped) return undefined;
    const drop = library.policy['on-failure'] === 'drop';
    let failure = outcome.failure;
    const keepsChanges = !failure || failure.kind === 'throw' || failure.kind === 'reject' || failure.kind === 'log-flood';
    if (keepsChanges) {
      const validated = this.validateChanges(point, outcome);
      if ('error' in validated) {
        failure = { kind: 'invalid-argument', name: 'InvalidArgument', message: `${library.name} set ${validated.error}` };
        library.stats.recordFailure('invalid-argument', failure.message);
        library.log.error('HOOKS_CALLOUT_INVALID_ARGUMENT', `hook library ${library.name} on ${point.name}: ${library.log.quote(failure.message)}`);
      } else {
        for (const [name, value] of validated.set) handle.setArgument(name, value);
        for (const name of validated.deleted) handle.deleteArgument(name);
        if (outcome.context) handle.setLibraryContext(library.index, outcome.context);
        handle.setStatus(outcome.status);
        // A throw or rejection already set DROP in the worker, where a later callout may
        // change it again (Kea's order); a log flood is only known here.
        if (failure?.kind === 'log-flood' && drop) handle.setStatus(NextStep.DROP);
        return failure;
      }
    }
    handle.setStatus(drop ? NextStep.DROP : before);
    return failure;
  }

  private validateChanges(point: HookPoint, outcome: CalloutOutcome): { set: [string, unknown][]; deleted: string[] } | { error: string } {
    if (!outcome.set && !outcome.deleted) return NO_CHANGES;
    const set: [string, unknown][] = [];
    const deleted: string[] = [];
    if (outcome.set) {
      for (const name of Object.keys(outcome.set)) {
        const spec = point.arguments[name];
        if (!spec) {
          set.push([name, outcome.set[name]]);
          continue;
        }
        if (spec.direction === 'in') continue;
        const parsed = compiledSchema(spec.schema).safeParse(outcome.set[name]);
        if (!parsed.success) {
          const issue = parsed.error.issues[0];
          const path = issue?.path.length ? `.${issue.path.join('.')}` : '';
          return { error: `argument '${name}'${path} to a value the hook point does not accept: ${issue?.message ?? 'invalid'}` };
        }
        set.push([name, parsed.data]);
      }
    }
    for (const name of outcome.deleted ?? []) {
      if (point.arguments[name]?.direction !== 'in') deleted.push(name);
    }
    return { set, deleted };
  }

  private async stopAll(hosts: readonly LibraryHost[]): Promise<void> {
    for (const host of [...hosts].reverse()) await host.stop();
  }

  /** Loads a set again after a rejected reconfiguration; a library that no longer loads is quarantined. */
  private async revive(hosts: readonly LibraryHost[]): Promise<void> {
    for (const host of hosts) {
      if (this.snapshot) host.publishSnapshot(this.snapshot.version, this.snapshot.json_config, this.snapshot.server_config);
      try {
        await host.restart();
      } catch (err) {
        host.log.error('HOOKS_LIBRARY_REVIVE_FAILED', `hook library ${host.name} could not be loaded again: ${host.log.quote((err as Error).message)}`);
      }
    }
  }

  private rebuildIndex(): void {
    const index = new Map<string, LibraryHost[]>();
    for (const host of this.libraries) {
      // A quarantined library keeps its registrations, so its on-failure policy still applies.
      for (const hook of host.hookNames()) {
        const list = index.get(hook);
        if (list) list.push(host);
        else index.set(hook, [host]);
      }
    }
    this.byHook = index;
  }

  private loadError(err: unknown): HooksLoadError {
    if (err instanceof HookLibraryError) return new HooksLoadError(err.library, err.message);
    if (err instanceof HooksLoadError) return err;
    return new HooksLoadError('', (err as Error)?.message ?? String(err));
  }
}

/**
 * Hook-point argument schemas compiled by zod on first use (ServerHooks keeps
 * the declarations): a select_key library sets tsig_key on every call, and the
 * compiled check costs ~0.1 µs against ~0.26 µs interpreted. Invalid values go
 * through zod's runtime parser, so the error text is the same; a schema zod
 * cannot compile is used as it is.
 */
const compiledSchemas = new WeakMap<z.ZodType, z.ZodType>();
function compiledSchema(schema: z.ZodType): z.ZodType {
  let compiled = compiledSchemas.get(schema);
  if (!compiled) {
    compiled = z.compile(schema);
    compiledSchemas.set(schema, compiled);
  }
  return compiled;
}

function parseLibraries(configs: readonly HookLibraryConfigInput[]): HookLibraryConfig[] {
  const parsed = HooksLibrariesSchema.safeParse(configs);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const where = issue.path.length ? `hooks-libraries[${issue.path.map(String).join('].[')}]` : 'hooks-libraries';
  const entry = typeof issue.path[0] === 'number' ? (configs[issue.path[0]] as { library?: unknown } | undefined) : undefined;
  const library = typeof entry?.library === 'string' ? entry.library : '';
  throw new HooksLoadError(library, `${where}: ${issue.message}`);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}

/** Most of a d2_srv_configured `error` text the daemon repeats (Kea repeats it whole; a library can make it megabytes). */
const MAX_CONFIGURED_ERROR_CHARS = 1024;

function boundedErrorText(text: string): string {
  const cut = text.length > MAX_CONFIGURED_ERROR_CHARS ? `${text.slice(0, MAX_CONFIGURED_ERROR_CHARS)}…(${text.length - MAX_CONFIGURED_ERROR_CHARS} more chars)` : text;
  return escapeControls(cut);
}
