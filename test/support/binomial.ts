/**
 * How many of n independent draws at probability p a fair sampler gives: the
 * binomial mean n·p with standard deviation σ = √(n·p·(1−p)). Tests of rates check
 * an observed count against mean ± 5σ, computed here from the configured rate alone,
 * never from the sampler under test. A correct sampler falls outside with probability
 * under one in a million (normal approximation, good once n·p and n·(1−p) are a few
 * tens), so a seeded run that passes once keeps passing, while a sampler at a wrong rate
 * (or one that ignores the rate) lands outside.
 */
import { expect } from 'vitest';

export function binomialBounds(n: number, p: number, sigmas = 5): { low: number; high: number } {
  const mean = n * p;
  const sigma = Math.sqrt(n * p * (1 - p));
  return { low: Math.max(0, mean - sigmas * sigma), high: Math.min(n, mean + sigmas * sigma) };
}

/** Fails, naming `what`, unless `observed` of `n` draws at rate `p` is within mean ± 5σ. */
export function expectBinomial(what: string, observed: number, n: number, p: number): void {
  const { low, high } = binomialBounds(n, p);
  expect(observed, `${what}: ${observed} of ${n} at rate ${p} (expected ${low.toFixed(1)}..${high.toFixed(1)})`).toBeGreaterThanOrEqual(low);
  expect(observed, `${what}: ${observed} of ${n} at rate ${p} (expected ${low.toFixed(1)}..${high.toFixed(1)})`).toBeLessThanOrEqual(high);
}
