/**
 * NcrRetryMgr: d2box's way through a DNS outage (Kea has none: an NCR whose
 * servers all time out is dropped for good, and DHCP servers never resend).
 *
 * An NCR whose transaction failed because no server answered at all
 * (TransactionOutcome.unanswered: timeouts, I/O errors, every server tried)
 * waits here and is queued again after a backoff delay (first delay, times the
 * factor per failed attempt, at most the cap), until it succeeds or its age,
 * counted from its first failure, reaches the maximum: then it is given up,
 * counted and logged with its FQDN. Each attempt is a new transaction of the
 * same NCR, through select_key like a first one. Any definite answer (an
 * RCODE such as REFUSED or NOTAUTH, a bad signature, an RFC 4703 decision)
 * ends the NCR as before: those answers would not change.
 *
 * Order per name. The newer of two NCRs for the same FQDN (case aside) or the
 * same DHCID wins: an NCR received replaces the retries of its name still
 * waiting or queued again; an NCR that fails unanswered while a newer one for
 * its name is queued or waiting is not retried; an NCR that ends replaces the
 * older retries of its name. "Newer" is the receipt order the queue keeps
 * (D2QueueMgr.seqAt). So an add held back by an outage never lands after the
 * remove that followed it. A replaced NCR ends failed with `superseded`.
 *
 * Bounds. The waiting set holds at most `maxWaiting` NCRs and about
 * `maxWaitingBytes` of them; past either, the oldest (first failed first) is
 * given up (`retry-overflow`). NCRs queued again are bounded by the queue, and
 * wait for room there rather than being refused.
 *
 * Statistics: `d2box.ncr-retried` (attempts after the first), `d2box.ncr-retry-waiting`
 * (NCRs waiting now), `d2box.ncr-given-up` (too old, or pushed out by the bound)
 * and `d2box.ncr-superseded`; each given-up or superseded NCR also ends in
 * `d2box.ncr-failed.<reason>`. Waiting NCRs end failed with `shutdown` when the
 * server stops; with the journal (`d2box-journal-file`) they stay open in it and
 * the next start queues them again (the retry count starts afresh).
 */
import { NCR_RETRY_DEFAULTS, type NcrRetryPolicy } from '../config/ncr-retry-config.js';
import { Logger } from '../log/logger.js';
import type { NameChangeRequest } from '../ncr/name-change-request.js';
import type { StatsMgr } from '../stats/stats-mgr.js';
import type { D2QueueMgr } from './d2-queue-mgr.js';
import type { NcrDone } from './d2-update-mgr.js';
import type { FailureReason, TransactionOutcome } from './name-change-transaction.js';

export const RETRY_STATS = ['d2box.ncr-retried', 'd2box.ncr-retry-waiting', 'd2box.ncr-given-up', 'd2box.ncr-superseded'] as const;

/** What an NCR waiting here costs besides its strings: the NCR, this entry, map slots. */
const ENTRY_OVERHEAD_BYTES = 320;

interface RetryEntry {
  ncr: NameChangeRequest;
  /** Its receipt number (D2QueueMgr). */
  seq: number;
  fqdnKey: string;
  failedAttempts: number;
  firstFailedAt: number;
  dueAt: number;
  bytes: number;
  lastDetail: string;
  waiting: boolean;
}

export interface NcrRetryMgrOptions {
  queue: D2QueueMgr;
  stats: StatsMgr;
  /** Ends an NCR this manager ended (superseded, given up, shut down). */
  onFinal: (done: NcrDone) => void;
  /** NCRs were queued again: transactions may start. */
  onRequeued: () => void;
  log?: Logger;
  now?: () => number;
}

