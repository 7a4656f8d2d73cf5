/**
 * D2Process, as Kea's (src/bin/d2/d2_process.cc): owns the NCR listener, the
 * queue manager, the update manager, the DNS client, the statistics and the
 * hook libraries, and applies configurations.
 *
 * Configuration is atomic: everything that can fail is tried before anything
 * is committed — the TSIG keys are built, the new listener bound (when the
 * address or port changed), the hook libraries loaded and d2_srv_configured
 * run (DROP rejects with the library's error text). A rejected configuration
 * leaves the previous one serving: its listener never closed, its hook
 * libraries loaded again (and d2_srv_configured run for it again), its domains
 * and keys in use.
 *
 * No NCR is lost across a reconfiguration: while it is applied, NCRs keep
 * being received and queued, no transaction starts, and those in flight are
 * let finish under the configuration they started with (Kea stops its
 * listener instead). Then the queue is served under the new configuration.
 *
 * Shutdown: stop receiving; NCRs still queued end failed (`shutdown`, counted
 * and logged); transactions in flight get `shutdownTimeoutMs` to end, after
 * which the DNS client is closed and they end failed (`stopped`); then the hook
 * libraries are unloaded.
 *
 * An NCR no DNS server answered is tried again (NcrRetryMgr, `d2box-retry-*`
 * keys); it ends — one `ncr-done` — only when it succeeds, fails definitely,
 * is replaced by a newer NCR for its name, or is given up.
 *
 * With `d2box-journal-file`, an NCR is queued only once the journal holds it,
 * and marked done there when it ends (unless it ends because d2box stops); at
 * the first configuration the NCRs a previous run left unfinished are queued
 * again (NcrJournal). The journal is opened once: a later configuration that
 * names another file takes effect at the next start.
 *
 * Every NCR ends in exactly one `ncr-done` event and is counted: Kea's
 * `ncr-received`, `ncr-invalid`, `ncr-error`, `queue-mgr-queue-full` and
 * `update-*` statistics, plus d2box's `d2box.ncr-completed`,
 * `d2box.ncr-failed` and `d2box.ncr-failed.<reason>` (Kea has no names for those).
 */
import { EventEmitter } from 'node:events';
import type { D2Config } from '../config/d2-config.js';
import { INTAKE_DEFAULTS, intakePolicy, type IntakePolicy } from '../config/intake-config.js';
import { ncrRetryPolicy } from '../config/ncr-retry-config.js';
import { DnsClient } from '../dns/dns-client.js';
import { TsigKey } from '../dns/tsig.js';
import { HooksLoadError, HooksManager } from '../hooks/hooks-manager.js';
import type { HookLibraryConfigInput } from '../hooks/library-config.js';
import { Logger } from '../log/logger.js';
import type { NameChangeRequest } from '../ncr/name-change-request.js';
import { NcrListener } from '../ncr/ncr-listener.js';
import { declareD2Stats, declareKeyStats } from '../stats/d2-stats.js';
import { StatsMgr } from '../stats/stats-mgr.js';
import { D2QueueMgr } from './d2-queue-mgr.js';
import { D2UpdateMgr, MAX_TRANSACTIONS_DEFAULT, type NcrDone } from './d2-update-mgr.js';
import { tsigKeyStatName, type FailureReason } from './name-change-transaction.js';
import type { NcrJournal } from './ncr-journal.js';
import { NcrRetryMgr } from './ncr-retry-mgr.js';

export const NCR_OUTCOME_STATS = ['d2box.ncr-completed', 'd2box.ncr-failed'] as const;
/** NCRs the kernel dropped at the NCR socket (its receive buffer full): read from procfs, since they never reach d2box. */
export const KERNEL_DROPS_STAT = 'd2box.ncr-kernel-drops';
/** Torn or corrupt records skipped when the NCR journal was read at start. */
export const JOURNAL_CORRUPT_STAT = 'd2box.journal-corrupt-records';
export const FAILURE_REASONS: readonly FailureReason[] = [
  'no-forward-match',
  'no-reverse-match',
  'ddns-disabled',
  'queue-full',
  'no-more-servers',
  'conflict',
  'rejected',
  'build-failure',
  'send-error',
  'stopped',
  'shutdown',
  'model-error',
  'superseded',
  'retry-expired',
  'retry-overflow',
];
export const failureStatName = (reason: FailureReason): string => `d2box.ncr-failed.${reason}`;

