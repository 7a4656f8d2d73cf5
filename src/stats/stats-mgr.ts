/**
 * StatsMgr, as Kea's (src/lib/stats): named integer observations, each keeping
 * its most recent samples with timestamps, reported in Kea's statistic-get
 * shape `{ name: [[value, "YYYY-MM-DD HH:MM:SS.ffffff"], ...] }`, newest first.
 */
export type Sample = [number, string];

/** Kea's default max-sample-count. */
export const DEFAULT_MAX_SAMPLES = 20;

class Observation {
  readonly samples: Sample[] = [];
  constructor(public maxSamples: number) {}

  get value(): number {
    return this.samples[0]?.[0] ?? 0;
  }

  set(value: number): void {
    this.samples.unshift([value, keaTimestamp(new Date())]);
    if (this.samples.length > this.maxSamples) this.samples.length = this.maxSamples;
  }
}

/** Kea prints local time with microseconds: 2026-11-26 14:10:54.123000. */
export function keaTimestamp(date: Date): string {
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}000`;
}

export class StatsMgr {
  private readonly observations = new Map<string, Observation>();
  private maxSamples = DEFAULT_MAX_SAMPLES;

  /** Declares a statistic at 0 (Kea's D2 creates its statistics up front). */
  declare(name: string): void {
    if (!this.observations.has(name)) this.setValue(name, 0);
  }

  setValue(name: string, value: number): void {
    let obs = this.observations.get(name);
    if (!obs) {
      obs = new Observation(this.maxSamples);
      this.observations.set(name, obs);
    }
    obs.set(value);
  }

  addValue(name: string, delta = 1): void {
    this.setValue(name, (this.observations.get(name)?.value ?? 0) + delta);
  }

  getValue(name: string): number | undefined {
    return this.observations.get(name)?.value;
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
    return obs ? { [name]: obs.samples.map((s) => [s[0], s[1]] as Sample) } : {};
  }

  getAll(): Record<string, Sample[]> {
    const all: Record<string, Sample[]> = {};
    for (const name of this.observations.keys()) Object.assign(all, this.get(name));
    return all;
  }

  /** statistic-reset: back to 0 (a new sample); false when unknown. */
  reset(name: string): boolean {
    if (!this.observations.has(name)) return false;
    this.setValue(name, 0);
    return true;
  }

  resetAll(): void {
    for (const name of this.observations.keys()) this.setValue(name, 0);
  }

  remove(name: string): boolean {
    return this.observations.delete(name);
  }

  setMaxSampleCount(name: string, count: number): boolean {
    const obs = this.observations.get(name);
    if (!obs || count < 1) return false;
    obs.maxSamples = count;
    if (obs.samples.length > count) obs.samples.length = count;
    return true;
  }

  setMaxSampleCountAll(count: number): void {
    if (count < 1) return;
    this.maxSamples = count;
    for (const name of this.observations.keys()) this.setMaxSampleCount(name, count);
  }
}
