/**
 * D2UpdateMgr, as Kea's (src/bin/d2/d2_update_mgr.cc): turns queued NCRs into
 * transactions, at most MAX_TRANSACTIONS_DEFAULT (32) at once, and at most one
 * per DHCID: an NCR whose DHCID has a transaction running waits in the queue
 * (later NCRs for other DHCIDs go past it), so NCRs for one client run in
 * order of arrival.
 *
 * Making a transaction, as Kea: a direction whose list has no domains at all is
 * ignored (forward/reverse updates disabled); a direction that is enabled but
 * has no domain matching the FQDN / reverse name fails the whole NCR, and
 * nothing is sent (Kea logs DHCP_DDNS_NO_FWD_MATCH_ERROR and drops it; d2box
 * also reports it, with reason `no-forward-match` / `no-reverse-match`). With
 * no direction left the NCR ends failed (`ddns-disabled`). Other NCRs are not
 * held up. The transaction type follows the NCR's conflict-resolution mode.
 *
 * Unlike Kea, which sweeps from its run loop, this manager sweeps whenever
 * something changes (an NCR queued, a transaction ended, resume()).
 */
import type { DdnsDomainConfig } from '../config/ddns-domains.js';
import { DdnsDomainMatcher, reverseIpAddress } from '../config/domains.js';
import { Logger } from '../log/logger.js';
import type { NameChangeRequest } from '../ncr/name-change-request.js';
import { CheckExistsAddTransaction } from './check-exists-add.js';
import { CheckExistsRemoveTransaction } from './check-exists-remove.js';
import type { D2QueueMgr } from './d2-queue-mgr.js';
import type { FailureReason, NameChangeTransaction, TransactionContext, TransactionOutcome } from './name-change-transaction.js';
import { NameAddTransaction } from './nc-add.js';
import { NameRemoveTransaction } from './nc-remove.js';
import { SimpleAddTransaction } from './simple-add.js';
import { SimpleAddWithoutDhcidTransaction } from './simple-add-without-dhcid.js';
import { SimpleRemoveTransaction } from './simple-remove.js';
import { SimpleRemoveWithoutDhcidTransaction } from './simple-remove-without-dhcid.js';

/** Kea's D2UpdateMgr::MAX_TRANSACTIONS_DEFAULT. */
export const MAX_TRANSACTIONS_DEFAULT = 32;

/** How an NCR ended. */
export interface NcrDone {
  ncr: NameChangeRequest;
  status: 'completed' | 'failed';
  reason?: FailureReason;
  detail?: string;
  /** Present when a transaction ran. */
  transaction?: TransactionOutcome;
  /** The NCR's receipt number in the queue (D2QueueMgr.seqAt), when it came through the queue. */
  seq?: number;
}

/** What the manager needs from a configuration. */
export interface UpdateMgrConfig {
  forwardDomains: readonly DdnsDomainConfig[];
  reverseDomains: readonly DdnsDomainConfig[];
  transaction: TransactionContext;
}

interface Prepared {
  config: UpdateMgrConfig;
  forward: DdnsDomainMatcher<DdnsDomainConfig>;
  reverse: DdnsDomainMatcher<DdnsDomainConfig>;
}

export interface D2UpdateMgrOptions {
  queue: D2QueueMgr;
  maxTransactions?: number;
  onDone: (done: NcrDone) => void;
  log?: Logger;
}

export class D2UpdateMgr {
  readonly maxTransactions: number;
  private readonly queue: D2QueueMgr;
  private readonly onDone: (done: NcrDone) => void;
  private readonly log: Logger;
  /**
   * The running transactions: DHCID → the serial number of its transaction. Only
   * numbers, not the transactions: a Map's table is replaced as entries come and
   * go, and the one left behind in the old generation would keep every young
   * object of the transactions it held (their whole graph) through each
   * scavenge, to be promoted, until the next full GC.
   */
  private readonly transactions = new Map<string, number>();
  private serial = 0;
  private prepared: Prepared | undefined;
  private paused = false;
  private idleWaiters: (() => void)[] = [];
  private sweeping = false;

  constructor(opts: D2UpdateMgrOptions) {
    const max = opts.maxTransactions ?? MAX_TRANSACTIONS_DEFAULT;
    if (!Number.isInteger(max) || max < 1) throw new Error('D2UpdateMgr maximum transactions limit must be greater than zero');
    this.maxTransactions = max;
    this.queue = opts.queue;
    this.onDone = opts.onDone;
    this.log = opts.log ?? new Logger('dhcp-to-d2');
  }

  get transactionCount(): number {
    return this.transactions.size;
  }

  hasTransaction(dhcidHex: string): boolean {
    return this.transactions.has(dhcidHex);
  }

  /** Installs the configuration new transactions use; running ones keep theirs. */
  configure(config: UpdateMgrConfig): void {
    this.prepared = {
      config,
      forward: new DdnsDomainMatcher(config.forwardDomains),
      reverse: new DdnsDomainMatcher(config.reverseDomains),
    };
  }

