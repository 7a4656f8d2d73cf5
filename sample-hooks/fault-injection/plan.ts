/**
 * The fault-injection library's dice, with no imports so that the load tester
 * (main thread) and the library (its worker) draw the same numbers: the fault
 * for callout number `n` of stream `stream` is a pure function of the seed and
 * the rates.
 */

/** Every misbehaviour the library can inject, in the order the dice are read. */
export const FAULTS = [
  'throw', // the callout throws
  'reject', // the async callout rejects
  'non-zero', // the callout returns 1 (only logged and counted by the host)
  'hang', // an infinite loop (bounded by spin-ms), until the host's deadline terminates the worker
  'oom', // allocates until the worker's heap limit
  'exit', // process.exit(exit-code)
  'timer-throw', // returns 0, then throws from a timer a little later (an uncaught exception)
  'invalid-argument', // sets an argument the hook point's schema refuses
  'log-flood', // logs log-lines lines in one go
  'slow', // waits slow-ms, then behaves
] as const;
export type Fault = (typeof FAULTS)[number];

/** Rates by fault, each in [0, 1]; their sum must not exceed 1 (the rest is "ok"). */
export type FaultRates = Partial<Record<Fault, number>>;

/** The cumulative table drawFault reads; throws a readable error on bad rates. */
export function faultTable(rates: unknown): [Fault, number][] {
  if (rates === null || typeof rates !== 'object' || Array.isArray(rates)) throw new Error('"faults" must be a map of fault to rate');
  const table: [Fault, number][] = [];
  let sum = 0;
  for (const [name, rate] of Object.entries(rates as Record<string, unknown>)) {
    if (!(FAULTS as readonly string[]).includes(name)) throw new Error(`unknown fault "${name}" (one of ${FAULTS.join(', ')})`);
    if (typeof rate !== 'number' || !(rate >= 0 && rate <= 1)) throw new Error(`rate of "${name}" must be a number from 0 to 1`);
  }
  for (const fault of FAULTS) {
    const rate = (rates as Record<string, number>)[fault];
    if (!rate) continue;
    sum += rate;
    table.push([fault, sum]);
  }
  if (sum > 1 + 1e-9) throw new Error(`the rates add up to ${sum}, more than 1`);
  return table;
}

/** A 32-bit integer hash of (seed, stream, n): murmur3's finalizer over a mix of the three. */
export function hash32(seed: number, stream: number, n: number): number {
  let h = (seed | 0) ^ Math.imul(stream | 0, 0x9e3779b1) ^ Math.imul((n | 0) + 0x7f4a7c15, 0x85ebca6b);
  h ^= Math.floor(n / 0x100000000) | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The fault for callout `n` of `stream`, or 'ok'. */
export function drawFault(seed: number, stream: number, n: number, table: readonly [Fault, number][]): Fault | 'ok' {
  if (table.length === 0) return 'ok';
  const u = hash32(seed, stream, n) / 0x100000000;
  for (const [fault, upTo] of table) if (u < upTo) return fault;
  return 'ok';
}

/** How many of callouts first..first+count-1 (stream 0) draw each fault: what a load test should see injected. */
export function planFaults(seed: number, rates: FaultRates, count: number, first = 1): Record<Fault | 'ok', number> {
  const table = faultTable(rates);
  const plan = Object.fromEntries([...FAULTS, 'ok'].map((f) => [f, 0])) as Record<Fault | 'ok', number>;
  for (let n = first; n < first + count; n++) plan[drawFault(seed, 0, n, table)]++;
  return plan;
}
