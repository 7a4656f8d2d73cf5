/**
 * Errors of the DNS layer, as values.
 *
 * Decoders return a {@link Result}; they never throw on bad input. Builders and
 * encoders throw {@link DnsError} for invalid arguments (a programming error
 * of the caller, never data received from the network).
 */

/** What went wrong, coarse enough for callers to switch on. */
export type DnsErrorKind =
  /** Received bytes that are not a valid DNS message (or not the expected one). */
  | 'malformed'
  /** A value given to a builder or encoder is invalid. */
  | 'invalid-argument'
  /** TSIG signing or verification failed. */
  | 'tsig-error'
  /** No answer within the timeout. */
  | 'timeout'
  /** A socket error (send failed, socket closed underneath). */
  | 'io-error'
  /** The client was closed while the request was in flight. */
  | 'stopped';

export class DnsError extends Error {
  override readonly name = 'DnsError';
  constructor(
    readonly kind: DnsErrorKind,
    message: string,
  ) {
    super(message);
  }
}

export type Result<T, E = DnsError> = { ok: true; value: T } | { ok: false; error: E };

export const ok = <T>(value: T): { ok: true; value: T } => ({ ok: true, value });
export const err = <E = DnsError>(error: E): { ok: false; error: E } => ({ ok: false, error });

/** Shorthand for a `malformed` error result. */
export const malformed = (message: string): { ok: false; error: DnsError } =>
  err(new DnsError('malformed', message));