export class NcrRetryMgr {
  private policy: NcrRetryPolicy = NCR_RETRY_DEFAULTS;
  private readonly queue: D2QueueMgr;
  private readonly stats: StatsMgr;
  private readonly onFinal: (done: NcrDone) => void;
  private readonly onRequeued: () => void;
  private readonly log: Logger;
  private readonly now: () => number;
  /**
   * Every NCR between its first unanswered failure and its end (waiting, queued
   * again, or running again), by receipt number, in the order of first failure:
   * the first waiting one is the oldest.
   */
  private readonly entries = new Map<number, RetryEntry>();
  /** The same entries by name (`d:` DHCID, `f:` lower-case FQDN): finding an NCR's namesakes costs no scan. */
  private readonly byName = new Map<string, Set<RetryEntry>>();
  private waitingCount = 0;
  private waitingBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerDueAt = Infinity;
  private stopped = false;

  constructor(opts: NcrRetryMgrOptions) {
    this.queue = opts.queue;
    this.stats = opts.stats;
    this.onFinal = opts.onFinal;
    this.onRequeued = opts.onRequeued;
    this.log = opts.log ?? new Logger('dhcp-to-d2');
    this.now = opts.now ?? Date.now;
    for (const name of RETRY_STATS) this.stats.declare(name);
  }

  configure(policy: NcrRetryPolicy): void {
    this.policy = policy;
  }

  /** NCRs waiting for their next attempt. */
  get waiting(): number {
    return this.waitingCount;
  }

  /** A fresh NCR was queued: it replaces the retries of its name still waiting or queued. */
  received(ncr: NameChangeRequest): void {
    if (this.entries.size === 0) return;
    this.supersedeOlder(ncr, Infinity, `a newer NCR for ${ncr.fqdn} arrived`);
  }

  /**
   * An NCR's transaction (or its attempt to make one) ended. True when this
   * manager takes it over: it will be tried again, or was ended here. False:
   * `done` is the NCR's end, for the caller to report.
   */
  ended(done: NcrDone): boolean {
    const seq = done.seq;
    if (seq === undefined) return false;
    const entry = this.entries.size > 0 ? this.entries.get(seq) : undefined;
    const retry = done.status === 'failed' && done.transaction?.unanswered === true && this.policy.enabled && !this.stopped;
    if (!retry) {
      if (entry) {
        this.forget(entry);
        if (done.status === 'completed') {
          this.log.info('D2BOX_NCR_RETRY_SUCCEEDED', `DHCP_DDNS Request ID ${done.ncr.dhcidHex}: ${done.ncr.fqdn} ${done.ncr.ipAddress} done at attempt ${entry.failedAttempts + 1}`);
        }
      }
      if (this.entries.size > 0) this.supersedeOlder(done.ncr, seq, `a newer NCR for ${done.ncr.fqdn} ended`);
      return false;
    }
    const e = entry ?? this.newEntry(done.ncr, seq);
    e.failedAttempts++;
    e.lastDetail = done.detail ?? '';
    if (this.newerExists(e)) {
      this.end(e, 'superseded', `not retried: a newer NCR for ${e.ncr.fqdn} is pending`, done.transaction);
      return true;
    }
    this.supersedeOlder(done.ncr, seq, `a newer NCR for ${done.ncr.fqdn} failed and waits to be retried`);
    const now = this.now();
    const age = now - e.firstFailedAt;
    const p = this.policy;
    if (age >= p.maxAgeMs) {
      this.giveUp(e, 'retry-expired', `no DNS server answered in ${e.failedAttempts} attempt(s) over ${seconds(age)} s (d2box-retry-max-age-ms ${p.maxAgeMs})`, done.transaction);
      return true;
    }
    const delay = Math.min(p.maxDelayMs, p.firstDelayMs * p.factor ** (e.failedAttempts - 1));
    e.dueAt = Math.min(now + delay, e.firstFailedAt + p.maxAgeMs);
    this.log.warn(
      'D2BOX_NCR_RETRY_SCHEDULED',
      `DHCP_DDNS Request ID ${e.ncr.dhcidHex}: ${e.ncr.fqdn} ${e.ncr.ipAddress}: no DNS server answered (attempt ${e.failedAttempts}); next attempt in ${e.dueAt - now} ms`,
    );
    this.addWaiting(e);
    return true;
  }

