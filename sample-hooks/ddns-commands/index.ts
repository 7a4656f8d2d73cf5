/**
 * ddns-commands: control commands served by a hook library, end to end
 * (registerCommandCallout; Kea routes a command it does not handle itself to
 * the libraries that registered it, and list-commands shows it).
 *
 *   ddns-keys-list        the configured TSIG keys: name, algorithm, digest-bits and the
 *                         domains that use each; never the secrets. Result 3 (empty) when none.
 *   ddns-counters-get     what this library counted: select_key callouts (per DNS server
 *                         "address:port") and commands; optional argument "server" narrows
 *                         the per-server counts to one server.
 *   ddns-counters-reset   zeroes the counters, answering the values they had.
 *
 * The counters live in the library's worker: they start again at zero when the
 * worker is replaced (after a timeout or a crash), which `worker-started` shows.
 *
 *   "parameters": { "commands": ["ddns-keys-list", "ddns-counters-get", "ddns-counters-reset"] }   // optional
 */
import { threadId } from 'node:worker_threads';
import { HOOKS_VERSION, type CalloutHandle, type CommandResponse, type LibraryHandle } from 'd2box/hooks';

export const version = (): number => HOOKS_VERSION;
export const multi_threading_compatible = (): number => 1;

const COMMANDS = {
  'ddns-keys-list': keysList,
  'ddns-counters-get': countersGet,
  'ddns-counters-reset': countersReset,
} as const;
type CommandName = keyof typeof COMMANDS;

interface KeyInfo {
  name: string;
  algorithm: string;
  'digest-bits': number;
  domains: string[];
}

let keys: KeyInfo[] = [];
let selectKeyCalls = 0;
let byServer = new Map<string, number>();
let commandsAnswered = 0;
let since = new Date().toISOString();
const workerStarted = new Date().toISOString();

export function load(handle: LibraryHandle): number {
  const wanted = handle.getParameter('commands') ?? Object.keys(COMMANDS);
  if (!Array.isArray(wanted)) throw new Error('"commands" must be a list of command names');
  for (const name of wanted) {
    if (!Object.hasOwn(COMMANDS, name)) throw new Error(`unknown command "${String(name)}" (one of ${Object.keys(COMMANDS).join(', ')})`);
    const answer = COMMANDS[name as CommandName];
    handle.registerCommandCallout(name as string, (h) => {
      commandsAnswered++;
      const command = h.getArgument<{ command: string; arguments?: unknown }>('command');
      h.setArgument('response', answer(command.arguments));
      return 0;
    });
  }
  return 0;
}

/** Learns the TSIG keys, and which domains use each, from the configuration. */
export function d2_srv_configured(handle: CalloutHandle): number {
  const json = handle.getArgument<Record<string, unknown>>('json_config');
  type Domain = { name: string; 'key-name'?: string };
  const d2 = (json?.['DhcpDdns'] ?? {}) as {
    'tsig-keys'?: { name: string; algorithm: string; 'digest-bits'?: number }[];
    'forward-ddns'?: { 'ddns-domains'?: Domain[] };
    'reverse-ddns'?: { 'ddns-domains'?: Domain[] };
  };
  const domains = [...(d2['forward-ddns']?.['ddns-domains'] ?? []), ...(d2['reverse-ddns']?.['ddns-domains'] ?? [])];
  keys = (d2['tsig-keys'] ?? []).map((k) => ({
    name: k.name,
    algorithm: k.algorithm,
    'digest-bits': k['digest-bits'] ?? 0,
    domains: domains.filter((d) => d['key-name'] !== undefined && d['key-name'].toLowerCase() === k.name.toLowerCase()).map((d) => d.name),
  }));
  return 0;
}

/** Counts; never changes the key or the status. */
export function select_key(handle: CalloutHandle): number {
  const server = handle.getArgument<{ 'ip-address': string; port: number }>('current_server');
  const where = `${server['ip-address']}:${server.port}`;
  selectKeyCalls++;
  byServer.set(where, (byServer.get(where) ?? 0) + 1);
  return 0;
}

function keysList(): CommandResponse {
  if (keys.length === 0) return { result: 3, text: 'no TSIG keys are configured' };
  return { result: 0, text: `${keys.length} TSIG key${keys.length === 1 ? '' : 's'}`, arguments: { keys } };
}

function counters(server: string | undefined) {
  const servers = Object.fromEntries([...byServer].filter(([s]) => server === undefined || s === server).sort(([a], [b]) => a.localeCompare(b)));
  return {
    'select-key': selectKeyCalls,
    servers,
    commands: commandsAnswered,
    since,
    'worker-started': workerStarted,
    'worker-thread': threadId,
  };
}

function countersGet(args: unknown): CommandResponse {
  let server: string | undefined;
  if (args !== undefined && args !== null) {
    if (typeof args !== 'object' || Array.isArray(args)) return { result: 1, text: 'arguments must be a map' };
    const s = (args as Record<string, unknown>)['server'];
    if (s !== undefined && typeof s !== 'string') return { result: 1, text: '"server" must be a string "address:port"' };
    server = s;
  }
  return { result: 0, text: `${selectKeyCalls} select_key callouts`, arguments: counters(server) };
}

function countersReset(): CommandResponse {
  const before = counters(undefined);
  selectKeyCalls = 0;
  byServer = new Map();
  commandsAnswered = 0;
  since = new Date().toISOString();
  return { result: 0, text: 'counters reset', arguments: before };
}
