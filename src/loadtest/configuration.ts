/**
 * The configuration a load-test run uses, as the daemon would: a DhcpDdns file
 * (`--config`) or, without one, a generated configuration. d2_srv_configured is
 * called with it before the run, and select_key's arguments are drawn from its
 * DNS servers and keys: each server with the key D2 would sign with (the
 * server's `key-name`, else its domain's; none when neither names one).
 */
import { readFileSync } from 'node:fs';
import { parseD2Config, type D2Config } from '../config/d2-config.js';
import { effectiveKeyName } from '../config/ddns-domains.js';
import type { HookLibraryConfigInput } from '../hooks/library-config.js';

/** A key as select_key's tsig_key carries it (Kea's D2TsigKey by value). */
export interface LoadtestKey {
  name: string;
  algorithm: string;
  secret: string;
  'digest-bits'?: number;
}

/** One DNS server of the configuration, as select_key is called for it. */
export interface LoadtestServer {
  domain: string;
  direction: 'forward' | 'reverse';
  current_server: { 'ip-address': string; port: number; 'key-name'?: string };
  tsig_key: LoadtestKey | null;
}

export interface LoadtestConfiguration {
  /** The file, or "generated". */
  source: string;
  /** d2_srv_configured's json_config. */
  json: unknown;
  /** d2_srv_configured's server_config. */
  config: D2Config;
  servers: LoadtestServer[];
  keys: LoadtestKey[];
  /** The file's hooks-libraries (none for the generated one). */
  hooksLibraries: HookLibraryConfigInput[];
}

const ALGORITHMS = ['HMAC-MD5', 'HMAC-SHA1', 'HMAC-SHA224', 'HMAC-SHA256', 'HMAC-SHA384', 'HMAC-SHA512'] as const;

/**
 * Without --config: eight DNS servers (IPv4 and IPv6, several ports) in five domains,
 * signed with six keys (one per algorithm), one server unsigned. Listed in
 * docs/isolation.md and printed in every report.
 */
export const GENERATED_CONFIG = {
  DhcpDdns: {
    'ip-address': '127.0.0.1',
    port: 53001,
    'tsig-keys': ALGORITHMS.map((algorithm, i) => ({ name: `loadtest-${i}.key`, algorithm, secret: Buffer.from(`secret ${i}`).toString('base64') })),
    'forward-ddns': {
      'ddns-domains': [
        { name: 'example.com.', 'key-name': 'loadtest-0.key', 'dns-servers': [{ 'ip-address': '192.0.2.10' }, { 'ip-address': '2001:db8::11', 'key-name': 'loadtest-1.key' }] },
        { name: 'example.org.', 'key-name': 'loadtest-2.key', 'dns-servers': [{ 'ip-address': '192.0.2.12', port: 5312 }, { 'ip-address': '2001:db8::13', port: 5313 }] },
        { name: 'example.net.', 'dns-servers': [{ 'ip-address': '192.0.2.14' }] },
      ],
    },
    'reverse-ddns': {
      'ddns-domains': [
        { name: '2.0.192.in-addr.arpa.', 'key-name': 'loadtest-3.key', 'dns-servers': [{ 'ip-address': '192.0.2.15', 'key-name': 'loadtest-4.key' }] },
        { name: '8.b.d.0.1.0.0.2.ip6.arpa.', 'key-name': 'loadtest-5.key', 'dns-servers': [{ 'ip-address': '2001:db8::16', port: 5316 }, { 'ip-address': '2001:db8::17' }] },
      ],
    },
  },
};

export class LoadtestConfigurationError extends Error {
  override name = 'LoadtestConfigurationError';
}

let generated: LoadtestConfiguration | undefined;

/** The generated configuration (parsed once). */
export function generatedConfiguration(): LoadtestConfiguration {
  generated ??= fromText(JSON.stringify(GENERATED_CONFIG), 'generated');
  return generated;
}

/** A DhcpDdns file, read and checked as `d2box -t` would. */
export function configurationFromFile(file: string): LoadtestConfiguration {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new LoadtestConfigurationError(`--config ${file}: ${(err as Error).message}`);
  }
  return fromText(text, file);
}

function fromText(text: string, source: string): LoadtestConfiguration {
  const parsed = parseD2Config(text, { file: source });
  if (!parsed.ok) throw new LoadtestConfigurationError(`--config ${source}: ${parsed.error}`);
  const config = parsed.config;
  const keys: LoadtestKey[] = config['tsig-keys'].map((k) => {
    const key: LoadtestKey = { name: k.name, algorithm: k.algorithm.toUpperCase(), secret: k.secret.replace(/\s/g, '') };
    if (k['digest-bits'] > 0) key['digest-bits'] = k['digest-bits'];
    return key;
  });
  const byName = new Map(keys.map((k) => [k.name, k]));
  const servers: LoadtestServer[] = [];
  for (const direction of ['forward', 'reverse'] as const) {
    for (const domain of config[`${direction}-ddns`]['ddns-domains']) {
      for (const server of domain['dns-servers']) {
        const keyName = effectiveKeyName(domain, server);
        const current: LoadtestServer['current_server'] = { 'ip-address': server['ip-address'], port: server.port };
        if (keyName) current['key-name'] = keyName;
        servers.push({ domain: domain.name, direction, current_server: current, tsig_key: byName.get(keyName) ?? null });
      }
    }
  }
  const d2 = (parsed.json as { DhcpDdns?: { 'hooks-libraries'?: HookLibraryConfigInput[] } }).DhcpDdns ?? {};
  return { source, json: parsed.json, config, servers, keys, hooksLibraries: d2['hooks-libraries'] ?? [] };
}
