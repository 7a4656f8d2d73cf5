/**
 * D2Controller, as Kea's: reads the configuration file, applies it, reacts to
 * signals (SIGHUP reloads the file, SIGTERM/SIGINT shut down), and checks a
 * configuration for -t/-T. Applying a configuration (listener, domains, keys,
 * hook libraries, d2_srv_configured) and serving NCRs is the D2 process's job
 * (d2-process.ts), which the controller drives.
 *
 * The controller also owns what Kea's DControllerBase does around that: the
 * control channel (src/control/: the unix socket of `control-socket` and
 * D2's commands), Kea's `loggers` (src/log/log-pipeline.ts, applied before a
 * configuration and rolled back when it is rejected), and the exit value
 * (`shutdown`'s `exit-value`, 1 when the first configuration fails).
 */
import { existsSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { dirname } from 'node:path';
import { d2ConfigToJson, parseD2Config } from '../config/d2-config.js';
import type { D2Config } from '../config/d2-config.js';
import type { ControlSocketEntry } from '../config/control-sockets.js';
import { enforcePathPolicy } from '../config/path-policy.js';
import { PidFile } from '../config/pid-file.js';
import type { LoggerConfig } from '../config/loggers.js';
import { CONTROL_RESULT_ERROR, CONTROL_RESULT_SUCCESS, createAnswer, type Answer } from '../control/answer.js';
import { CommandMgr } from '../control/command-mgr.js';
import { APP_NAME, registerD2Commands } from '../control/d2-commands.js';
import { ControlChannel } from '../control/control-channel.js';
import { LogPipeline } from '../log/log-pipeline.js';
import { HooksManager } from '../hooks/hooks-manager.js';
import { LibraryHost } from '../hooks/library-host.js';
import type { HookLibraryConfigInput } from '../hooks/library-config.js';
import { Logger } from '../log/logger.js';
import { probeSyslogSocket } from '../log/syslog-output.js';
import { VERSION } from '../version.js';
import { D2Process, type ShutdownType } from './d2-process.js';
import { keaWireError } from '../control/wire-text.js';
import type { ConfigError } from '../config/d2-config.js';

export interface ControllerOptions {
  verbose: boolean;
}

/**
 * How long a shutdown may take before the daemon stops its hook libraries by force and
 * exits. The orderly path is bounded step by step (a configuration being applied by
 * load-timeout-ms, transactions by twice DEFAULT_SHUTDOWN_TIMEOUT_MS, each library's
 * unload() by its load-timeout-ms, the logs' flush by 2 s), but those bounds add up per
 * library and are the operator's to raise; this one is not: a shutdown always ends.
 * Test knob (environment): D2BOX_SHUTDOWN_DEADLINE_MS.
 */
export const SHUTDOWN_DEADLINE_MS = 30_000;

export type ApplyResult = { ok: true } | { ok: false; error: string };

export class D2Controller {
  /** Kea's loggers: DCTL_* on `.dctl`, DHCP_DDNS_* on `.dhcpddns`, so severities set on those apply. */
  private readonly log = new Logger('dctl');
  private readonly d2log = new Logger('dhcpddns');
  private process: D2Process | undefined;
  private configFile = '';
  private stopping = false;
  private applying: Promise<ApplyResult> = Promise.resolve({ ok: true });
  private logs: LogPipeline | undefined;
  private loggersInForce: LoggerConfig[] = [];
  private commands: CommandMgr | undefined;
  private controlChannel: ControlChannel | undefined;
  private startedAt = Date.now();
  private lastCommit: number | undefined;
  private exitValue = 0;
  private readonly pidFile = new PidFile();
  private requestShutdown: ((why: string, type?: ShutdownType) => void) | undefined;

  constructor(private readonly options: ControllerOptions) {
    if (options.verbose) Logger.setSeverity('DEBUG');
  }

  /** -t / -T: 0 when the configuration is good, 1 (with the reason on stderr) when not. */
  async checkConfig(file: string, { loadHooks }: { loadHooks: boolean }): Promise<number> {
    const read = await this.readConfig(file);
    if (!read.ok) {
      process.stderr.write(`Syntax check failed with: ${read.error}\n`);
      return 1;
    }
    await this.warnIfSyslogUnavailable(read.config.loggers ?? []);
    const hooks = new HooksManager({ baseDir: process.cwd() });
    const libraries = read.hooksLibraries;
    if (!loadHooks) {
      const errors = await hooks.validateLibraries(libraries);
      if (errors.length > 0) {
        process.stderr.write(`Syntax check failed with: ${errors.join('; ')}\n`);
        return 1;
      }
      return 0;
    }
    try {
      await hooks.loadLibraries(libraries);
      return 0;
    } catch (err) {
      process.stderr.write(`Configuration check failed with: ${(err as Error).message}\n`);
      return 1;
    } finally {
      await hooks.unloadLibraries();
    }
  }

  /** -t/-T: a `syslog` output whose socket Node cannot write to is said before the daemon runs (the check still passes). */
  private async warnIfSyslogUnavailable(loggers: readonly LoggerConfig[]): Promise<void> {
    const syslog = loggers.flatMap((l) => l.output_options ?? []).find((o) => o.output === 'syslog' || o.output.startsWith('syslog:'));
    if (!syslog) return;
    const probe = await probeSyslogSocket();
    if (!probe.ok) process.stderr.write(`WARN D2BOX_SYSLOG_UNAVAILABLE syslog output ${syslog.output} unavailable (${probe.reason}); its lines would go to stderr\n`);
  }

  /** -c: runs until SIGTERM or SIGINT; the exit code. */
  async run(file: string): Promise<number> {
    // Kea 3.x: no group write, nothing for others, on every file and socket the daemon creates.
    process.umask(process.umask() | 0o027);
    this.configFile = file;
    this.startedAt = Date.now();
    this.logs = new LogPipeline({ verbose: this.options.verbose }).install();
    // Until a configuration is read, Kea's daemon logs to stdout (measured on Kea 2.2: DCTL_STARTING
    // on stdout; a configuration without `loggers` then logs to stderr, the pipeline's default).
    this.logs.configure([{ name: 'kea-dhcp-ddns', severity: 'INFO', debuglevel: 0, output_options: [{ output: 'stdout', flush: true, maxsize: 0, maxver: 0 }] }]);
    // Before anything else, as Kea's DControllerBase::launch: a second daemon on the same configuration stops here.
    const pid = this.pidFile.create(file);
    if (pid.kind === 'running' || pid.kind === 'error') {
      if (pid.kind === 'running') this.log.fatal('DCTL_ALREADY_RUNNING', `kea-dhcp-ddns already running? Daemon::createPIDFile: PID: ${pid.pid} exists, PID file: ${pid.file}`);
      else this.log.fatal('DCTL_PID_FILE_ERROR', `DhcpDdns could not create a PID file: ${pid.error}`);
      await this.logs.close();
      return 1;
    }
    if (pid.kind === 'skipped') this.log.warn('D2BOX_PID_FILE_SKIPPED', `no PID file written: ${pid.reason}`);
    this.log.info('DCTL_STARTING', `DhcpDdns starting, pid: ${process.pid}, version: ${VERSION} (d2box)`);
    this.process = new D2Process({ hooks: new HooksManager({ baseDir: process.cwd() }) });
    this.commands = new CommandMgr(this.process.hooks);
    registerD2Commands(this.commands, this.commandContext(this.process));
    const first = await this.applyFile(file);
    if (!first.ok) {
      this.log.fatal('DCTL_CONFIG_FILE_LOAD_FAIL', `DhcpDdns reason: configuration error using file: ${file}: ${first.error}`);
      await this.process.shutdown();
      await this.closeControlSocket();
      await this.logs.close();
      return 1;
    }
    return new Promise<number>((resolve) => {
      // The daemon runs until a signal says otherwise, whether or not anything else holds the loop open.
      const keepAlive = setInterval(() => {}, 1 << 30);
      const shutdown = (signal: string, type: ShutdownType = 'normal') => {
        if (this.stopping) return;
        this.stopping = true;
        clearInterval(keepAlive);
        // Kea's: a signal on .dctl, the shutdown command on .dhcpddns, both at debug level 0.
        const signalNumber = (osConstants.signals as Record<string, number>)[signal];
        if (signalNumber !== undefined) this.log.debug('DCTL_SHUTDOWN_SIGNAL_RECVD', `OS signal ${signalNumber} received, starting shutdown`);
        else this.d2log.debug('DHCP_DDNS_SHUTDOWN_COMMAND', `application received shutdown command with args: ${signal}`);
        let stage = 'waiting for the configuration being applied';
        const deadlineMs = Number(process.env['D2BOX_SHUTDOWN_DEADLINE_MS']) > 0 ? Number(process.env['D2BOX_SHUTDOWN_DEADLINE_MS']) : SHUTDOWN_DEADLINE_MS;
        // unref: it must not keep a daemon that has shut down from exiting.
        const deadline = setTimeout(() => this.forceExit(deadlineMs, stage), deadlineMs).unref();
        void this.applying
          .then(() => {
            stage = 'stopping D2 (transactions in flight, then the hook libraries)';
            return this.process?.shutdown(type);
          })
          .then(() => {
            stage = 'closing the control socket';
            return this.closeControlSocket();
          })
          .then(
            () => {
              this.log.info('DCTL_SHUTDOWN', `DhcpDdns has shut down, pid: ${process.pid}, version: ${VERSION}`);
              return this.exitValue;
            },
            (err: unknown) => {
              this.log.error('D2BOX_SHUTDOWN_FAILED', `DHCP-DDNS shutdown failed: ${(err as Error)?.message ?? String(err)}`);
              return 1;
            },
          )
          .then(async (code) => {
            stage = 'flushing the logs';
            await this.logs?.close();
            clearTimeout(deadline);
            resolve(code);
          });
      };
      this.requestShutdown = shutdown;
      process.once('SIGTERM', () => shutdown('SIGTERM'));
      process.once('SIGINT', () => shutdown('SIGINT'));
      process.on('SIGHUP', () => {
        if (this.stopping) return;
        this.log.info('DCTL_CFG_FILE_RELOAD_SIGNAL_RECVD', `OS signal ${osConstants.signals.SIGHUP} received, reloading configuration from file: ${this.configFile}`);
        this.applying = this.applying.then(() => this.applyFile(this.configFile));
        void this.applying.then((r) => {
          if (!r.ok) this.log.error('DCTL_CFG_FILE_RELOAD_ERROR', `configuration reload failed: ${r.error}, reverting to current configuration.`);
        });
      });
    });
  }

  /**
   * The shutdown outlived its deadline: every hook library's worker or process is
   * stopped by force (a sandbox process gets SIGKILL before this goes on), and the
   * daemon exits 1. The lines still pending in the logs are written at exit.
   */
  private forceExit(deadlineMs: number, stage: string): void {
    const libraries = LibraryHost.stopAllNow();
    const stopped = libraries.length > 0 ? `; stopped by force: hook libraries ${libraries.join(', ')}` : '';
    this.log.error('D2BOX_SHUTDOWN_FORCED', `DHCP-DDNS shutdown did not finish in ${deadlineMs} ms (still ${stage})${stopped}; exiting`);
    process.exit(1);
  }

  /** The commands' view of the controller. */
  private commandContext(d2: D2Process) {
    return {
      stats: d2.stats,
      hooks: d2.hooks,
      configFile: () => this.configFile,
      configJson: () => d2.configuration?.json ?? { [APP_NAME]: {} },
      startTime: () => this.startedAt,
      lastCommitTime: () => this.lastCommit,
      applyConfig: (whole: Record<string, unknown>) => this.serialized(() => this.applyText(JSON.stringify({ [APP_NAME]: whole[APP_NAME] }), '<config-set>', whole)),
      testConfig: (whole: Record<string, unknown>) => this.testText(JSON.stringify(whole), '<config-test>', whole),
      reloadConfig: () =>
        this.serialized(async () => {
          const r = await this.applyFile(this.configFile, true);
          return r.ok ? createAnswer(CONTROL_RESULT_SUCCESS, 'Configuration applied successfully.') : createAnswer(CONTROL_RESULT_ERROR, r.error);
        }),
      shutdown: (exitValue: number, type: string) => {
        this.exitValue = exitValue;
        // After the answer has been written.
        setImmediate(() => this.requestShutdown?.(`shutdown command, type ${type}`, type as ShutdownType));
      },
    };
  }

  /** Configuration changes run one at a time, SIGHUP's included. */
  private serialized(fn: () => Promise<Answer>): Promise<Answer> {
    if (this.stopping) return Promise.resolve(createAnswer(CONTROL_RESULT_ERROR, 'the server is shutting down'));
    const run = this.applying.then(fn);
    this.applying = run.then(
      (a) => (a.result === 0 ? { ok: true as const } : { ok: false as const, error: a.text ?? '' }),
      (e: unknown) => ({ ok: false as const, error: String(e) }),
    );
    return run;
  }

  /** config-set: Kea-JSON text of `{"DhcpDdns": ...}` → applied, or rejected with the old configuration kept. */
  private async applyText(text: string, source: string, wireArgs?: object): Promise<Answer> {
    const parsed = policedConfig(parseD2Config(text, { file: source, allowInclude: false }));
    if (!parsed.ok && wireArgs && parsed.detail) parsed.error = keaWireError(wireArgs, parsed.detail) ?? parsed.error;
    if (!parsed.ok) {
      this.d2log.error('DHCP_DDNS_CONFIG_FAIL', `DHCP-DDNS server configuration failed: ${parsed.error}`);
      return createAnswer(CONTROL_RESULT_ERROR, parsed.error);
    }
    const r = await this.applyParsed(parsed);
    return r.ok ? createAnswer(CONTROL_RESULT_SUCCESS, 'Configuration applied successfully.') : createAnswer(CONTROL_RESULT_ERROR, r.error);
  }

  /** config-test: parsed and the hook libraries' versions checked (as -t), nothing applied. */
  private async testText(text: string, source: string, wireArgs?: object): Promise<Answer> {
    const parsed = policedConfig(parseD2Config(text, { file: source, allowInclude: false }));
    // Kea's text where known (a wrong type, placed on the wire); d2box's otherwise.
    if (!parsed.ok && wireArgs && parsed.detail) parsed.error = keaWireError(wireArgs, parsed.detail) ?? parsed.error;
    if (!parsed.ok) {
      this.d2log.error('DHCP_DDNS_CONFIG_CHECK_FAIL', `DHCP-DDNS server configuration check failed: ${parsed.error}`);
      return createAnswer(CONTROL_RESULT_ERROR, parsed.error);
    }
    const errors = await new HooksManager({ baseDir: process.cwd() }).validateLibraries(parsed.hooksLibraries);
    if (errors.length > 0) return createAnswer(CONTROL_RESULT_ERROR, errors.join('; '));
    this.log.info('DCTL_CONFIG_CHECK_COMPLETE', 'server has completed configuration check');
    return createAnswer(CONTROL_RESULT_SUCCESS, 'Configuration check successful');
  }

  /**
   * Opens what `control-socket` and `control-sockets` add
   * (src/control/control-channel.ts) before the configuration is applied, so
   * that a socket that cannot be opened fails the configuration with nothing
   * of it in force (at start the daemon exits 1) and the sockets in force keep
   * serving; committed with the configuration, as Kea's reconfigureCommandChannel.
   *
   * Test knobs (environment): D2BOX_CONTROL_TIMEOUT_MS (Kea's 10 s per
   * connection) and D2BOX_CONTROL_MAX_REQUEST_BYTES (16 MiB).
   */
  private async prepareControlSockets(config: D2Config): Promise<
    { ok: true; commit: () => Promise<string | undefined>; abort: () => Promise<void> } | { ok: false; error: string }
  > {
    if (!this.commands) return { ok: true, commit: async () => undefined, abort: async () => {} };
    if (!this.controlChannel) {
      const commands = this.commands;
      const stats = this.process!.stats;
      const env = (name: string) => {
        const n = Number(process.env[name]);
        return Number.isInteger(n) && n > 0 ? n : undefined;
      };
      const timeoutMs = env('D2BOX_CONTROL_TIMEOUT_MS');
      const maxRequestBytes = env('D2BOX_CONTROL_MAX_REQUEST_BYTES');
      this.controlChannel = new ControlChannel({
        process: (req) => commands.processCommand(req),
        // d2box's own statistics (Kea's D2 has none for its control channel).
        count: (event) => stats.addValue(`control-channel-${event}`),
        ...(timeoutMs ? { timeoutMs } : {}),
        ...(maxRequestBytes ? { maxRequestBytes } : {}),
      });
    }
    const old = config['control-socket'];
    const entries: ControlSocketEntry[] = [
      ...(old ? [{ 'socket-type': 'unix' as const, 'socket-name': old['socket-name'] }] : []),
      ...(config['control-sockets'] ?? []),
    ];
    return this.controlChannel.prepare(entries);
  }

  private async closeControlSocket(): Promise<void> {
    await this.controlChannel?.close();
  }

  /** Kea's loggers: applied before a configuration so its processing is logged where it says. */
  private applyLoggers(loggers: LoggerConfig[]): void {
    if (!this.logs) return;
    for (const w of this.logs.configure(loggers)) this.log.warn('D2BOX_LOGGER_OUTPUT_UNSUPPORTED', w);
  }

  /** Reads, checks and applies a configuration file; on failure the current configuration stays. */
  private async applyFile(file: string, reload = false): Promise<ApplyResult> {
    const read = await this.readConfig(file);
    if (!read.ok) {
      const error = reload ? `Configuration parsing failed: ${read.error}` : read.error;
      this.d2log.error('DHCP_DDNS_CONFIG_FAIL', `DHCP-DDNS server configuration failed: ${error}`);
      return { ok: false, error };
    }
    return this.applyParsed({ json: read.json, config: read.config, hooksLibraries: read.hooksLibraries });
  }

  /**
   * Applies a parsed configuration: its loggers first (so its processing is
   * logged where it says, as Kea does), then the D2 process (listener,
   * domains, keys, hook libraries, atomically), then the control socket.
   * Rejected: the loggers in force before come back.
   */
  private async applyParsed(input: { json: unknown; config: D2Config; hooksLibraries: HookLibraryConfigInput[] }): Promise<ApplyResult> {
    const d2 = this.process!;
    const previousLoggers = this.loggersInForce;
    const loggers = (input.config as { loggers?: LoggerConfig[] }).loggers ?? [];
    const newLogFiles = logFilesNotYetThere(loggers);
    this.applyLoggers(loggers);
    const sockets = await this.prepareControlSockets(input.config);
    const applied = sockets.ok ? await d2.configure(input) : sockets;
    if (!applied.ok) {
      if (sockets.ok) await sockets.abort();
      this.applyLoggers(previousLoggers);
      // A refused configuration leaves nothing behind (Kea 3.x), not even the log files it named.
      for (const f of newLogFiles) rmSync(f, { force: true });
      this.d2log.error('DHCP_DDNS_CONFIG_FAIL', `DHCP-DDNS server configuration failed: ${applied.error}`);
      return applied;
    }
    this.loggersInForce = loggers;
    this.lastCommit = Date.now();
    const socketError = sockets.ok ? await sockets.commit() : undefined;
    if (socketError) return { ok: false, error: socketError };
    this.log.info('DCTL_CONFIG_COMPLETE', `server has completed configuration: listening on ${input.config['ip-address']}, port ${input.config.port}, using UDP`);
    return { ok: true };
  }

  private async readConfig(file: string): Promise<
    { ok: true; json: unknown; config: D2Config; hooksLibraries: HookLibraryConfigInput[] } | { ok: false; error: string }
  > {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      return { ok: false, error: `Unable to open file ${file}: ${(err as Error).message}` };
    }
    return policedConfig(parseD2Config(text, { file, baseDir: dirname(file) }));
  }
}

/** The log files `loggers` would create; the rotated copies (`.1`…) only come later. */
function logFilesNotYetThere(loggers: LoggerConfig[]): string[] {
  const files = loggers.flatMap((l) => (l.output_options ?? []).map((o) => o.output)).filter((o) => !/^(stdout|stderr|syslog(:.*)?)$/.test(o));
  return [...new Set(files)].filter((f) => !existsSync(f));
}

/**
 * A parsed configuration after Kea 3.x's path rules (config/path-policy.ts):
 * refused before any library is imported, socket bound or log file opened.
 */
function policedConfig(parsed: ReturnType<typeof parseD2Config>):
  | { ok: true; json: unknown; config: D2Config; hooksLibraries: HookLibraryConfigInput[] }
  | { ok: false; error: string; detail?: ConfigError } {
  if (!parsed.ok) return { ok: false, error: parsed.error, detail: parsed.detail };
  const policed = enforcePathPolicy(parsed.config);
  if (!policed.ok) return policed;
  const json = d2ConfigToJson(policed.config);
  return { ok: true, json, config: policed.config, hooksLibraries: (json.DhcpDdns as { 'hooks-libraries': HookLibraryConfigInput[] })['hooks-libraries'] };
}
