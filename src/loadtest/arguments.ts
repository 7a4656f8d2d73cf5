/**
 * Generated callout arguments for the load tester: for each hook point, values
 * its schema accepts (server-hooks.ts), drawn from a seeded generator so a run
 * is reproducible. Every handle also carries `loadtest_seq`, the callout's
 * number, an argument no hook point declares: the fault-injection sample
 * draws its fault from it.
 */
import { parseD2Config, type D2Config } from '../config/d2-config.js';
import type { CalloutHandle } from '../hooks/callout-handle.js';
import type { IOService } from '../hooks/io-service.js';
import { ServerHooks } from '../hooks/server-hooks.js';

export type ArgumentFiller = (handle: CalloutHandle, seq: number) => void;

/** mulberry32: a small seeded generator, good enough to vary arguments. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ALGORITHMS = ['HMAC-MD5', 'HMAC-SHA1', 'HMAC-SHA224', 'HMAC-SHA256', 'HMAC-SHA384', 'HMAC-SHA512'] as const;

/** The configuration d2_srv_configured is called with: a small but complete DhcpDdns. */
export const LOADTEST_CONFIG = {
  DhcpDdns: {
    'ip-address': '127.0.0.1',
    port: 53001,
    'tsig-keys': [
      { name: 'loadtest-a.key', algorithm: 'HMAC-SHA256', secret: 'bG9hZHRlc3QtYQ==' },
      { name: 'loadtest-b.key', algorithm: 'HMAC-SHA512', secret: 'bG9hZHRlc3QtYg==' },
    ],
    'forward-ddns': {
      'ddns-domains': [
        { name: 'example.com.', 'key-name': 'loadtest-a.key', 'dns-servers': [{ 'ip-address': '192.0.2.53' }] },
        { name: 'example.org.', 'key-name': 'loadtest-b.key', 'dns-servers': [{ 'ip-address': '2001:db8::53', port: 5353 }] },
      ],
    },
    'reverse-ddns': {
      'ddns-domains': [{ name: '2.0.192.in-addr.arpa.', 'key-name': 'loadtest-a.key', 'dns-servers': [{ 'ip-address': '192.0.2.53' }] }],
    },
  },
};

let parsedConfig: D2Config | undefined;
function loadtestServerConfig(): D2Config {
  if (!parsedConfig) {
    const parsed = parseD2Config(JSON.stringify(LOADTEST_CONFIG), { file: 'loadtest', baseDir: process.cwd() });
    if (!parsed.ok) throw new Error(`the load tester's own configuration does not parse: ${parsed.error}`);
    parsedConfig = parsed.config;
  }
  return parsedConfig;
}

/**
 * A filler for `hook`: sets the arguments the hook point declares, with values
 * its schema accepts, and `loadtest_seq`. Throws for a hook point d2box does not have.
 */
export function argumentFiller(hook: string, seed: number, io: IOService): ArgumentFiller {
  const random = seededRandom(seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  if (ServerHooks.isCommandHook(hook)) {
    const command = ServerHooks.hookToCommandName(hook);
    return (h, seq) => {
      h.setArgument('loadtest_seq', seq).setArgument('command', { command, arguments: { 'loadtest-seq': seq } });
    };
  }
  switch (hook) {
    case 'select_key': {
      const servers = Array.from({ length: 8 }, (_, i) => ({
        'ip-address': i % 2 === 0 ? `192.0.2.${10 + i}` : `2001:db8::${(10 + i).toString(16)}`,
        port: i < 6 ? 53 : 5300 + i,
        'key-name': `loadtest-${i % 3}.key`,
      }));
      const keys = [
        null,
        ...ALGORITHMS.map((algorithm, i) => ({ name: `loadtest-${i}.key`, algorithm, secret: Buffer.from(`secret ${i}`).toString('base64') })),
      ];
      return (h, seq) => {
        h.setArgument('loadtest_seq', seq).setArgument('current_server', pick(servers)).setArgument('tsig_key', pick(keys));
      };
    }
    case 'd2_srv_configured': {
      const serverConfig = loadtestServerConfig();
      return (h, seq) => {
        h.setArgument('loadtest_seq', seq)
          .setArgument('io_context', io)
          .setArgument('json_config', LOADTEST_CONFIG)
          .setArgument('server_config', serverConfig)
          .setArgument('error', '');
      };
    }
    case 'command_processed': {
      const commands = ['list-commands', 'status-get', 'config-get', 'statistic-get-all', 'version-get'];
      return (h, seq) => {
        const name = pick(commands);
        h.setArgument('loadtest_seq', seq)
          .setArgument('name', name)
          .setArgument('arguments', {})
          .setArgument('response', { result: 0, text: `${name} done` });
      };
    }
    case 'context_create':
    case 'context_destroy':
      return (h, seq) => {
        h.setArgument('loadtest_seq', seq);
      };
    default:
      throw new Error(`no such hook point: '${hook}' (one of ${new ServerHooks().getHookNames().join(', ')}, or $command)`);
  }
}