/** Default bound on how long shutdown waits for transactions in flight. */
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 5_000;

/** A parsed configuration, as the controller hands it over. */
export interface D2ConfigInput {
  /** The whole JSON document (`{"DhcpDdns": ...}`), for d2_srv_configured's json_config. */
  json: unknown;
  config: D2Config;
  hooksLibraries: HookLibraryConfigInput[];
}

export type ConfigureResult = { ok: true } | { ok: false; error: string };

export type ShutdownType = 'normal' | 'drain_first' | 'now';

export interface D2ProcessOptions {
  hooks?: HooksManager;
  stats?: StatsMgr;
  maxQueueSize?: number;
  maxTransactions?: number;
  shutdownTimeoutMs?: number;
  log?: Logger;
}

export interface D2ProcessEvents {
  'ncr-done': [NcrDone];
}

export class D2Process extends EventEmitter<D2ProcessEvents> {
  readonly hooks: HooksManager;
  readonly stats: StatsMgr;
  readonly queueMgr: D2QueueMgr;
  readonly updateMgr: D2UpdateMgr;
  readonly retryMgr: NcrRetryMgr;
  private readonly log: Logger;
  /** Kea's d2_to_dns_logger: the add/remove outcomes (nc_add.cc, nc_remove.cc…), so its severity applies to them. */
  private readonly dnsLog = new Logger('d2-to-dns');
  private readonly shutdownTimeoutMs: number;
  private readonly dnsClient = new DnsClient();
  private listener: NcrListener | undefined;
  private current: D2ConfigInput | undefined;
  private configuring: Promise<unknown> = Promise.resolve();
  private stopping: Promise<void> | undefined;
  /** Intake settings when the configuration does not give them (the constructor's options, else d2box's defaults). */
  private readonly intakeFallback: IntakePolicy;
  private journal: NcrJournal | undefined;
  /** Journal ids of the queued (or running, or retrying) NCRs, by receipt number. */
  private readonly journalIds = new Map<number, number>();

  constructor(opts: D2ProcessOptions = {}) {
    super();
    this.hooks = opts.hooks ?? new HooksManager({ baseDir: process.cwd() });
    this.stats = opts.stats ?? new StatsMgr();
    this.hooks.useStatistics(this.stats);
    this.log = opts.log ?? new Logger('kea-dhcp-ddns');
    this.shutdownTimeoutMs = opts.shutdownTimeoutMs ?? DEFAULT_SHUTDOWN_TIMEOUT_MS;
    declareD2Stats(this.stats);
    for (const name of NCR_OUTCOME_STATS) this.stats.declare(name);
    this.stats.declare(KERNEL_DROPS_STAT);
    this.stats.declare(JOURNAL_CORRUPT_STAT);
    this.intakeFallback = { ...INTAKE_DEFAULTS, ...(opts.maxQueueSize !== undefined ? { maxQueueSize: opts.maxQueueSize } : {}) };
    for (const reason of FAILURE_REASONS) this.stats.declare(failureStatName(reason));
    this.queueMgr = new D2QueueMgr({
      maxQueueSize: this.intakeFallback.maxQueueSize,
      stats: this.stats,
      log: this.log,
      onRefused: (ncr) => this.ncrDone({ ncr, status: 'failed', reason: 'queue-full', detail: `the request queue is full (${this.queueMgr.maxQueueSize})` }),
    });
    this.updateMgr = new D2UpdateMgr({
      queue: this.queueMgr,
      maxTransactions: opts.maxTransactions ?? MAX_TRANSACTIONS_DEFAULT,
      log: this.log,
      onDone: (done) => {
        if (!this.retryMgr.ended(done)) this.ncrDone(done);
      },
    });
    this.retryMgr = new NcrRetryMgr({
      queue: this.queueMgr,
      stats: this.stats,
      log: this.log,
      onFinal: (done) => this.ncrDone(done),
      onRequeued: () => this.updateMgr.sweep(),
    });
  }

