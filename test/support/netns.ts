/**
 * Test helper: two throw-away network namespaces joined by a veth pair, made
 * with iproute2 (`ip netns add`, `ip link add ... type veth peer ...`), so a
 * test can run real DHCP traffic (broadcasts, raw sockets, ports 67/68) without
 * touching the machine's own network.
 *
 *   const net = await createNetnsPair();     // throws, saying why, when the machine cannot
 *   spawn(...wrapCommand(net.serverExec, 'kea-dhcp4', [...]))
 *   await net.destroy();                     // in afterAll/finally, after every process in them has stopped
 *
 * Addresses are TEST-NET-1 (192.0.2.0/24, RFC 5737) and exist only inside the
 * namespaces made here. Each namespace has its own loopback (brought up), so
 * programs inside one talk on its 127.0.0.1, out of reach of the host's.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export interface NetnsPair {
  /** Namespace names. */
  readonly server: string;
  readonly client: string;
  /** The veth ends: the server's in `server`, the client's in `client`. */
  readonly serverIf: string;
  readonly clientIf: string;
  /** 192.0.2.1 on serverIf, 192.0.2.2 on clientIf (both /24). */
  readonly serverAddress: string;
  readonly clientAddress: string;
  /** Command prefixes for wrapCommand / the helpers' `wrap` options: `ip netns exec <ns>`. */
  readonly serverExec: string[];
  readonly clientExec: string[];
  /** Deletes both namespaces (the veth pair goes with them); idempotent, never throws. */
  destroy(): Promise<void>;
}

export interface RunResult {
  code: number;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end, bounded by `timeoutMs` (then SIGKILL); never rejects. */
export function runBounded(cmd: string, args: readonly string[], timeoutMs = 10_000): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(cmd, [...args], { timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: unknown; signal?: NodeJS.Signals | null }) | null;
      const code = !e ? 0 : typeof e.code === 'number' ? e.code : 1;
      resolve({ code, signal: e?.signal ?? null, stdout, stderr: stderr + (e && typeof e.code !== 'number' ? String(e.message) : '') });
    });
  });
}

async function ip(args: string[]): Promise<void> {
  const r = await runBounded('ip', args, 10_000);
  if (r.code !== 0) throw new Error(`ip ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
}

/**
 * Makes the two namespaces and the veth pair between them, addresses them and
 * brings every link (loopbacks too) up. When the machine cannot (no iproute2,
 * not root, no CAP_SYS_ADMIN/CAP_NET_ADMIN, namespaces disabled) it throws an
 * Error saying so — callers let the test fail with it rather than skip.
 */
export async function createNetnsPair(prefix = 'd2box'): Promise<NetnsPair> {
  const tag = randomBytes(3).toString('hex');
  const server = `${prefix}-s-${process.pid}-${tag}`;
  const client = `${prefix}-c-${process.pid}-${tag}`;
  // Interface names have at most 15 characters.
  const serverIf = `d2s${tag}`;
  const clientIf = `d2c${tag}`;
  const made: string[] = [];
  const destroy = async () => {
    for (const ns of made.splice(0)) await runBounded('ip', ['netns', 'del', ns], 10_000);
  };
  try {
    for (const ns of [server, client]) {
      try {
        await ip(['netns', 'add', ns]);
      } catch (e) {
        throw new Error(`this machine cannot create network namespaces (the test needs root and iproute2's \`ip netns add\`): ${(e as Error).message}`);
      }
      made.push(ns);
    }
    try {
      await ip(['link', 'add', 'name', serverIf, 'netns', server, 'type', 'veth', 'peer', 'name', clientIf, 'netns', client]);
    } catch (e) {
      throw new Error(`this machine cannot create a veth pair between network namespaces: ${(e as Error).message}`);
    }
    await ip(['-n', server, 'link', 'set', 'lo', 'up']);
    await ip(['-n', client, 'link', 'set', 'lo', 'up']);
    await ip(['-n', server, 'addr', 'add', '192.0.2.1/24', 'dev', serverIf]);
    await ip(['-n', client, 'addr', 'add', '192.0.2.2/24', 'dev', clientIf]);
    await ip(['-n', server, 'link', 'set', serverIf, 'up']);
    await ip(['-n', client, 'link', 'set', clientIf, 'up']);
  } catch (e) {
    await destroy();
    throw e;
  }
  return {
    server,
    client,
    serverIf,
    clientIf,
    serverAddress: '192.0.2.1',
    clientAddress: '192.0.2.2',
    serverExec: ['ip', 'netns', 'exec', server],
    clientExec: ['ip', 'netns', 'exec', client],
    destroy,
  };
}

/** Names of the network namespaces that exist now (`ip netns list`), for leak checks. */
export async function listNetns(): Promise<string[]> {
  const r = await runBounded('ip', ['netns', 'list'], 10_000);
  return r.stdout.split('\n').map((l) => l.trim().split(/\s+/)[0]!).filter(Boolean);
}
