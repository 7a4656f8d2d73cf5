/**
 * `forward-ddns` / `reverse-ddns`: Kea's DdnsDomainListMgr, DdnsDomain and
 * DnsServerInfo. Key references are checked against `tsig-keys` by d2-config.ts.
 */
import { z } from 'zod';
import { contextShape, foldComment, isIpAddress } from './common.js';

const portSchema = z.int().refine((p) => p > 0 && p < 65536, 'port must be greater than zero but less than 65536');

export const DnsServerSchema = z
  .object({
    hostname: z.string().refine((h) => h === '', 'hostname is not yet supported').default(''),
    'ip-address': z.string(),
    port: portSchema.default(53),
    'key-name': z.string().default(''),
    ...contextShape,
  })
  .strict()
  .transform((s, ctx) => {
    if (s['ip-address'] === '') {
      ctx.addIssue({ code: 'custom', message: 'Dns Server must specify one or the other of hostname or IP address', path: [] }); // Kea: at the server's map
    } else if (!isIpAddress(s['ip-address'])) {
      ctx.addIssue({ code: 'custom', message: `Dns Server : invalid IP address : ${s['ip-address']}`, path: ['ip-address'] });
    }
    return foldComment(s, ctx);
  });
export type DnsServerConfig = z.output<typeof DnsServerSchema>;

export const DdnsDomainSchema = z
  .object({
    name: z.string().min(1, 'Ddns domain name cannot be blank'),
    'key-name': z.string().default(''),
    // Kea 2.2 dereferences a missing list and aborts; an empty one is a syntax error.
    'dns-servers': z.array(DnsServerSchema, { error: (iss) => (iss.input === undefined ? 'DdnsDomain : missing dns-servers list' : undefined) })
      .min(1, 'DNS server list cannot be empty'),
    ...contextShape,
  })
  .strict()
  .transform((d, ctx) => foldComment(d, ctx));
export type DdnsDomainConfig = z.output<typeof DdnsDomainSchema>;

export const DdnsDomainListMgrSchema = z
  .object({
    'ddns-domains': z.array(DdnsDomainSchema).default([]),
  })
  .strict();
export type DdnsDomainListMgrConfig = z.output<typeof DdnsDomainListMgrSchema>;

/** The key a server signs with: its own `key-name`, else its domain's; "" for none. */
export function effectiveKeyName(domain: Pick<DdnsDomainConfig, 'key-name'>, server: Pick<DnsServerConfig, 'key-name'>): string {
  return server['key-name'] !== '' ? server['key-name'] : domain['key-name'];
}
