/**
 * Pieces shared by the DhcpDdns schemas: Kea's `user-context` / `comment` pair,
 * address checks, and the messages Kea gives for them.
 */
import { parseIPv4 } from '../dns/ip-address.js';
import { z } from 'zod';
import { ipv6Bytes } from './domains.js';

export const UserContextSchema = z.record(z.string(), z.unknown());
export type UserContext = z.infer<typeof UserContextSchema>;

/** The keys every Kea map with a user context accepts. */
export const contextShape = {
  'user-context': UserContextSchema.optional(),
  comment: z.string().optional(),
};

/**
 * Kea folds `comment` into `user-context` ({"comment": ...}); both a `comment`
 * and a `user-context` holding one is an error. Returns the object with `comment`
 * removed and the merged `user-context` (absent when neither was given).
 */
export function foldComment<T extends { 'user-context'?: UserContext | undefined; comment?: string | undefined }>(
  v: T,
  ctx: z.RefinementCtx,
): Omit<T, 'comment'> {
  const { comment, ...rest } = v;
  const uc = v['user-context'];
  if (comment === undefined) return rest;
  // When both name a comment, Kea keeps `comment` if it came first and refuses the
  // pair otherwise; parseD2Config checks the order on the source document.
  void ctx;
  return { ...rest, 'user-context': { ...(uc ?? {}), comment } };
}

/** True for an IPv4 or IPv6 (optionally `%zone`) address, as Kea's IOAddress. */
export function isIpAddress(s: string): boolean {
  return parseIPv4(s) !== undefined || ipv6Bytes(s) !== undefined;
}

/** 0.0.0.0 or any spelling of "::". */
export function isUnspecifiedAddress(s: string): boolean {
  if (s === '0.0.0.0') return true;
  const b = ipv6Bytes(s);
  return b !== undefined && b.every((x) => x === 0);
}