  /** Server shutdown: waiting NCRs end failed (`shutdown`); those queued again are the queue's to end. */
  stop(): void {
    this.stopped = true;
    this.clearTimer();
    for (const e of [...this.entries.values()]) {
      if (e.waiting) this.end(e, 'shutdown', 'the server shut down while the NCR waited to be retried');
    }
    this.entries.clear();
    this.byName.clear();
    this.publishWaiting();
  }

  private forget(e: RetryEntry): void {
    this.entries.delete(e.seq);
    this.index(e, false);
  }

  private newEntry(ncr: NameChangeRequest, seq: number): RetryEntry {
    const e: RetryEntry = {
      ncr,
      seq,
      fqdnKey: ncr.fqdn.toLowerCase(),
      failedAttempts: 0,
      firstFailedAt: this.now(),
      dueAt: 0,
      bytes: ENTRY_OVERHEAD_BYTES + 2 * (ncr.fqdn.length + ncr.ipAddress.length + ncr.dhcidHex.length) + ncr.dhcid.byteLength,
      lastDetail: '',
      waiting: false,
    };
    this.entries.set(seq, e);
    this.index(e, true);
    return e;
  }

  /** A newer NCR for e's name queued or waiting. */
  private newerExists(e: RetryEntry): boolean {
    for (const w of this.namesakes(e.ncr.dhcidHex, e.fqdnKey)) if (w.waiting && w.seq > e.seq) return true;
    const q = this.queue;
    for (let i = 0; i < q.size; i++) if (q.seqAt(i) > e.seq && sameName(q.peekAt(i), e.ncr.dhcidHex, e.fqdnKey)) return true;
    return false;
  }

  /** Ends the retries (waiting or queued again) for ncr's name received before `seq`. */
  private supersedeOlder(ncr: NameChangeRequest, seq: number, why: string): void {
    const older = this.namesakes(ncr.dhcidHex, ncr.fqdn.toLowerCase()).filter((e) => e.seq < seq);
    let queued = 0;
    for (const e of older) {
      if (e.waiting) this.end(e, 'superseded', why);
      else queued++;
    }
    // Those not waiting are queued again (to be taken out) or running (left to end).
    const q = this.queue;
    for (let i = q.size - 1; i >= 0 && queued > 0; i--) {
      const e = this.entries.get(q.seqAt(i));
      if (e && older.includes(e)) {
        queued--;
        q.dequeueAt(i);
        this.end(e, 'superseded', why);
      }
    }
  }

  /** The entries with this DHCID or this (lower-case) FQDN. */
  private namesakes(dhcidHex: string, fqdnKey: string): RetryEntry[] {
    const a = this.byName.get(`d:${dhcidHex}`);
    const b = this.byName.get(`f:${fqdnKey}`);
    if (!a && !b) return [];
    return [...new Set([...(a ?? []), ...(b ?? [])])];
  }

  private index(e: RetryEntry, add: boolean): void {
    for (const k of [`d:${e.ncr.dhcidHex}`, `f:${e.fqdnKey}`]) {
      let set = this.byName.get(k);
      if (add) {
        if (!set) this.byName.set(k, (set = new Set()));
        set.add(e);
      } else if (set) {
        set.delete(e);
        if (set.size === 0) this.byName.delete(k);
      }
    }
  }

  private addWaiting(e: RetryEntry): void {
    e.waiting = true;
    this.waitingCount++;
    this.waitingBytes += e.bytes;
    const p = this.policy;
    // Entries are in order of first failure: the first waiting one is the oldest.
    for (const old of this.entries.values()) {
      if (this.waitingCount <= p.maxWaiting && this.waitingBytes <= p.maxWaitingBytes) break;
      if (!old.waiting) continue;
      const bound = this.waitingCount > p.maxWaiting ? `d2box-retry-max-waiting ${p.maxWaiting}` : `d2box-retry-max-waiting-bytes ${p.maxWaitingBytes}`;
      this.giveUp(old, 'retry-overflow', `too many NCRs waiting to be retried (${bound}); the oldest is given up`);
    }
    this.publishWaiting();
    if (e.waiting && e.dueAt < this.timerDueAt) this.arm(e.dueAt);
  }

