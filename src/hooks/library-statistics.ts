/**
 * The statistics hook libraries keep in the daemon's StatsMgr, under the names
 * they choose (Kea's own, e.g. GSS-TSIG's `gss-tsig-key-created` and
 * `server[ID].…`), so that statistic-get, statistic-get-all and the reset
 * commands show and reset them beside the daemon's, as in Kea.
 *
 * Each name has one owner: the first library to create it. A library's update
 * of a name the daemon has (or reserves: `key[…]`, `hook-library[…]`,
 * `d2box.…`), or another library owns, is refused, so a library cannot change
 * the daemon's statistics or another's. A library's statistics are removed when
 * it is unloaded (a reconfiguration, or shutdown); a restart of its worker is
 * not an unload (Kea has no such event: its libraries live in the server's
 * process), so they are kept, and its next `load()` finds them as they were.
 */
import { InvalidStatType, type StatsMgr } from '../stats/stats-mgr.js';
import { LIBRARY_STATS_LIMITS, type StatisticUpdate } from './protocol.js';

/** Names the daemon creates as it runs (select_key's keys, hook counters, its own outcome counts): never a library's. */
const DAEMON_NAMES = /^(key\[|hook-library\[|d2box\.)/;

export class LibraryStatistics {
  /** Statistic name → the library (host) that owns it. */
  private readonly owners = new Map<string, object>();
  private readonly owned = new Map<object, Set<string>>();

  constructor(private readonly stats: StatsMgr) {}

  /**
   * Applies `owner`'s updates in order; returns why each refused one was refused
   * (the caller logs them). A refused update does not stop the ones after it.
   */
  apply(owner: object, updates: readonly StatisticUpdate[]): string[] {
    const refusals: string[] = [];
    let names = this.owned.get(owner);
    for (const update of updates) {
      const holder = this.owners.get(update.name);
      if (holder !== undefined && holder !== owner) {
        refusals.push(`statistic ${update.name} belongs to another hook library`);
        continue;
      }
      if (holder === undefined && (DAEMON_NAMES.test(update.name) || this.stats.has(update.name))) {
        refusals.push(`statistic ${update.name} belongs to the server`);
        continue;
      }
      try {
        switch (update.op) {
          case 'set':
          case 'add': {
            if (holder === undefined) {
              names ??= new Set();
              if (names.size >= LIBRARY_STATS_LIMITS.statistics) {
                refusals.push(`statistic ${update.name} not created: the library has ${LIBRARY_STATS_LIMITS.statistics} statistics, the most it may have`);
                continue;
              }
              this.owned.set(owner, names);
              names.add(update.name);
              this.owners.set(update.name, owner);
            }
            if (update.op === 'set') this.stats.setTyped(update.name, update.type, update.value, LIBRARY_STATS_LIMITS.samples);
            else this.stats.addTyped(update.name, update.type, update.value, LIBRARY_STATS_LIMITS.samples);
            break;
          }
          case 'remove':
            if (holder === undefined) continue;
            this.stats.remove(update.name);
            this.owners.delete(update.name);
            names?.delete(update.name);
            break;
          case 'reset':
            if (holder !== undefined) this.stats.reset(update.name);
            break;
          case 'max-sample-count':
            if (holder !== undefined) this.stats.setMaxSampleCount(update.name, update.count);
            break;
          case 'max-sample-age':
            if (holder !== undefined) this.stats.setMaxSampleAge(update.name, update.ageMs);
            break;
        }
      } catch (err) {
        if (!(err instanceof InvalidStatType)) throw err;
        refusals.push(err.message);
      }
    }
    return refusals;
  }

  /** The names `owner` has now. */
  namesOf(owner: object): string[] {
    return [...(this.owned.get(owner) ?? [])];
  }

  /** The library is unloaded: its statistics go. */
  removeAll(owner: object): void {
    for (const name of this.owned.get(owner) ?? []) {
      this.stats.remove(name);
      this.owners.delete(name);
    }
    this.owned.delete(owner);
  }
}
