/**
 * The StatsMgr a library gets on its LibraryHandle: Kea's StatsMgr calls, made
 * fire-and-forget. Updates are queued and sent in one message at the end of the
 * current turn, ahead of anything else the worker sends then (the results of
 * the callout that made them included), so a statistic costs no round trip and
 * the host has applied a callout's updates before it sees the callout's result.
 *
 * Checks here are the host's (LIBRARY_STATS_LIMITS), made early so an honest
 * library gets a throw at the faulty call instead of a failed message.
 */
import { LIBRARY_STATS_LIMITS, type StatisticType, type StatisticUpdate, type WorkerMessage } from '../src/hooks/protocol.js';
import type { StatsMgr } from './hooks-api.js';

export class LibraryStatsMgr implements StatsMgr {
  private queue: StatisticUpdate[] = [];
  private flushQueued = false;
  /** The type of each statistic this worker made, so later numbers keep it (Kea's are typed by C++). */
  private readonly types = new Map<string, StatisticType>();

  constructor(private readonly post: (message: WorkerMessage) => void) {}

  setValue(name: string, value: number | string, type?: StatisticType): void {
    this.enqueue(this.valueUpdate('set', name, value, type));
  }

  addValue(name: string, value: number | string, type?: StatisticType): void {
    this.enqueue(this.valueUpdate('add', name, value, type));
  }

  del(name: string): boolean {
    checkName(name);
    this.enqueue({ op: 'remove', name });
    return this.types.delete(name);
  }

  reset(name: string): boolean {
    checkName(name);
    this.enqueue({ op: 'reset', name });
    return this.types.has(name);
  }

  removeAll(): void {
    for (const name of this.types.keys()) this.enqueue({ op: 'remove', name });
    this.types.clear();
  }

  resetAll(): void {
    for (const name of this.types.keys()) this.enqueue({ op: 'reset', name });
  }

  setMaxSampleCount(name: string, count: number): void {
    checkName(name);
    if (!Number.isInteger(count) || count < 0 || count > LIBRARY_STATS_LIMITS.samples) {
      throw new RangeError(`max sample count must be an integer from 0 to ${LIBRARY_STATS_LIMITS.samples}`);
    }
    this.enqueue({ op: 'max-sample-count', name, count });
  }

  setMaxSampleAge(name: string, ageMs: number): void {
    checkName(name);
    if (typeof ageMs !== 'number' || !Number.isFinite(ageMs) || ageMs < 0) throw new RangeError('max sample age must be a non-negative number of milliseconds');
    this.enqueue({ op: 'max-sample-age', name, ageMs });
  }

  count(): number {
    return this.types.size;
  }

  generateName(context: string, index: number | string, stat: string): string {
    return `${context}[${index}].${stat}`;
  }

  /** Sends what is queued now (before another message, so the host sees the updates first). */
  flush(): void {
    this.flushQueued = false;
    if (this.queue.length === 0) return;
    const queue = this.queue;
    this.queue = [];
    for (let i = 0; i < queue.length; i += LIBRARY_STATS_LIMITS.updatesPerMessage) {
      this.post({ t: 'stats', updates: queue.slice(i, i + LIBRARY_STATS_LIMITS.updatesPerMessage) });
    }
  }

  private valueUpdate(op: 'set' | 'add', name: string, value: number | string, type: StatisticType | undefined): StatisticUpdate {
    checkName(name);
    const known = this.types.get(name);
    type ??= typeof value === 'string' ? 'string' : (known ?? (Number.isInteger(value) ? 'integer' : 'float'));
    if (known !== undefined && known !== type) throw new TypeError(`statistic ${name} is of type ${known}, not ${type}`);
    let wire: number | string;
    if (type === 'string') {
      if (typeof value !== 'string') throw new TypeError(`statistic ${name} is a string statistic`);
      if (value.length > LIBRARY_STATS_LIMITS.stringChars) throw new RangeError(`a statistic string is at most ${LIBRARY_STATS_LIMITS.stringChars} characters`);
      wire = value;
    } else {
      if (typeof value !== 'number' || !Number.isFinite(value)) throw new TypeError(`statistic ${name} needs a finite number`);
      // A duration is given in milliseconds and crosses in microseconds, Kea's resolution.
      wire = type === 'duration' ? Math.round(value * 1000) : value;
      if (type !== 'float' && !Number.isSafeInteger(wire)) throw new RangeError(`statistic ${name}: ${type} value ${value} is not a safe integer`);
    }
    if (known === undefined) {
      if (this.types.size >= LIBRARY_STATS_LIMITS.statistics) throw new RangeError(`a library may have at most ${LIBRARY_STATS_LIMITS.statistics} statistics`);
      this.types.set(name, type);
    }
    return { op, name, type, value: wire };
  }

  private enqueue(update: StatisticUpdate): void {
    this.queue.push(update);
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => this.flush());
    }
  }
}

function checkName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length === 0 || name.length > LIBRARY_STATS_LIMITS.nameChars) {
    throw new TypeError(`a statistic name is a string of 1 to ${LIBRARY_STATS_LIMITS.nameChars} characters`);
  }
}