  /** The port NCRs are received on (once configured). */
  get port(): number | undefined {
    return this.listener?.port;
  }

  /** The configuration in force. */
  get configuration(): D2ConfigInput | undefined {
    return this.current;
  }

  /** Applies a configuration, or rejects it and keeps the current one. Calls are serialized. */
  configure(input: D2ConfigInput): Promise<ConfigureResult> {
    const run = this.configuring.then(() => this.doConfigure(input));
    this.configuring = run.catch(() => undefined);
    return run;
  }

  /** Hands an NCR to the queue as the listener does (for embedding and tests). */
  receive(ncr: NameChangeRequest): void {
    this.stats.addValue('ncr-received');
    if (this.stopping) {
      this.ncrDone({ ncr, status: 'failed', reason: 'shutdown', detail: 'the server is shutting down' });
      return;
    }
    if (this.journal) {
      this.journal.admit(ncr, (n, id) => this.queueJournaled(n, id));
      return;
    }
    if (this.queueMgr.enqueue(ncr)) {
      this.retryMgr.received(ncr);
      this.updateMgr.sweep();
    }
  }

  /** Queues an NCR the journal holds (just written, or left by a previous run). */
  private queueJournaled(ncr: NameChangeRequest, id: number): void {
    if (this.stopping) {
      // Not marked done: the next start serves it.
      this.ncrDone({ ncr, status: 'failed', reason: 'shutdown', detail: 'the server is shutting down' });
      return;
    }
    if (!this.queueMgr.enqueue(ncr)) {
      this.journal?.done(id); // refused, counted and ended: nothing to replay
      return;
    }
    this.journalIds.set(this.queueMgr.seqAt(this.queueMgr.size - 1), id);
    this.retryMgr.received(ncr);
    this.updateMgr.sweep();
  }

  /**
   * Stops receiving, lets transactions end within the bound, unloads the hook
   * libraries. Idempotent. Kea's shutdown types: `normal` (queued NCRs end
   * failed, transactions in flight may finish), `drain_first` (the queue is
   * served first — within the same bound, where Kea waits without one), `now`
   * (transactions in flight are stopped at once).
   */
  shutdown(type: ShutdownType = 'normal'): Promise<void> {
    this.stopping ??= this.doShutdown(type);
    return this.stopping;
  }

