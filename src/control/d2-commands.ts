/**
 * kea-dhcp-ddns's built-in commands (Kea 2.2: D2Controller::registerCommands,
 * DControllerBase's handlers in src/lib/process/d_controller.cc, D2Process::shutdown,
 * StatsMgr's statistic-* handlers), with Kea's arguments, texts and result
 * codes, plus d2box's hooks-status and hooks-restart.
 *
 * Kea 2.2's D2 has neither config-hash-get nor the statistic-sample-age/count
 * commands, so d2box has them not either.
 */
import { keaPrettyText } from './kea-element-text.js';
import { writeFile } from 'node:fs/promises';
import { checkConfigWrite } from '../config/path-policy.js';
import type { HooksManager } from '../hooks/hooks-manager.js';
import { HookLibraryError } from '../hooks/library-host.js';
import { syncHookStats } from '../stats/hook-stats.js';
import type { StatsMgr } from '../stats/stats-mgr.js';
import { BUILD_REPORT, EXTENDED_VERSION, VERSION } from '../version.js';
import {
  CONTROL_RESULT_EMPTY,
  CONTROL_RESULT_ERROR,
  CONTROL_RESULT_SUCCESS,
  createAnswer,
  isMap,
  type Answer,
} from './answer.js';
import type { CommandMgr } from './command-mgr.js';

export const APP_NAME = 'DhcpDdns';

/** What the commands need from the controller. */
export interface D2CommandContext {
  readonly stats: StatsMgr;
  readonly hooks: HooksManager;
  /** The file given with -c. */
  configFile(): string;
  /** The configuration in force, `{"DhcpDdns": {...}}`. */
  configJson(): unknown;
  /** When the controller started and when a configuration was last committed (ms since the epoch). */
  startTime(): number;
  lastCommitTime(): number | undefined;
  /** Applies `{"DhcpDdns": ...}` (config-set); Kea's answer. */
  applyConfig(whole: Record<string, unknown>): Promise<Answer>;
  /** Checks `{"DhcpDdns": ...}` without applying it (config-test). */
  testConfig(whole: Record<string, unknown>): Promise<Answer>;
  /** Rereads and applies the -c file (config-reload). */
  reloadConfig(): Promise<Answer>;
  /** Starts the shutdown once the answer has gone out; the process exits with `exitValue`. */
  shutdown(exitValue: number, type: string): void;
}

export const SHUTDOWN_TYPES = ['normal', 'drain_first', 'now'] as const;

/** DControllerBase's check of config-set/config-test arguments; a message when they are wrong. */
function configArgsError(args: unknown): string | undefined {
  if (args === undefined || args === null) return "Missing mandatory 'arguments' parameter.";
  if (!isMap(args)) return "Missing mandatory 'DhcpDdns' parameter.";
  const module = args[APP_NAME];
  if (module === undefined) return `Missing mandatory '${APP_NAME}' parameter.`;
  if (!isMap(module)) return `'${APP_NAME}' parameter expected to be a map.`;
  return undefined;
}

function statName(args: unknown): { name: string } | { error: string } {
  if (args === undefined || args === null) return { error: "Missing mandatory 'name' parameter." };
  if (!isMap(args)) return { error: "'arguments' expected to be a map." };
  const name = args.name;
  if (name === undefined) return { error: "Missing mandatory 'name' parameter." };
  if (typeof name !== 'string') return { error: "'name' parameter expected to be a string." };
  return { name };
}

