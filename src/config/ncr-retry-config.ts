/**
 * d2box's `d2box-retry-*` keys of `DhcpDdns`: how an NCR whose transaction
 * failed because no DNS server answered is tried again (src/d2/ncr-retry-mgr.ts).
 *
 * Kea has no such keys, so they are optional in the schema and their defaults
 * are applied here, not by the parser: `config-get` and `config-write` of a
 * configuration that does not use them stay Kea's.
 *
 * The defaults ride out a DNS server restart or a fail-over of a few minutes:
 * 1 s, 2 s, 4 s ... at most 30 s apart, for up to 10 minutes after the first
 * failure; at most 8192 NCRs (and 8 MiB of them) waiting.
 */
import { z } from 'zod';

export interface NcrRetryPolicy {
  /** Retry NCRs no server answered (false: Kea's behaviour, they end failed). */
  enabled: boolean;
  firstDelayMs: number;
  factor: number;
  maxDelayMs: number;
  /** Counted from the NCR's first failure; past it the NCR is given up. */
  maxAgeMs: number;
  /** Bounds on the NCRs waiting for their next attempt: past either, the oldest is given up. */
  maxWaiting: number;
  maxWaitingBytes: number;
}

export const NCR_RETRY_DEFAULTS: NcrRetryPolicy = {
  enabled: true,
  firstDelayMs: 1_000,
  factor: 2,
  maxDelayMs: 30_000,
  maxAgeMs: 600_000,
  maxWaiting: 8_192,
  maxWaitingBytes: 8 * 1024 * 1024,
};

const MAX_INT = 2 ** 31 - 1;
const positiveInt = (key: string) =>
  z.int().refine((v) => v > 0 && v <= MAX_INT, `${key} must be greater than zero and at most ${MAX_INT}`).optional();

/** Spread into DhcpDdnsSchema's shape. */
export const ncrRetryShape = {
  'd2box-retry-unanswered': z.boolean().optional(),
  'd2box-retry-first-delay-ms': positiveInt('d2box-retry-first-delay-ms'),
  'd2box-retry-backoff-factor': z.number().refine((v) => v >= 1 && v <= 100, 'd2box-retry-backoff-factor must be between 1 and 100').optional(),
  'd2box-retry-max-delay-ms': positiveInt('d2box-retry-max-delay-ms'),
  'd2box-retry-max-age-ms': positiveInt('d2box-retry-max-age-ms'),
  'd2box-retry-max-waiting': positiveInt('d2box-retry-max-waiting'),
  'd2box-retry-max-waiting-bytes': positiveInt('d2box-retry-max-waiting-bytes'),
};

type RetryKeys = { [K in keyof typeof ncrRetryShape]?: z.output<(typeof ncrRetryShape)[K]> };

/** The policy a parsed `DhcpDdns` asks for, defaults filled in. */
export function ncrRetryPolicy(config: RetryKeys): NcrRetryPolicy {
  const d = NCR_RETRY_DEFAULTS;
  const first = config['d2box-retry-first-delay-ms'] ?? d.firstDelayMs;
  return {
    enabled: config['d2box-retry-unanswered'] ?? d.enabled,
    firstDelayMs: first,
    factor: config['d2box-retry-backoff-factor'] ?? d.factor,
    // A cap below the first delay would make the first delay the cap.
    maxDelayMs: Math.max(first, config['d2box-retry-max-delay-ms'] ?? d.maxDelayMs),
    maxAgeMs: config['d2box-retry-max-age-ms'] ?? d.maxAgeMs,
    maxWaiting: config['d2box-retry-max-waiting'] ?? d.maxWaiting,
    maxWaitingBytes: config['d2box-retry-max-waiting-bytes'] ?? d.maxWaitingBytes,
  };
}