  private async doConfigure(input: D2ConfigInput): Promise<ConfigureResult> {
    if (this.stopping) return { ok: false, error: 'the server is shutting down' };
    const cfg = input.config;
    // 1. What can be checked without touching anything.
    const keys = new Map<string, TsigKey>();
    try {
      for (const k of cfg['tsig-keys']) {
        keys.set(k.name, TsigKey.create({ name: k.name, algorithm: k.algorithm, secret: k.secret, digestBits: k['digest-bits'] }));
      }
    } catch (e) {
      return { ok: false, error: `tsig-keys: ${(e as Error).message}` };
    }
    const intake = intakePolicy(cfg, this.intakeFallback);
    // 2. Let the transactions in flight finish; NCRs keep arriving and wait in the queue.
    this.updateMgr.pause();
    try {
      await this.updateMgr.idle();
      // 3. The listener, when its address or port changes.
      let fresh: NcrListener | undefined;
      const old = this.listener;
      const readerChanged = this.current !== undefined && intakePolicy(this.current.config, this.intakeFallback).readerThread !== intake.readerThread;
      if (!old || readerChanged || old.ipAddress !== cfg['ip-address'] || (this.current && this.current.config.port !== cfg.port)) {
        fresh = new NcrListener({
          ipAddress: cfg['ip-address'],
          port: cfg.port,
          logger: new Logger('dhcp-to-d2'),
          onNcr: (ncr) => this.receive(ncr),
          onInvalid: () => this.stats.addValue('ncr-invalid'),
          onError: () => this.stats.addValue('ncr-error'),
          receiveBufferBytes: intake.receiveBufferBytes,
          readerThread: intake.readerThread,
          onKernelDrops: (dropped) => this.stats.addValue(KERNEL_DROPS_STAT, dropped),
        });
        try {
          await fresh.start();
        } catch (e) {
          return { ok: false, error: (e as Error).message };
        }
      }
      // 3b. The journal, at the first configuration naming one (its NCRs are queued at commit).
      const journalPath = cfg['d2box-journal-file'];
      let opened: Awaited<ReturnType<typeof NcrJournal.open>> | undefined;
      if (journalPath !== undefined && !this.journal) {
        try {
          // Loaded only when a journal is configured.
          const { NcrJournal: Journal } = await import('./ncr-journal.js');
          opened = await Journal.open(journalPath, new Logger('d2box-journal'));
        } catch (e) {
          await fresh?.stop();
          return { ok: false, error: `d2box-journal-file: cannot open ${journalPath}: ${(e as Error).message}` };
        }
      } else if (this.journal && journalPath !== this.journal.path) {
        this.log.warn('D2BOX_JOURNAL_UNCHANGED', `d2box-journal-file changes take effect at the next start; the journal stays ${this.journal.path}`);
      }
      // 4. Hook libraries, then d2_srv_configured.
      try {
        await this.hooks.loadLibraries(input.hooksLibraries);
      } catch (e) {
        await fresh?.stop();
        await opened?.journal.close();
        return { ok: false, error: e instanceof HooksLoadError ? e.message : String(e) };
      }
      const configured = await this.hooks.configured(input.json, input.config);
      if (!configured.accepted) {
        await fresh?.stop();
        await opened?.journal.close();
        await this.restoreHooks();
        return { ok: false, error: configured.error };
      }
      // 5. Commit.
      if (fresh) {
        this.listener = fresh;
        await old?.stop();
      } else if (this.current && intakePolicy(this.current.config, this.intakeFallback).receiveBufferBytes !== intake.receiveBufferBytes) {
        this.listener?.setReceiveBuffer(intake.receiveBufferBytes);
      }
      this.queueMgr.setMaxQueueSize(intake.maxQueueSize);
      this.updateMgr.configure({
        forwardDomains: cfg['forward-ddns']['ddns-domains'],
        reverseDomains: cfg['reverse-ddns']['ddns-domains'],
        transaction: {
          dnsClient: this.dnsClient,
          dnsServerTimeout: cfg['dns-server-timeout'],
          keys,
          stats: this.stats,
          hooks: this.hooks,
          log: new Logger('d2-to-dns'),
        },
      });
      this.retryMgr.configure(ncrRetryPolicy(cfg));
      declareKeyStats(this.stats, [...keys.keys()].map(tsigKeyStatName));
      this.current = input;
      if (opened) {
        this.journal = opened.journal;
        this.stats.addValue(JOURNAL_CORRUPT_STAT, opened.found.corrupt);
        // Queued now, in the order first received, ahead of anything received while this configuration was applied.
        for (const r of opened.replay) this.queueJournaled(r.ncr, r.id);
      }
      return { ok: true };
    } finally {
      this.updateMgr.resume();
    }
  }

  /** After a rejected configuration: the libraries of the one in force, configured again. */
  private async restoreHooks(): Promise<void> {
    const cur = this.current;
    try {
      if (!cur) {
        await this.hooks.unloadLibraries();
        return;
      }
      await this.hooks.loadLibraries(cur.hooksLibraries);
      const again = await this.hooks.configured(cur.json, cur.config);
      if (!again.accepted) {
        this.log.error('D2BOX_HOOKS_RESTORE_DROP', `d2_srv_configured refused the configuration in force when it was restored: ${again.error}`);
      }
    } catch (e) {
      this.log.error('D2BOX_HOOKS_RESTORE_FAILED', `could not restore the hook libraries of the configuration in force: ${(e as Error).message}`);
    }
  }

