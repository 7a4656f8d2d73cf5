/**
 * Generated callout arguments for the load tester: for each hook point, values
 * its schema accepts (server-hooks.ts), drawn from a seeded generator so a run
 * is reproducible. Every handle also carries `loadtest_seq`, the callout's
 * number, an argument no hook point declares: the fault-injection sample
 * draws its fault from it.
 */
import type { CalloutHandle } from '../hooks/callout-handle.js';
import type { IOService } from '../hooks/io-service.js';
import { ServerHooks } from '../hooks/server-hooks.js';
import { generatedConfiguration, type LoadtestConfiguration } from './configuration.js';

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

/**
 * A filler for `hook`: sets the arguments the hook point declares, with values
 * its schema accepts, drawn from `configuration` where the daemon would take them
 * from its own, and `loadtest_seq`. Throws for a hook point d2box does not have, and
 * for select_key when the configuration has no DNS server.
 */
export function argumentFiller(hook: string, seed: number, io: IOService, configuration: LoadtestConfiguration = generatedConfiguration()): ArgumentFiller {
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
      const servers = configuration.servers;
      if (servers.length === 0) throw new Error(`select_key: the configuration (${configuration.source}) has no DNS servers to draw current_server from`);
      return (h, seq) => {
        const server = pick(servers);
        // A copy each time: the handle is the library's to change.
        h.setArgument('loadtest_seq', seq)
          .setArgument('current_server', { ...server.current_server })
          .setArgument('tsig_key', server.tsig_key && { ...server.tsig_key });
      };
    }
    case 'd2_srv_configured': {
      return (h, seq) => {
        h.setArgument('loadtest_seq', seq)
          .setArgument('io_context', io)
          .setArgument('json_config', configuration.json)
          .setArgument('server_config', configuration.config)
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