export function registerD2Commands(mgr: CommandMgr, ctx: D2CommandContext): void {
  const ok = (text?: string, args?: unknown) => createAnswer(CONTROL_RESULT_SUCCESS, text, args);
  const err = (text: string) => createAnswer(CONTROL_RESULT_ERROR, text);
  const refreshHookStats = () => syncHookStats(ctx.stats, ctx.hooks.getLibraryStatistics());

  mgr.registerCommand('build-report', () => ok(BUILD_REPORT));

  mgr.registerCommand('config-get', () => ok(undefined, ctx.configJson()));

  mgr.registerCommand('config-reload', () => ctx.reloadConfig());

  mgr.registerCommand('config-set', (_n, args) => {
    const e = configArgsError(args);
    return e ? err(e) : ctx.applyConfig(args as Record<string, unknown>);
  });

  mgr.registerCommand('config-test', (_n, args) => {
    const e = configArgsError(args);
    if (e) return err(e);
    const others = Object.keys(args as object).filter((k) => k !== APP_NAME);
    if (others.length > 0) {
      return err(`'arguments' parameter contains unsupported '${others[0]}' parameter${others.slice(1).map((o) => ` (and '${o}')`).join('')}`);
    }
    return ctx.testConfig(args as Record<string, unknown>);
  });

  mgr.registerCommand('config-write', async (_n, args) => {
    let filename = '';
    if (args !== undefined && args !== null) {
      if (!isMap(args)) return err('Argument must be a map');
      if (args.filename !== undefined) {
        if (typeof args.filename !== 'string') return err("passed parameter 'filename' is not a string");
        filename = args.filename;
      }
    }
    if (filename === '') {
      filename = ctx.configFile();
      if (filename === '') return err('Unable to determine filename.Please specify filename explicitly.');
    } else {
      // Kea 3.x (CVE-2025-32802): only next to the configuration file; nothing is written elsewhere.
      const allowed = checkConfigWrite(ctx.configFile(), filename);
      if (!allowed.ok) return err(`not allowed to write config into ${filename}: ${allowed.error}`);
      filename = allowed.path;
    }
    // Kea's prettyPrint, byte for byte: a file Kea wrote and one d2box wrote compare equal.
    const text = keaPrettyText(ctx.configJson());
    try {
      await writeFile(filename, text, { mode: 0o600 });
    } catch (e) {
      return err(`Error during write-config:Unable to open file ${filename} for writing: ${(e as Error).message}`);
    }
    return ok(`Configuration written to ${filename} successful`, { size: Buffer.byteLength(text), filename });
  });

  mgr.registerCommand('shutdown', (_n, args) => {
    let exitValue = 0;
    let type = 'normal';
    if (args !== undefined && args !== null) {
      if (!isMap(args)) return err('Argument must be a map');
      if (args['exit-value'] !== undefined) {
        const v = args['exit-value'];
        if (typeof v !== 'number' || !Number.isInteger(v)) return err("parameter 'exit-value' is not an integer");
        exitValue = v;
      }
      if (args.type !== undefined) {
        if (typeof args.type !== 'string') return err("parameter 'type' is not a string");
        if (!(SHUTDOWN_TYPES as readonly string[]).includes(args.type)) return err(`Invalid Shutdown type: ${args.type}`);
        type = args.type;
      }
    }
    ctx.shutdown(exitValue, type);
    return ok(`Shutdown initiated, type is: ${type}`);
  });

  mgr.registerCommand('status-get', () => {
    const now = Date.now();
    const status: Record<string, number> = { pid: process.pid, uptime: Math.floor((now - ctx.startTime()) / 1000) };
    const commit = ctx.lastCommitTime();
    if (commit !== undefined) status.reload = Math.floor((now - commit) / 1000);
    return ok(undefined, status);
  });

  mgr.registerCommand('version-get', () => ok(VERSION, { extended: EXTENDED_VERSION }));

  mgr.registerCommand('statistic-get', (_n, args) => {
    const p = statName(args);
    if ('error' in p) return err(p.error);
    refreshHookStats();
    return ok(undefined, ctx.stats.get(p.name));
  });

  mgr.registerCommand('statistic-get-all', () => {
    refreshHookStats();
    return ok(undefined, ctx.stats.getAll());
  });

  mgr.registerCommand('statistic-reset', (_n, args) => {
    const p = statName(args);
    if ('error' in p) return err(p.error);
    return ctx.stats.reset(p.name) ? ok(`Statistic '${p.name}' reset.`) : err(`No '${p.name}' statistic found`);
  });

  mgr.registerCommand('statistic-reset-all', () => {
    ctx.stats.resetAll();
    return ok('All statistics reset to neutral values.');
  });

  // d2box's own.
  mgr.registerCommand('hooks-status', () => {
    const libraries = ctx.hooks.getLibraryStatistics();
    return ok(`${libraries.length} hook librar${libraries.length === 1 ? 'y' : 'ies'} loaded`, { libraries });
  });

  mgr.registerCommand('hooks-restart', async (_n, args) => {
    let names: string[];
    if (args === undefined || args === null || (isMap(args) && args.library === undefined)) {
      names = ctx.hooks.getLibraryStatistics().filter((l) => l.state === 'quarantined' || l.state === 'stopped').map((l) => l.library);
      if (names.length === 0) return createAnswer(CONTROL_RESULT_EMPTY, 'no hook library is quarantined');
    } else if (!isMap(args)) {
      return err('Argument must be a map');
    } else if (typeof args.library !== 'string') {
      return err("parameter 'library' is not a string");
    } else {
      if (!ctx.hooks.getLibraryNames().includes(args.library)) return createAnswer(CONTROL_RESULT_EMPTY, `no hook library named ${args.library} is configured`);
      names = [args.library];
    }
    const restarted: string[] = [];
    for (const name of names) {
      try {
        await ctx.hooks.restartLibrary(name);
        restarted.push(name);
      } catch (e) {
        const why = e instanceof HookLibraryError ? e.message : String((e as Error)?.message ?? e);
        return createAnswer(CONTROL_RESULT_ERROR, `hooks-restart of ${name} failed: ${why}`, { restarted });
      }
    }
    return ok(`${restarted.length} hook librar${restarted.length === 1 ? 'y' : 'ies'} restarted`, { restarted });
  });
}
