/**
 * Per-library hook statistics as Kea-style statistics, named like Kea's
 * per-key ones: `hook-library[<library>].<stat>`. Kea has no such names; the
 * full detail (failures by kind, latency percentiles, quarantine reason) is in
 * `hooks-status`. The values are taken from the hook host when a statistic
 * command runs, and a sample is recorded only when a value changed.
 */
import type { LibraryStatsSnapshot } from '../hooks/library-stats.js';
import type { StatsMgr } from './stats-mgr.js';

export const HOOK_LIBRARY_STATS = ['calls', 'failures', 'non-zero-returns', 'timeouts', 'restarts', 'quarantined'] as const;
export type HookLibraryStat = (typeof HOOK_LIBRARY_STATS)[number];

export function hookLibraryStatName(library: string, stat: HookLibraryStat): string {
  return `hook-library[${library}].${stat}`;
}

function values(s: LibraryStatsSnapshot): Record<HookLibraryStat, number> {
  return {
    calls: s.calls,
    failures: Object.values(s.failures).reduce((a, b) => a + b, 0),
    'non-zero-returns': s.nonZeroReturns,
    timeouts: s.timeouts,
    restarts: s.restarts,
    quarantined: s.state === 'quarantined' ? 1 : 0,
  };
}

/** Brings the `hook-library[...]` statistics up to date; those of libraries no longer loaded are removed. */
export function syncHookStats(stats: StatsMgr, libraries: readonly LibraryStatsSnapshot[]): void {
  const loaded = new Set(libraries.map((l) => l.library));
  for (const name of stats.names()) {
    const m = /^hook-library\[(.*)\]\.[a-z-]+$/.exec(name);
    if (m && !loaded.has(m[1]!)) stats.remove(name);
  }
  for (const lib of libraries) {
    const v = values(lib);
    for (const stat of HOOK_LIBRARY_STATS) {
      const name = hookLibraryStatName(lib.library, stat);
      if (stats.getValue(name) !== v[stat]) stats.setValue(name, v[stat]);
    }
  }
}