  /** Stops starting transactions (queued NCRs wait); running ones go on. */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.sweep();
  }

  /** Resolves once no transaction is running. */
  idle(): Promise<void> {
    if (this.transactions.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Starts transactions for queued NCRs while the limit allows and eligible NCRs exist. */
  sweep(): void {
    if (this.sweeping || this.paused || !this.prepared) return;
    this.sweeping = true;
    try {
      // Each round removes one NCR from the queue, so this is bounded by its size.
      for (let round = this.queue.size; round > 0 && this.transactions.size < this.maxTransactions; round--) {
        if (!this.pickNextJob()) break;
      }
    } finally {
      this.sweeping = false;
    }
  }

  /** Kea's pickNextJob: the first queued NCR whose DHCID has no transaction running. */
  private pickNextJob(): boolean {
    const n = this.queue.size;
    for (let i = 0; i < n; i++) {
      const ncr = this.queue.peekAt(i);
      if (!this.transactions.has(ncr.dhcidHex)) {
        const seq = this.queue.seqAt(i);
        this.queue.dequeueAt(i);
        this.makeTransaction(ncr, seq);
        return true;
      }
    }
    return false;
  }

  private makeTransaction(received: NameChangeRequest, seq: number): void {
    const p = this.prepared!;
    let ncr = received;
    let forward: DdnsDomainConfig | undefined;
    let reverse: DdnsDomainConfig | undefined;
    if (ncr.forwardChange) {
      if (p.config.forwardDomains.length === 0) {
        ncr = { ...ncr, forwardChange: false };
        this.log.debug('DHCP_DDNS_FWD_REQUEST_IGNORED', `forward updates are disabled; forward change of NCR ${ncr.dhcidHex} for ${ncr.fqdn} ignored`);
      } else {
        forward = p.forward.match(ncr.fqdn);
        if (!forward) {
          this.fail(received, seq, 'no-forward-match', `no forward domain matches ${ncr.fqdn}`, 'DHCP_DDNS_NO_FWD_MATCH_ERROR');
          return;
        }
      }
    }
    if (ncr.reverseChange) {
      if (p.config.reverseDomains.length === 0) {
        ncr = { ...ncr, reverseChange: false };
        this.log.debug('DHCP_DDNS_REV_REQUEST_IGNORED', `reverse updates are disabled; reverse change of NCR ${ncr.dhcidHex} for ${ncr.ipAddress} ignored`);
      } else {
        let revName: string;
        try {
          revName = reverseIpAddress(ncr.ipAddress);
        } catch (e) {
          this.fail(received, seq, 'no-reverse-match', (e as Error).message, 'DHCP_DDNS_NO_REV_MATCH_ERROR');
          return;
        }
        reverse = p.reverse.match(revName);
        if (!reverse) {
          this.fail(received, seq, 'no-reverse-match', `no reverse domain matches ${revName}`, 'DHCP_DDNS_NO_REV_MATCH_ERROR');
          return;
        }
      }
    }
    if (!ncr.forwardChange && !ncr.reverseChange) {
      this.fail(received, seq, 'ddns-disabled', 'neither direction of the NCR is enabled in the configuration', 'DHCP_DDNS_REQUEST_DROPPED');
      return;
    }
    const trans = createTransaction(ncr, forward, reverse, p.config.transaction);
    const serial = (this.serial = (this.serial + 1) & 0x3fffffff); // stays a small integer
    this.transactions.set(trans.key, serial);
    void trans.run().then((outcome) => this.transactionEnded(received, seq, trans, serial, outcome));
  }

  private transactionEnded(ncr: NameChangeRequest, seq: number, trans: NameChangeTransaction, serial: number, outcome: TransactionOutcome): void {
    if (this.transactions.get(trans.key) === serial) this.transactions.delete(trans.key);
    const done: NcrDone = { ncr, status: outcome.status, transaction: outcome, seq };
    if (outcome.reason) done.reason = outcome.reason;
    if (outcome.detail) done.detail = outcome.detail;
    this.report(done);
    if (this.transactions.size === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
    this.sweep();
  }

  private fail(ncr: NameChangeRequest, seq: number, reason: FailureReason, detail: string, id: string): void {
    this.log.error(id, `DHCP_DDNS Request ID ${ncr.dhcidHex}: ${detail}; request dropped: ${ncr.fqdn} ${ncr.ipAddress}`);
    this.report({ ncr, status: 'failed', reason, detail, seq });
  }

  private report(done: NcrDone): void {
    try {
      this.onDone(done);
    } catch (e) {
      this.log.error('D2BOX_NCR_DONE_HANDLER_FAILED', `NCR completion handler threw: ${(e as Error).message}`);
    }
  }
}

/** The transaction for an NCR's change type and conflict-resolution mode. */
export function createTransaction(
  ncr: NameChangeRequest,
  forward: DdnsDomainConfig | undefined,
  reverse: DdnsDomainConfig | undefined,
  ctx: TransactionContext,
): NameChangeTransaction {
  const add = ncr.changeType === 0;
  switch (ncr.conflictResolutionMode) {
    case 'check-with-dhcid':
      return add ? new NameAddTransaction(ncr, forward, reverse, ctx) : new NameRemoveTransaction(ncr, forward, reverse, ctx);
    case 'no-check-with-dhcid':
      return add ? new SimpleAddTransaction(ncr, forward, reverse, ctx) : new SimpleRemoveTransaction(ncr, forward, reverse, ctx);
    case 'check-exists-with-dhcid':
      return add ? new CheckExistsAddTransaction(ncr, forward, reverse, ctx) : new CheckExistsRemoveTransaction(ncr, forward, reverse, ctx);
    case 'no-check-without-dhcid':
      return add
        ? new SimpleAddWithoutDhcidTransaction(ncr, forward, reverse, ctx)
        : new SimpleRemoveWithoutDhcidTransaction(ncr, forward, reverse, ctx);
  }
}
