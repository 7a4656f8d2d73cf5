/**
 * StatsMgr, as Kea's (src/lib/stats/stats_mgr.cc, observation.cc): named
 * integer observations, each keeping its most recent samples with timestamps,
 * reported in Kea's statistic-get shape
 * `{ name: [[value, "YYYY-MM-DD HH:MM:SS.ffffff"], ...] }`, newest first.
 *
 * Sample limits follow Kea's Observation: an observation is created with the
 * defaults in force at that moment — a count limit (Kea's default: 20
 * samples) or, when the default count is set to 0, an age limit (Kea's
 * default age: 0, so only the samples taken at the very instant of the newest
 * survive). Kea's D2Stats::init sets the default count to 0 before creating
 * its statistics, so a D2 statistic holds one sample; `declareD2Stats` does
 * the same. A reset clears the samples and records a 0.
 */
export type Sample = [number | string, string];

/**
 * Kea's four observation types (Observation::Type). A JavaScript number is both of
 * Kea's numbers, so a value's type is said, not guessed; a duration is kept in
 * microseconds and shown as Kea's durationToText does, "HH:MM:SS.ffffff".
 */
export const STAT_TYPES = ['integer', 'float', 'duration', 'string'] as const;
export type StatType = (typeof STAT_TYPES)[number];

/** Kea's InvalidStatType: a statistic set or added to with a value of another type. */
export class InvalidStatType extends Error {
  override name = 'InvalidStatType';
}

/** Kea's default max-sample-count (Observation::default_max_sample_count_). */
export const DEFAULT_MAX_SAMPLES = 20;

interface Limits {
  /** true: keep at most `count` samples; false: keep samples within `ageMs` of the newest. */
  byCount: boolean;
  count: number;
  ageMs: number;
}

class Observation {
  /** Newest first; times in microseconds since the epoch. */
  private readonly values: (number | string)[] = [];
  private readonly times: number[] = [];

  constructor(
    public limits: Limits,
    readonly type: StatType = 'integer',
    /** Samples kept whatever the limits say (Kea has no such bound; a library's statistics do). */
    private readonly maxSamples = Infinity,
  ) {}

  get value(): number {
    const v = this.values[0];
    return typeof v === 'number' ? v : 0;
  }

  get typedValue(): number | string {
    return this.values[0] ?? neutralValue(this.type);
  }

  get size(): number {
    return this.values.length;
  }

  set(value: number | string): void {
    this.values.unshift(value);
    this.times.unshift(nowMicros());
    this.trim();
  }

  clear(): void {
    this.values.length = 0;
    this.times.length = 0;
  }

  setLimits(limits: Limits): void {
    this.limits = limits;
    this.trim();
  }

  samples(): Sample[] {
    const shown = this.type === 'duration' ? (v: number | string) => durationText(v as number) : (v: number | string) => v;
    return this.values.map((v, i) => [shown(v), keaTimestamp(this.times[i]!)] as Sample);
  }

  private trim(): void {
    if (this.values.length > this.maxSamples) {
      this.values.length = this.maxSamples;
      this.times.length = this.maxSamples;
    }
    if (this.values.length <= 1) return;
    if (this.limits.byCount) {
      const max = Math.max(0, this.limits.count);
      if (this.values.length > max) {
        // Kea keeps the newest sample when a value is set even with a limit of 0.
        const keep = Math.max(max, this.values.length > 0 ? 1 : 0);
        this.values.length = keep;
        this.times.length = keep;
      }
      return;
    }
    const newest = this.times[0]!;
    const limitUs = this.limits.ageMs * 1000;
    while (this.times.length > 1 && newest - this.times[this.times.length - 1]! > limitUs) {
      this.times.pop();
      this.values.pop();
    }
  }
}

function neutralValue(type: StatType): number | string {
  return type === 'string' ? '' : 0;
}

/** Kea's durationToText: "HH:MM:SS.ffffff" (hours not cut at 24). */
export function durationText(micros: number): string {
  const sign = micros < 0 ? '-' : '';
  const us = Math.abs(Math.round(micros));
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  const seconds = Math.floor(us / 1_000_000);
  return `${sign}${pad(Math.floor(seconds / 3600))}:${pad(Math.floor(seconds / 60) % 60)}:${pad(seconds % 60)}.${pad(us % 1_000_000, 6)}`;
}

let lastMicros = 0;
/** Wall-clock microseconds, strictly increasing within the process (as a steady sample clock). */
function nowMicros(): number {
  const t = Math.round((performance.timeOrigin + performance.now()) * 1000);
  lastMicros = t > lastMicros ? t : lastMicros + 1;
  return lastMicros;
}