  private ncrDone(done: NcrDone): void {
    if (this.journal && done.seq !== undefined) {
      const id = this.journalIds.get(done.seq);
      this.journalIds.delete(done.seq);
      // An NCR ended by the server stopping was not served: left open, the next start serves it.
      if (id !== undefined && done.reason !== 'shutdown' && done.reason !== 'stopped') this.journal.done(id);
    }
    if (done.status === 'completed') {
      this.stats.addValue('d2box.ncr-completed');
    } else {
      this.stats.addValue('d2box.ncr-failed');
      this.stats.addValue(failureStatName(done.reason ?? 'model-error'));
    }
    if (done.transaction) {
      const what = done.ncr.changeType === 0 ? 'ADD' : 'REMOVE';
      const text = `DHCP_DDNS Request ID ${done.ncr.dhcidHex}: ${done.ncr.fqdn} ${done.ncr.ipAddress}`;
      if (done.status === 'completed') this.dnsLog.info(what === 'ADD' ? 'DHCP_DDNS_ADD_SUCCEEDED' : 'DHCP_DDNS_REMOVE_SUCCEEDED', `${text}: ${what.toLowerCase()} succeeded`);
      else this.dnsLog.error(what === 'ADD' ? 'DHCP_DDNS_ADD_FAILED' : 'DHCP_DDNS_REMOVE_FAILED', `${text}: ${what.toLowerCase()} failed (${done.reason}): ${done.detail}`);
    } else if (done.reason === 'shutdown') {
      this.log.warn('D2BOX_NCR_ABANDONED', `DHCP_DDNS Request ID ${done.ncr.dhcidHex}: ${done.ncr.fqdn} not processed: ${done.detail}`);
    }
    this.emit('ncr-done', done);
  }

  /** drain_first: serves what is queued until the queue is empty and no transaction runs, within shutdownTimeoutMs. */
  private async drain(): Promise<void> {
    const step = 50;
    const rounds = Math.ceil(this.shutdownTimeoutMs / step) + 1;
    for (let i = 0; i < rounds && (this.queueMgr.size > 0 || this.updateMgr.transactionCount > 0); i++) {
      this.updateMgr.sweep();
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, step);
        void this.updateMgr.idle().then(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  private async doShutdown(type: ShutdownType): Promise<void> {
    // Wait for a configuration being applied, so its listener is not left open.
    await this.configuring;
    await this.listener?.stop();
    this.listener = undefined;
    if (type === 'drain_first') await this.drain();
    this.updateMgr.pause();
    this.retryMgr.stop();
    for (const ncr of this.queueMgr.clear()) {
      this.ncrDone({ ncr, status: 'failed', reason: 'shutdown', detail: 'the server shut down before the request was processed' });
    }
    const within = (ms: number) =>
      new Promise<boolean>((resolve) => {
        const t = setTimeout(() => resolve(false), ms);
        void this.updateMgr.idle().then(() => {
          clearTimeout(t);
          resolve(true);
        });
      });
    if (!(await within(type === 'now' ? 0 : this.shutdownTimeoutMs))) {
      this.log.warn('D2BOX_SHUTDOWN_TIMEOUT', `${this.updateMgr.transactionCount} transaction(s) still running after ${this.shutdownTimeoutMs} ms; stopping them`);
    }
    await this.dnsClient.close();
    if (!(await within(this.shutdownTimeoutMs))) {
      this.log.error('D2BOX_SHUTDOWN_ABANDONED', `${this.updateMgr.transactionCount} transaction(s) did not end; abandoned`);
    }
    await this.journal?.close();
    await this.hooks.unloadLibraries();
  }
}
