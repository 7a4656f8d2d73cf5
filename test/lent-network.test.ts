/**
 * A lent network: a library reaches the endpoints its `allow-connect` policy lists
 * through sockets the daemon opens and relays, and nothing else. In the process
 * sandbox (only its own `lo`) a listed UDP endpoint on the host's loopback answers;
 * an unlisted one is refused, and the same endpoint reached with node:dgram directly
 * is not reachable at all. In a thread the API is the same (and not a wall).
 * TCP likewise: a listed TCP echo server is reached through a relayed stream (a
 * payload larger than the bytes-in-flight bound comes back whole), an unlisted
 * one is refused and never sees a connection.
 */
import dgram from 'node:dgram';
import net from 'node:net';
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

/** A TCP server on the host's loopback echoing every byte; `received` counts connections. */
async function tcpEchoServer(): Promise<Echo> {
  let received = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    received++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    received: () => received,
    close: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}

let listed: Echo;
let unlisted: Echo;
let tcpListed: Echo;
let tcpUnlisted: Echo;

beforeAll(async () => {
  listed = await echoServer();
  unlisted = await echoServer();
  tcpListed = await tcpEchoServer();
  tcpUnlisted = await tcpEchoServer();
});

afterEach(async () => {
  if (d) expect(await d.stop()).toBe(0);
  d = undefined;
});

afterAll(async () => {
  await listed?.close();
  await unlisted?.close();
  await tcpListed?.close();
  await tcpUnlisted?.close();
  tmp.cleanup();
});

async function start(isolation: 'thread' | 'process', dnsServerGroup = false): Promise<Daemon> {
  const id = ++n;
  const socket = join(tmp.dir, `sock${id}`);
  const allow: unknown[] = [{ address: '127.0.0.1', port: listed.port, protocol: 'udp' }, { address: '127.0.0.1', port: tcpListed.port, protocol: 'tcp' }];
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

    it('reaches a listed TCP endpoint through a relayed stream; an unlisted one is refused and sees no connection', async () => {
      await start(isolation);
      const before = tcpListed.received();
      expect(await probe({ address: '127.0.0.1', port: tcpListed.port, protocol: 'tcp' })).toEqual({ reply: 'ping' });
      // More than LENT_NETWORK_LIMITS.tcpBytesInFlight (256 KiB) each way: relayed in chunks, paused and resumed by acknowledgements.
      const size = 600_000;
      expect(await probe({ address: '127.0.0.1', port: tcpListed.port, protocol: 'tcp', size })).toEqual({ replyBytes: size, intact: true });
      expect(tcpListed.received()).toBe(before + 2);
      const refused = await probe({ address: '127.0.0.1', port: tcpUnlisted.port, protocol: 'tcp' });
      expect(refused.error).toMatch(new RegExp(`tcp 127\\.0\\.0\\.1 port ${tcpUnlisted.port} is not lent to this library`));
      // The listed UDP endpoint's port does not lend TCP to it.
      expect((await probe({ address: '127.0.0.1', port: listed.port, protocol: 'tcp' })).error).toMatch(/is not lent/);
      expect(tcpUnlisted.received()).toBe(0);
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

  it('the listed TCP endpoint, tried with node:net from the sandboxed process, is not reachable', async () => {
    await start('process');
    const before = tcpListed.received();
    const direct = await probe({ address: '127.0.0.1', port: tcpListed.port, protocol: 'tcp', raw: true });
    expect(direct.reply ?? null).toBeNull();
    expect(direct.error).toMatch(/ECONNREFUSED/);
    expect(tcpListed.received()).toBe(before);
    expect(await probe({ address: '127.0.0.1', port: tcpListed.port, protocol: 'tcp' })).toEqual({ reply: 'ping' });
  });
});