  private leaveWaiting(e: RetryEntry): void {
    if (!e.waiting) return;
    e.waiting = false;
    this.waitingCount--;
    this.waitingBytes -= e.bytes;
  }

  private giveUp(e: RetryEntry, reason: FailureReason, detail: string, transaction?: TransactionOutcome): void {
    this.stats.addValue('d2box.ncr-given-up');
    const last = e.lastDetail ? `; last failure: ${e.lastDetail}` : '';
    this.log.error('D2BOX_NCR_GIVEN_UP', `DHCP_DDNS Request ID ${e.ncr.dhcidHex}: ${e.ncr.fqdn} ${e.ncr.ipAddress} given up: ${detail}${last}`);
    this.end(e, reason, detail, transaction);
  }

  private end(e: RetryEntry, reason: FailureReason, detail: string, transaction?: TransactionOutcome): void {
    this.leaveWaiting(e);
    this.forget(e);
    if (reason === 'superseded') {
      this.stats.addValue('d2box.ncr-superseded');
      this.log.info('D2BOX_NCR_SUPERSEDED', `DHCP_DDNS Request ID ${e.ncr.dhcidHex}: ${e.ncr.fqdn} ${e.ncr.ipAddress}: ${detail}`);
    }
    this.publishWaiting();
    const done: NcrDone = { ncr: e.ncr, status: 'failed', reason, detail, seq: e.seq };
    if (transaction) done.transaction = transaction;
    try {
      this.onFinal(done);
    } catch (err) {
      this.log.error('D2BOX_NCR_DONE_HANDLER_FAILED', `NCR completion handler threw: ${(err as Error).message}`);
    }
  }

  private publishWaiting(): void {
    this.stats.setValue('d2box.ncr-retry-waiting', this.waitingCount);
  }

  private arm(at: number): void {
    this.clearTimer();
    this.timerDueAt = at;
    this.timer = setTimeout(() => this.fire(), Math.max(0, at - this.now()));
    // The listener keeps a daemon alive; a waiting retry alone should not keep an embedding program.
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerDueAt = Infinity;
  }

  /** Queues again, in receipt order, the NCRs whose time has come; arms the timer for the next. */
  private fire(): void {
    this.timer = undefined;
    this.timerDueAt = Infinity;
    if (this.stopped) return;
    const now = this.now();
    const due: RetryEntry[] = [];
    let next = Infinity;
    for (const e of this.entries.values()) {
      if (!e.waiting) continue;
      if (e.dueAt <= now) due.push(e);
      else next = Math.min(next, e.dueAt);
    }
    due.sort((a, b) => a.seq - b.seq);
    let requeued = 0;
    for (const e of due) {
      if (this.queue.requeue(e.ncr, e.seq)) {
        this.leaveWaiting(e);
        this.stats.addValue('d2box.ncr-retried');
        requeued++;
      } else {
        // The queue is full: wait for room instead of being refused.
        e.dueAt = now + this.policy.firstDelayMs;
        next = Math.min(next, e.dueAt);
      }
    }
    this.publishWaiting();
    if (next < Infinity) this.arm(next);
    if (requeued > 0) this.onRequeued();
  }
}

function sameName(ncr: NameChangeRequest, dhcidHex: string, fqdnKey: string): boolean {
  return ncr.dhcidHex === dhcidHex || (ncr.fqdn.length === fqdnKey.length && ncr.fqdn.toLowerCase() === fqdnKey);
}

const seconds = (ms: number) => Math.round(ms / 100) / 10;
