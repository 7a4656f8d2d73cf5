/**
 * Kea D2's statistics (src/lib/d2srv/d2_stats.cc): global NCR and update
 * counters, and the update counters per TSIG key as `key[<name>].<stat>`.
 */
import type { StatsMgr } from './stats-mgr.js';

export const NCR_STATS = ['ncr-received', 'ncr-invalid', 'ncr-error'] as const;
export const UPDATE_STATS = ['update-sent', 'update-signed', 'update-unsigned', 'update-success', 'update-timeout', 'update-error'] as const;
export const KEY_STATS = ['update-sent', 'update-success', 'update-timeout', 'update-error'] as const;
export const QUEUE_STATS = ['queue-mgr-queue-full'] as const;

export type NcrStat = (typeof NCR_STATS)[number];
export type UpdateStat = (typeof UPDATE_STATS)[number];
export type KeyStat = (typeof KEY_STATS)[number];

export function keyStatName(key: string, stat: KeyStat): string {
  return `key[${key}].${stat}`;
}

/**
 * Declares every global statistic at 0, as D2Stats::init does at start, which
 * first sets the default max-sample-count to 0 (an age limit of 0: one sample
 * per statistic). Kea 2.2 has no queue-mgr-queue-full statistic; later Kea
 * versions and the d2box spec do, so it is declared too.
 */
export function declareD2Stats(stats: StatsMgr): void {
  stats.setMaxSampleCountDefault(0);
  for (const name of [...NCR_STATS, ...UPDATE_STATS, ...QUEUE_STATS]) stats.declare(name);
}

/** Declares the per-key statistics of the configured keys; drops those of keys no longer configured. */
export function declareKeyStats(stats: StatsMgr, keyNames: readonly string[]): void {
  const wanted = new Set(keyNames);
  for (const name of stats.names()) {
    const m = /^key\[(.*)\]\./.exec(name);
    if (m && !wanted.has(m[1]!)) stats.remove(name);
  }
  for (const key of keyNames) for (const stat of KEY_STATS) stats.declare(keyStatName(key, stat));
}
