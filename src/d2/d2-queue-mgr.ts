/**
 * D2QueueMgr, as Kea's (src/bin/d2/d2_queue_mgr.cc): the FIFO of received NCRs
 * waiting for a transaction, at most MAX_QUEUE_DEFAULT (1024) of them.
 *
 * Overload: Kea stops listening when the queue is full (dropping the NCR in
 * hand, and leaving whatever arrives meanwhile to the kernel, unseen) and
 * listens again once the queue is down to 80%. d2box keeps receiving, so every
 * NCR that reaches it is seen: each one that finds the queue full is refused —
 * counted in `queue-mgr-queue-full` (Kea's statistic, counted per NCR as newer
 * Kea does), handed to `onRefused` so it ends failed with reason `queue-full`,
 * and logged (the first refusals of an overload one by one, then a summary
 * when the queue has room again). None disappears silently.
 *
 * Each entry carries its receipt number (`seqAt`): the order NCRs arrived in,
 * kept by an NCR that is queued again for a retry (`requeue`), so that the
 * retry manager can tell which of two NCRs for one name is the newer.
 */
import { Logger } from '../log/logger.js';
import type { NameChangeRequest } from '../ncr/name-change-request.js';
import type { StatsMgr } from '../stats/stats-mgr.js';

/** Kea's D2QueueMgr::MAX_QUEUE_DEFAULT. */
export const MAX_QUEUE_DEFAULT = 1024;
/** Refusals logged one by one per overload episode; the rest are summed up when it ends. */
const LOGGED_REFUSALS_PER_EPISODE = 20;

export interface D2QueueMgrOptions {
  maxQueueSize?: number;
  stats: StatsMgr;
  /** Called for each NCR refused because the queue is full. */
  onRefused: (ncr: NameChangeRequest) => void;
  log?: Logger;
}

export class D2QueueMgr {
  private maxSize: number;
  private readonly queue: NameChangeRequest[] = [];
  /** Receipt numbers, parallel to `queue`. */
  private readonly seqs: number[] = [];
  private lastSeq = 0;
  private readonly stats: StatsMgr;
  private readonly onRefused: (ncr: NameChangeRequest) => void;
  private readonly log: Logger;
  /** Refusals in the current overload episode (0 when not overloaded). */
  private refusedInEpisode = 0;

  constructor(opts: D2QueueMgrOptions) {
    const max = opts.maxQueueSize ?? MAX_QUEUE_DEFAULT;
    if (!Number.isInteger(max) || max < 1) throw new Error('D2QueueMgr maximum queue size must be greater than zero');
    this.maxSize = max;
    this.stats = opts.stats;
    this.onRefused = opts.onRefused;
    this.log = opts.log ?? new Logger('dhcp-to-d2');
  }

  /** The bound (a d2box setting, `d2box-max-queue-size`; Kea's is fixed at 1024). */
  get maxQueueSize(): number {
    return this.maxSize;
  }

  /** A new bound; NCRs queued beyond a lower one stay queued, new ones are refused until it is reached again. */
  setMaxQueueSize(max: number): void {
    if (!Number.isInteger(max) || max < 1) throw new Error('D2QueueMgr maximum queue size must be greater than zero');
    this.maxSize = max;
  }

  get size(): number {
    return this.queue.length;
  }

  /** Queues a received NCR; when full, refuses it (counted, logged, reported). Returns whether it was queued. */
  enqueue(ncr: NameChangeRequest): boolean {
    if (this.queue.length < this.maxQueueSize) {
      this.queue.push(ncr);
      this.seqs.push(++this.lastSeq);
      this.endEpisodeIfAny();
      return true;
    }
    this.refusedInEpisode++;
    this.stats.addValue('queue-mgr-queue-full');
    if (this.refusedInEpisode === 1) {
      this.log.error('DHCP_DDNS_QUEUE_MGR_QUEUE_FULL', `application request queue has reached maximum number of entries ${this.maxQueueSize}`);
    }
    if (this.refusedInEpisode <= LOGGED_REFUSALS_PER_EPISODE) {
      this.log.error('D2BOX_QUEUE_MGR_NCR_REFUSED', `queue full: NCR for ${ncr.fqdn} (${ncr.ipAddress}, DHCID ${ncr.dhcidHex}) refused`);
    }
    this.onRefused(ncr);
    return false;
  }

  /** Queues an NCR again under its first receipt number; false (nothing counted) when full. */
  requeue(ncr: NameChangeRequest, seq: number): boolean {
    if (this.queue.length >= this.maxQueueSize) return false;
    this.queue.push(ncr);
    this.seqs.push(seq);
    return true;
  }

  /** The receipt number of the entry at `index`. */
  seqAt(index: number): number {
    this.peekAt(index);
    return this.seqs[index]!;
  }

  peekAt(index: number): NameChangeRequest {
    const ncr = this.queue[index];
    if (!ncr) throw new RangeError(`D2QueueMgr peek beyond end of queue attempted index: ${index} queue size: ${this.queue.length}`);
    return ncr;
  }

  dequeueAt(index: number): NameChangeRequest {
    const ncr = this.peekAt(index);
    // The head is by far the usual case; shift() is O(1) where splice() moves a burst-sized queue.
    if (index === 0) {
      this.queue.shift();
      this.seqs.shift();
    } else {
      this.queue.splice(index, 1);
      this.seqs.splice(index, 1);
    }
    if (this.queue.length < this.maxQueueSize) this.endEpisodeIfAny();
    return ncr;
  }

  /** Empties the queue, returning what it held (Kea's clearQueue; the caller accounts for them). */
  clear(): NameChangeRequest[] {
    const all = this.queue.splice(0, this.queue.length);
    this.seqs.length = 0;
    this.endEpisodeIfAny();
    return all;
  }

  private endEpisodeIfAny(): void {
    if (this.refusedInEpisode === 0) return;
    this.log.info(
      'D2BOX_QUEUE_MGR_RESUMED',
      `request queue has room again: ${this.refusedInEpisode} NCR(s) were refused while it was full` +
        (this.refusedInEpisode > LOGGED_REFUSALS_PER_EPISODE ? ` (${this.refusedInEpisode - LOGGED_REFUSALS_PER_EPISODE} not logged one by one)` : ''),
    );
    this.refusedInEpisode = 0;
  }
}
