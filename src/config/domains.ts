/**
 * DNS names for D2: reverse zone naming and the forward/reverse domain match,
 * as Kea's D2CfgMgr::reverseIpAddress and DdnsDomainListMgr::matchDomain do it.
 *
 * Matching, like Kea:
 *  - a list whose only domain is `*` matches every name;
 *  - otherwise the domain with the longest name that equals the FQDN or is a
 *    suffix of it starting on a label boundary wins ("onetwo.net" is not under
 *    "two.net"); comparison is case-insensitive;
 *  - with no such domain, a `*` domain (if any) is used, else there is no match.
 * One deliberate difference: a single trailing dot is insignificant on both sides.
 * Kea compares the raw strings, so a domain written "example.com" (no dot) never
 * matches the FQDNs Kea hands it ("host.example.com."); d2box treats
 * "example.com" and "example.com." as the same zone (and the configuration
 * refuses to have both).
 */
import { parseIPv4, parseIPv6, withoutZone } from '../dns/ip-address.js';
import { Name } from '../dns/name.js';

export const IPV4_REV_ZONE_SUFFIX = 'in-addr.arpa.';
export const IPV6_REV_ZONE_SUFFIX = 'ip6.arpa.';
export const WILDCARD_DOMAIN_NAME = '*';

/** Parses an IPv6 address (with optional `%zone` and embedded IPv4) into 16 bytes. */
export function ipv6Bytes(address: string): Uint8Array | undefined {
  return parseIPv6(withoutZone(address));
}

/** `192.0.2.1` → `1.2.0.192.in-addr.arpa.` */
export function reverseV4Address(address: string): string {
  const b = parseIPv4(address);
  if (!b) throw new Error(`address is not an IPv4 address: ${address}`);
  return `${b[3]}.${b[2]}.${b[1]}.${b[0]}.${IPV4_REV_ZONE_SUFFIX}`;
}

/** `2001:db8::1` → `1.0.0.0.…8.b.d.0.1.0.0.2.ip6.arpa.` (lower-case nibbles). */
export function reverseV6Address(address: string): string {
  const b = ipv6Bytes(address);
  if (!b) throw new Error(`address is not an IPv6 address: ${address}`);
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  let out = '';
  for (let i = hex.length - 1; i >= 0; i--) out += hex[i] + '.';
  return out + IPV6_REV_ZONE_SUFFIX;
}

/** The reverse-lookup name of an IPv4 or IPv6 address; throws for anything else. */
export function reverseIpAddress(address: string): string {
  if (parseIPv4(address)) return reverseV4Address(address);
  if (ipv6Bytes(address)) return reverseV6Address(address);
  throw new Error(`cannot reverse address: ${address}`);
}

/** Lower case, one trailing dot removed (except for the root "."). */
export function normalizeDomainName(name: string): string {
  const lower = name.toLowerCase();
  return lower.length > 1 && lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

export interface NamedDomain {
  name: string;
}

/**
 * A forward or reverse domain list, ready to match. Built once per configuration;
 * `match` allocates only the lower-cased FQDN.
 */
export class DdnsDomainMatcher<D extends NamedDomain> {
  private readonly entries: { norm: string; domain: D }[];
  private readonly wildcard: D | undefined;

  constructor(readonly domains: readonly D[]) {
    this.entries = domains
      .filter((d) => d.name !== WILDCARD_DOMAIN_NAME)
      .map((d) => ({ norm: normalizeDomainName(d.name), domain: d }));
    this.wildcard = domains.find((d) => d.name === WILDCARD_DOMAIN_NAME);
  }

  /** The domain for `fqdn`, or undefined when none matches (and there is no `*`). */
  match(fqdn: string): D | undefined {
    if (this.entries.length === 0) return this.wildcard;
    const name = normalizeDomainName(fqdn);
    let best: D | undefined;
    let bestLen = -1;
    for (const { norm, domain } of this.entries) {
      const dl = norm.length;
      if (dl > name.length || dl <= bestLen) continue;
      if (dl === name.length) {
        if (name === norm) return domain;
      } else if (name.charCodeAt(name.length - dl - 1) === 0x2e /* . */ && name.endsWith(norm)) {
        best = domain;
        bestLen = dl;
      }
    }
    return best ?? this.wildcard;
  }
}

/** One-shot form of DdnsDomainMatcher.match. */
export function matchDomain<D extends NamedDomain>(domains: readonly D[], fqdn: string): D | undefined {
  return new DdnsDomainMatcher(domains).match(fqdn);
}

/**
 * Checks a DNS name as Kea's dns::Name does (used for TSIG key names): labels of
 * 1 to 63 octets, at most 255 octets in wire form, escapes `\.` and `\DDD`.
 * Returns what is wrong, or undefined when the name is valid.
 */
export function dnsNameError(name: string): string | undefined {
  const parsed = Name.parse(name);
  return parsed.ok ? undefined : parsed.error.message;
}
