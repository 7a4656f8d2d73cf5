/**
 * NcrRetryMgr's schedule, on a fake clock: when an NCR no server answered is
 * queued again (first delay, factor, cap, the last attempt at the maximum age),
 * and what it does not retry. The real queue and statistics; each attempt
 * "fails" as soon as it is taken from the queue. test/dns-outage.test.ts runs the
 * same manager against a real BIND 9.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ncrRetryPolicy } from '../src/config/ncr-retry-config.js';
import { D2QueueMgr } from '../src/d2/d2-queue-mgr.js';
import type { NcrDone } from '../src/d2/d2-update-mgr.js';
import type { TransactionOutcome } from '../src/d2/name-change-transaction.js';
import { NcrRetryMgr } from '../src/d2/ncr-retry-mgr.js';
import { Logger, stderrSink } from '../src/log/logger.js';
import { StatsMgr } from '../src/stats/stats-mgr.js';
import { ncr } from './fixtures/d2-harness.js';

const outcome = (unanswered: boolean): TransactionOutcome => ({
  status: 'failed',
  reason: unanswered ? 'no-more-servers' : 'rejected',
  detail: unanswered ? 'no answer' : 'REFUSED',
  forwardCompleted: false,
  reverseCompleted: false,
  state: 'PROCESS_TRANS_FAILED_ST',
  event: 'NO_MORE_SERVERS_EVT',
  trail: [],
  ...(unanswered ? { unanswered: true } : {}),
});

function setup(keys: Record<string, unknown>) {
  const stats = new StatsMgr();
  const queue = new D2QueueMgr({ stats, onRefused: () => {} });
  const finals: NcrDone[] = [];
  const requeuedAt: number[] = [];
  const start = Date.now();
  const retry: NcrRetryMgr = new NcrRetryMgr({
    queue,
    stats,
    onFinal: (d) => finals.push(d),
    // Each attempt fails unanswered at once (on the next microtask, as a transaction would end later).
    onRequeued: () => {
      while (queue.size > 0) {
        const seq = queue.seqAt(0);
        const n = queue.dequeueAt(0);
        requeuedAt.push(Date.now() - start);
        queueMicrotask(() => {
          if (!retry.ended({ ncr: n, status: 'failed', reason: 'no-more-servers', transaction: outcome(true), seq })) finals.push({ ncr: n, status: 'failed' });
        });
      }
    },
  });
  retry.configure(ncrRetryPolicy(keys));
  /** The first attempt: the NCR received and failed. */
  const receiveAndFail = (n = ncr({ fqdn: 'a.example.com.', ipAddress: '192.0.2.1' }), unanswered = true) => {
    queue.enqueue(n);
    const seq = queue.seqAt(queue.size - 1);
    queue.dequeueAt(queue.size - 1);
    return retry.ended({ ncr: n, status: 'failed', transaction: outcome(unanswered), seq });
  };
  return { stats, queue, retry, finals, requeuedAt, receiveAndFail };
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
  Logger.setSink(() => {});
});
afterEach(() => {
  vi.useRealTimers();
  Logger.setSink(stderrSink);
});

describe('NcrRetryMgr schedule', () => {
  it('first delay, times the factor, at most the cap; the last attempt at the maximum age, then given up', async () => {
    const t = setup({
      'd2box-retry-first-delay-ms': 1_000,
      'd2box-retry-backoff-factor': 3,
      'd2box-retry-max-delay-ms': 5_000,
      'd2box-retry-max-age-ms': 20_000,
    });
    expect(t.receiveAndFail()).toBe(true);
    expect(t.stats.getValue('d2box.ncr-retry-waiting')).toBe(1);
    await vi.advanceTimersByTimeAsync(30_000);
    // 1 s, then ×3 = 3 s, then 9 s capped at 5 s, 5 s, then the age bound (20 s) comes first.
    expect(t.requeuedAt).toEqual([1_000, 4_000, 9_000, 14_000, 19_000, 20_000]);
    expect(t.finals).toHaveLength(1);
    expect(t.finals[0]).toMatchObject({ status: 'failed', reason: 'retry-expired' });
    expect(t.finals[0]!.detail).toMatch(/7 attempt\(s\) over 20 s/);
    expect(t.stats.getValue('d2box.ncr-retried')).toBe(6);
    expect(t.stats.getValue('d2box.ncr-given-up')).toBe(1);
    expect(t.stats.getValue('d2box.ncr-retry-waiting')).toBe(0);
  });

  it('the defaults: 1 s, 2 s, 4 s, 8 s, 16 s, then every 30 s, for 10 minutes', async () => {
    const t = setup({});
    t.receiveAndFail();
    await vi.advanceTimersByTimeAsync(700_000);
    const gaps = t.requeuedAt.map((at, i) => at - (t.requeuedAt[i - 1] ?? 0));
    expect(gaps.slice(0, 7)).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]);
    expect(t.requeuedAt[t.requeuedAt.length - 1]).toBe(600_000);
    expect(t.finals[0]).toMatchObject({ reason: 'retry-expired' });
  });

  it('a definite failure, or any failure with d2box-retry-unanswered false, is not taken over', async () => {
    const t = setup({ 'd2box-retry-first-delay-ms': 10 });
    expect(t.receiveAndFail(undefined, false)).toBe(false);
    const off = setup({ 'd2box-retry-unanswered': false });
    expect(off.receiveAndFail()).toBe(false);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(t.requeuedAt).toEqual([]);
    expect(off.requeuedAt).toEqual([]);
    expect(t.stats.getValue('d2box.ncr-retry-waiting')).toBe(0);
  });

  it('a newer NCR for the same FQDN (another case, another client) replaces the waiting one', async () => {
    const t = setup({ 'd2box-retry-first-delay-ms': 5_000 });
    t.receiveAndFail(ncr({ fqdn: 'Host.Example.com.', ipAddress: '192.0.2.1' }));
    const newer = ncr({ fqdn: 'host.example.COM.', ipAddress: '192.0.2.2', changeType: 1 });
    t.queue.enqueue(newer);
    t.retry.received(newer);
    expect(t.finals).toHaveLength(1);
    expect(t.finals[0]).toMatchObject({ reason: 'superseded', ncr: { ipAddress: '192.0.2.1' } });
    await vi.advanceTimersByTimeAsync(10_000);
    expect(t.requeuedAt).toEqual([]);
    expect(t.stats.getValue('d2box.ncr-superseded')).toBe(1);
  });

  it('when the queue is full, a retry waits for room instead of being refused', async () => {
    const t = setup({ 'd2box-retry-first-delay-ms': 1_000, 'd2box-retry-max-age-ms': 60_000 });
    t.receiveAndFail();
    const fillers = Array.from({ length: t.queue.maxQueueSize }, (_, i) => ncr({ fqdn: `f${i}.example.org.`, ipAddress: '192.0.2.9' }));
    for (const f of fillers) t.queue.enqueue(f);
    await vi.advanceTimersByTimeAsync(5_000);
    // Still waiting (tried every first delay), nothing refused.
    expect(t.stats.getValue('d2box.ncr-retry-waiting')).toBe(1);
    expect(t.stats.getValue('queue-mgr-queue-full') ?? 0).toBe(0);
    t.queue.dequeueAt(0);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(t.stats.getValue('d2box.ncr-retried')).toBe(1);
  });
});
