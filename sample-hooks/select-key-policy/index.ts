/**
 * select-key-policy: chooses the TSIG key that signs each DNS update, per DNS
 * server, from the library's parameters.
 *
 *   "parameters": {
 *     "by-server": { "127.0.0.1": "key-a", "127.0.0.1:5353": "key-b" },
 *     "default": "key-c",          // optional; null or absent keeps the server's own key
 *     "unsigned": ["10.0.0.9"],    // optional; servers that get no TSIG at all
 *     "keys": [ { "name": "key-b", "algorithm": "HMAC-SHA256", "secret": "..." } ]   // optional
 *   }
 *
 * Key names are looked up in `keys` first, then in the server's own `tsig-keys`
 * (from the configuration that d2_srv_configured hands over). A server matched by
 * "address:port" wins over one matched by address alone. A mapping to a key that
 * does not exist fails load (at configuration time), not an update.
 */
import { HOOKS_VERSION, type CalloutHandle, type LibraryHandle, type TsigKey } from 'd2box/hooks';

export const version = (): number => HOOKS_VERSION;
export const multi_threading_compatible = (): number => 1;

let byServer = new Map<string, string>();
let defaultKey: string | null = null;
let unsigned = new Set<string>();
let ownKeys = new Map<string, TsigKey>();
let serverKeys = new Map<string, TsigKey>();

export function load(handle: LibraryHandle): number {
  const mapping = handle.getParameter('by-server') ?? {};
  if (typeof mapping !== 'object' || Array.isArray(mapping)) throw new Error('"by-server" must be a map of server to key name');
  byServer = new Map(Object.entries(mapping as Record<string, unknown>).map(([server, key]) => {
    if (typeof key !== 'string') throw new Error(`"by-server"."${server}" must be a key name`);
    return [server, key];
  }));
  const fallback = handle.getParameter('default');
  if (fallback !== null && typeof fallback !== 'string') throw new Error('"default" must be a key name or null');
  defaultKey = fallback;
  const none = handle.getParameter('unsigned') ?? [];
  if (!Array.isArray(none)) throw new Error('"unsigned" must be a list of servers');
  unsigned = new Set(none.map(String));
  const keys = handle.getParameter('keys') ?? [];
  if (!Array.isArray(keys)) throw new Error('"keys" must be a list of TSIG keys');
  ownKeys = new Map((keys as TsigKey[]).map((k) => [k.name, k]));
  serverKeys = new Map();
  return 0;
}

/** Learns the server's own tsig-keys, so the mapping can name them without repeating secrets. */
export function d2_srv_configured(handle: CalloutHandle): number {
  const json = handle.getArgument<Record<string, unknown>>('json_config');
  const d2 = (json?.['DhcpDdns'] ?? json) as { 'tsig-keys'?: TsigKey[] } | undefined;
  serverKeys = new Map((d2?.['tsig-keys'] ?? []).map((k) => [k.name, k]));
  const missing = [...new Set([...byServer.values(), ...(defaultKey ? [defaultKey] : [])])].filter((name) => !findKey(name));
  if (missing.length > 0) {
    handle.setArgument('error', `select-key-policy: no TSIG key named ${missing.join(', ')}`);
    handle.setStatus(2); // DROP: the configuration is rejected
  }
  return 0;
}

export function select_key(handle: CalloutHandle): number {
  const server = handle.getArgument<{ 'ip-address': string; port: number }>('current_server');
  const address = server['ip-address'];
  const withPort = `${address}:${server.port}`;
  if (unsigned.has(withPort) || unsigned.has(address)) {
    handle.setArgument('tsig_key', null);
    return 0;
  }
  const name = byServer.get(withPort) ?? byServer.get(address) ?? defaultKey;
  if (name === null || name === undefined) return 0; // keep the key D2 chose
  const key = findKey(name);
  if (!key) return 1; // logged by the server; the update goes with the key D2 chose
  handle.setArgument('tsig_key', key);
  return 0;
}

function findKey(name: string): TsigKey | undefined {
  return ownKeys.get(name) ?? serverKeys.get(name);
}
