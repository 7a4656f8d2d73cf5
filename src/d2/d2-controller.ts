/**
 * D2Controller, as Kea's: reads the configuration file, applies it, reacts to
 * signals (SIGHUP reloads the file, SIGTERM/SIGINT shut down), and checks a
 * configuration for -t/-T. Applying a configuration (listener, domains, keys,
 * hook libraries, d2_srv_configured) and serving NCRs is the D2 process's job
 * (d2-process.ts), which the controller drives.
 */
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { parseD2Config } from '../config/d2-config.js';
import type { D2Config } from '../config/d2-config.js';
import { HooksManager } from '../hooks/hooks-manager.js';
import type { HookLibraryConfigInput } from '../hooks/library-config.js';
import { Logger } from '../log/logger.js';
import { VERSION } from '../version.js';
import { D2Process } from './d2-process.js';

export interface ControllerOptions {
  verbose: boolean;
}

export type ApplyResult = { ok: true } | { ok: false; error: string };

export class D2Controller {
  private readonly log = new Logger('kea-dhcp-ddns');
  private process: D2Process | undefined;
  private configFile = '';
  private stopping = false;
  private applying: Promise<ApplyResult> = Promise.resolve({ ok: true });

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

  /** -c: runs until SIGTERM or SIGINT; the exit code. */
  async run(file: string): Promise<number> {
    this.configFile = file;
    this.log.info('DCTL_STARTING', `DHCP-DDNS starting, pid: ${process.pid}, version: ${VERSION}`);
    this.process = new D2Process({ hooks: new HooksManager({ baseDir: process.cwd() }) });
    const first = await this.applyFile(file);
    if (!first.ok) {
      this.log.fatal('DCTL_CONFIG_FILE_LOAD_FAIL', `DHCP-DDNS: configuration error using file: ${file}, reason: ${first.error}`);
      await this.process.shutdown();
      return 1;
    }
    return new Promise<number>((resolve) => {
      // The daemon runs until a signal says otherwise, whether or not anything else holds the loop open.
      const keepAlive = setInterval(() => {}, 1 << 30);
      const shutdown = (signal: string) => {
        if (this.stopping) return;
        this.stopping = true;
        clearInterval(keepAlive);
        this.log.info('DCTL_SHUTDOWN', `DHCP-DDNS has shut down (${signal})`);
        void this.applying
          .then(() => this.process?.shutdown())
          .then(
            () => resolve(0),
            () => resolve(1),
          );
      };
      process.once('SIGTERM', () => shutdown('SIGTERM'));
      process.once('SIGINT', () => shutdown('SIGINT'));
      process.on('SIGHUP', () => {
        if (this.stopping) return;
        this.log.info('DCTL_CFG_FILE_RELOAD_SIGNAL_RECVD', `DHCP-DDNS reloading configuration file ${this.configFile}`);
        this.applying = this.applying.then(() => this.applyFile(this.configFile));
        void this.applying.then((r) => {
          if (!r.ok) this.log.error('DCTL_CFG_FILE_RELOAD_ERROR', `configuration reload failed; the current configuration stays in force: ${r.error}`);
        });
      });
    });
  }

  /** Reads, checks and applies a configuration file; on failure the current configuration stays. */
  private async applyFile(file: string): Promise<ApplyResult> {
    const read = await this.readConfig(file);
    if (!read.ok) return read;
    const d2 = this.process!;
    const applied = await d2.configure({ json: read.json, config: read.config, hooksLibraries: read.hooksLibraries });
    if (!applied.ok) return applied;
    const hooks = d2.hooks;
    this.log.info('DCTL_CONFIG_COMPLETE', `server has completed configuration: ${hooks.getLibraryNames().length} hook librar${hooks.getLibraryNames().length === 1 ? 'y' : 'ies'} loaded`);
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
    const parsed = parseD2Config(text, { file, baseDir: dirname(file) });
    if (!parsed.ok) return { ok: false, error: parsed.error };
    const d2 = (parsed.json as { DhcpDdns?: { 'hooks-libraries'?: HookLibraryConfigInput[] } }).DhcpDdns ?? {};
    return { ok: true, json: parsed.json, config: parsed.config, hooksLibraries: d2['hooks-libraries'] ?? [] };
  }
}
