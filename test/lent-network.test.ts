/**
 * A lent network: a library reaches the endpoints its `allow-connect` policy lists
 * through sockets the daemon opens and relays, and nothing else. In the process
 * sandbox (only its own `lo`) a listed UDP endpoint on the host's loopback answers;
 * an unlisted one is refused, and the same endpoint reached with node:dgram directly
 * is not reachable at all. In a thread the API is the same (and not a wall).
 */
import dgram from 'node:dgram';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from './support/bind9.js';
import { Daemon, tempDir, writeJson } from './control-daemon.js';

const LIBRARY = resolve('test/fixtures/lent-network.mjs');
const tmp = tempDir('d2box-lent-net-');
let d: Daemon | undefined;
let n = 0;

interface Echo {
  port: number;
  received: () => number;
  close: () => Promise<void>;
}

/** A UDP server on the host's loopback answering "echo:" + what it got. */
async function echoServer(): Promise<Echo> {
  const socket = dgram.createSocket('udp4');
  let received = 0;
  socket.on('message', (data, rinfo) => {
    received++;
    socket.send(`echo:${data.toString()}`, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
  return { port: socket.address().port, received: () => received, close: () => new Promise<void>((r) => socket.close(() => r())) };
}

let listed: Echo;
let unlisted: Echo;

beforeAll(async () => {
  listed = await echoServer();
  unlisted = await echoServer();
});

afterEach(async () => {
  if (d) expect(await d.stop()).toBe(0);
  d = undefined;
});

afterAll(async () => {
  await listed?.close();
  await unlisted?.close();
  tmp.cleanup();
});

async function start(isolation: 'thread' | 'process', dnsServerGroup = false): Promise<Daemon> {
  const id = ++n;
  const socket = join(tmp.dir, `sock${id}`);
  const allow: unknown[] = [{ address: '127.0.0.1', port: listed.port, protocol: 'udp' }];
  if (dnsServerGroup) allow.push({ group: 'dns-servers', protocol: 'udp' });
  const file = writeJson(join(tmp.dir, `c${id}.json`), {
    DhcpDdns: {
      'ip-address': '127.0.0.1',
      port: await freePort(),
      'control-socket': { 'socket-type': 'unix', 'socket-name': socket },
      // The "unlisted" echo server is this configuration's DNS server: lent only through the dns-servers group.
      'forward-ddns': { 'ddns-domains': [{ name: 'example.com.', 'dns-servers': [{ 'ip-address': '127.0.0.1', port: unlisted.port }] }] },
      'hooks-libraries': [{
        library: LIBRARY,
        // Generous: the probe itself waits up to 1.5 s for an answer.
        sandbox: { isolation, 'callout-timeout-ms': 10_000, 'allow-connect': allow },
      }],
    },
  });
  d = new Daemon(file, socket);
  await d.ready();
  return d;
}

async function probe(args: Record<string, unknown>): Promise<{ reply?: string | null; error?: string }> {
  const a = await d!.command('net-probe', args);
  expect(a.result).toBe(0);
  return a.arguments;
}

for (const isolation of ['thread', 'process'] as const) {
  describe(`a lent network, ${isolation} mode`, () => {
    it('reaches a listed UDP endpoint through the lent socket; an unlisted one is refused and gets nothing', async () => {
      await start(isolation);
      const before = listed.received();
      expect(await probe({ address: '127.0.0.1', port: listed.port })).toEqual({ reply: 'echo:ping' });
      expect(listed.received()).toBe(before + 1);
      const refused = await probe({ address: '127.0.0.1', port: unlisted.port });
      expect(refused.error).toMatch(new RegExp(`udp 127\\.0\\.0\\.1 port ${unlisted.port} is not lent to this library`));
      expect((await probe({ address: '127.0.0.2', port: listed.port })).error).toMatch(/is not lent/);
      // The control socket is no endpoint it can name.
      expect((await probe({ address: d!.socketPath, port: 1 })).error).toMatch(/is not lent/);
      expect(unlisted.received()).toBe(0);
    });
  });
}

describe('a lent network is the only way out of the sandbox', () => {
  it('"group": "dns-servers" lends the configuration\'s DNS servers', async () => {
    await start('process', true);
    const before = unlisted.received();
    expect(await probe({ address: '127.0.0.1', port: unlisted.port })).toEqual({ reply: 'echo:ping' });
    expect(unlisted.received()).toBe(before + 1);
  });

  it('the listed endpoint itself, tried with node:dgram from the sandboxed process, is not reachable', async () => {
    await start('process');
    const before = listed.received();
    const direct = await probe({ address: '127.0.0.1', port: listed.port, raw: true });
    expect(direct.reply ?? null).toBeNull();
    expect(listed.received()).toBe(before);
    // And through the lent socket it is, in the same process.
    expect(await probe({ address: '127.0.0.1', port: listed.port })).toEqual({ reply: 'echo:ping' });
  });
});