/** Kea's clockToText: local time with microseconds, 2026-11-26 14:10:54.123456. */
export function keaTimestamp(micros: number | Date): string {
  const us = micros instanceof Date ? micros.getTime() * 1000 : micros;
  const date = new Date(Math.floor(us / 1000));
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  const frac = ((us % 1_000_000) + 1_000_000) % 1_000_000;
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(frac, 6)}`;
}

export class StatsMgr {
  private readonly observations = new Map<string, Observation>();
  private defaults: Limits = { byCount: true, count: DEFAULT_MAX_SAMPLES, ageMs: 0 };

  /** Declares a statistic at 0 when it does not exist (Kea's D2 creates its statistics up front). */
  declare(name: string): void {
    if (!this.observations.has(name)) this.setValue(name, 0);
  }

  setValue(name: string, value: number): void {
    let obs = this.observations.get(name);
    if (!obs) {
      obs = new Observation({ ...this.defaults });
      this.observations.set(name, obs);
    }
    obs.set(value);
  }

  addValue(name: string, delta = 1): void {
    this.setValue(name, (this.observations.get(name)?.value ?? 0) + delta);
  }

  /**
   * Kea's typed setValue: creates the statistic with this type, or records a sample on
   * one of the same type (InvalidStatType otherwise). `maxSamples` bounds a new
   * statistic's samples whatever its limits are later set to.
   */
  setTyped(name: string, type: StatType, value: number | string, maxSamples = Infinity): void {
    let obs = this.observations.get(name);
    if (!obs) {
      obs = new Observation({ ...this.defaults }, type, maxSamples);
      this.observations.set(name, obs);
    } else if (obs.type !== type) {
      throw new InvalidStatType(`statistic ${name} is of type ${obs.type}, not ${type}`);
    }
    obs.set(value);
  }

  /** Kea's typed addValue: numbers add, strings append; a missing statistic starts from the value. */
  addTyped(name: string, type: StatType, value: number | string, maxSamples = Infinity): void {
    const obs = this.observations.get(name);
    if (!obs) return this.setTyped(name, type, value, maxSamples);
    if (obs.type !== type) throw new InvalidStatType(`statistic ${name} is of type ${obs.type}, not ${type}`);
    const current = obs.typedValue;
    obs.set(type === 'string' ? String(current) + String(value) : (current as number) + (value as number));
  }

  typeOf(name: string): StatType | undefined {
    return this.observations.get(name)?.type;
  }

  getValue(name: string): number | undefined {
    return this.observations.get(name)?.value;
  }

  /** How many samples a statistic holds (0 when unknown). */
  getSize(name: string): number {
    return this.observations.get(name)?.size ?? 0;
  }

  has(name: string): boolean {
    return this.observations.has(name);
  }

  names(): string[] {
    return [...this.observations.keys()];
  }

  /** statistic-get: `{name: samples}`, or `{}` when there is no such statistic. */
  get(name: string): Record<string, Sample[]> {
    const obs = this.observations.get(name);
    return obs ? { [name]: obs.samples() } : {};
  }

  getAll(): Record<string, Sample[]> {
    const all: Record<string, Sample[]> = {};
    for (const [name, obs] of this.observations) all[name] = obs.samples();
    return all;
  }

  /** statistic-reset: samples cleared, then the type's neutral value recorded (0, 0.0, 0 s or ""); false when unknown. */
  reset(name: string): boolean {
    const obs = this.observations.get(name);
    if (!obs) return false;
    obs.clear();
    obs.set(neutralValue(obs.type));
    return true;
  }

  resetAll(): void {
    for (const name of this.observations.keys()) this.reset(name);
  }

  remove(name: string): boolean {
    return this.observations.delete(name);
  }

  /**
   * Kea's setMaxSampleCountDefault: for observations created from now on, a
   * count limit; 0 switches the default to the age limit instead.
   */
  setMaxSampleCountDefault(count: number): void {
    this.defaults = count === 0 ? { ...this.defaults, byCount: false } : { ...this.defaults, byCount: true, count };
  }

  /** Kea's setMaxSampleAgeDefault (milliseconds here). */
  setMaxSampleAgeDefault(ageMs: number): void {
    this.defaults = { ...this.defaults, ageMs };
  }

  getMaxSampleCountDefault(): number {
    return this.defaults.byCount ? this.defaults.count : 0;
  }

  /** Kea's setMaxSampleCount: a count limit on one statistic (the age limit off); false when unknown. */
  setMaxSampleCount(name: string, count: number): boolean {
    const obs = this.observations.get(name);
    if (!obs) return false;
    obs.setLimits({ ...obs.limits, byCount: true, count });
    return true;
  }

  /** Kea's setMaxSampleAge: an age limit on one statistic (the count limit off); false when unknown. */
  setMaxSampleAge(name: string, ageMs: number): boolean {
    const obs = this.observations.get(name);
    if (!obs) return false;
    obs.setLimits({ ...obs.limits, byCount: false, ageMs });
    return true;
  }

  setMaxSampleCountAll(count: number): void {
    for (const name of this.observations.keys()) this.setMaxSampleCount(name, count);
  }
}
