// Through d2box's public entry points only, as a test of your own library would be:
// d2box/host for the hook host, and the d2box program with socat for the control channel.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { HooksManager } from 'd2box/host';
import { afterEach, describe, expect, it, vi } from 'vitest';

const LIBRARY = 'dist/sample-hooks/ddns-commands/index.js';
const SECRET_A = 'a2V5LWEtc2VjcmV0LXZhbHVl';
const SECRET_B = 'a2V5LWItc2VjcmV0LXZhbHVl';
const CONFIG = {
  DhcpDdns: {
    'tsig-keys': [
      { name: 'key-a', algorithm: 'HMAC-SHA256', secret: SECRET_A },
      { name: 'key-b', algorithm: 'HMAC-SHA512', secret: SECRET_B, 'digest-bits': 256 },
    ],
    'forward-ddns': { 'ddns-domains': [{ name: 'example.com.', 'key-name': 'key-a', 'dns-servers': [] }] },
    'reverse-ddns': { 'ddns-domains': [{ name: '2.0.192.in-addr.arpa.', 'key-name': 'KEY-A', 'dns-servers': [] }] },
  },
};

let hooks: HooksManager | undefined;
let daemon: ChildProcess | undefined;
let dir: string | undefined;
afterEach(async () => {
  await hooks?.unloadLibraries();
  if (daemon && daemon.exitCode === null && daemon.signalCode === null) {
    const exited = new Promise((r) => daemon!.once('exit', r));
    daemon.kill('SIGTERM');
    const kill = setTimeout(() => daemon!.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(kill);
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
  hooks = undefined;
  daemon = undefined;
  dir = undefined;
});

async function load(parameters: Record<string, unknown> = {}): Promise<HooksManager> {
  hooks = new HooksManager({ baseDir: process.cwd() });
  await hooks.loadLibraries([{ library: LIBRARY, parameters }]);
  return hooks;
}

async function selectKey(h: HooksManager, address: string, port: number): Promise<void> {
  const handle = await h.createCalloutHandle();
  handle.setArgument('current_server', { 'ip-address': address, port }).setArgument('tsig_key', null);
  const report = await h.callCallouts('select_key', handle);
  expect(report.failures).toEqual([]);
  expect(h.nextStep('select_key', handle)).toBe(0);
  expect(handle.getArgument('tsig_key')).toBeNull();
}

/** One request as the docs send it: `echo REQUEST | socat - UNIX-CONNECT:PATH` (socat half-closes after it). */
function ask(path: string, request: unknown): unknown {
  const run = spawnSync('socat', ['-', `UNIX-CONNECT:${path}`], { input: JSON.stringify(request) + '\n', encoding: 'utf8', timeout: 10_000 });
  if (run.status !== 0) throw new Error(`socat: ${run.status} ${run.stderr}`);
  return JSON.parse(run.stdout);
}

/** A free UDP port on loopback for the daemon's NCR listener. */
async function freeUdpPort(): Promise<number> {
  const probe = createSocket('udp4');
  await new Promise<void>((r) => probe.bind(0, '127.0.0.1', () => r()));
  const { port } = probe.address();
  await new Promise<void>((r) => probe.close(() => r()));
  return port;
}

describe('sample ddns-commands', () => {
  it('registers its commands and lists TSIG keys without their secrets', async () => {
    const h = await load();
    expect(h.getCommandNames()).toEqual(['ddns-counters-get', 'ddns-counters-reset', 'ddns-keys-list']);
    // Nothing configured yet: result 3, empty.
    expect(await h.callCommandHandlers('ddns-keys-list')).toMatchObject({ result: 3 });
    await h.configured(CONFIG, {});
    const keys = await h.callCommandHandlers('ddns-keys-list');
    expect(keys).toEqual({
      result: 0,
      text: '2 TSIG keys',
      arguments: {
        keys: [
          { name: 'key-a', algorithm: 'HMAC-SHA256', 'digest-bits': 0, domains: ['example.com.', '2.0.192.in-addr.arpa.'] },
          { name: 'key-b', algorithm: 'HMAC-SHA512', 'digest-bits': 256, domains: [] },
        ],
      },
    });
    expect(JSON.stringify(keys)).not.toContain(SECRET_A);
    expect(JSON.stringify(keys)).not.toContain(SECRET_B);
  });

  it('counts select_key callouts per server and the commands it answered; reset answers the old values', async () => {
    const h = await load();
    await selectKey(h, '192.0.2.1', 53);
    await selectKey(h, '192.0.2.1', 53);
    await selectKey(h, '2001:db8::1', 5353);
    const got = await h.callCommandHandlers('ddns-counters-get');
    expect(got).toMatchObject({
      result: 0,
      text: '3 select_key callouts',
      arguments: { 'select-key': 3, servers: { '192.0.2.1:53': 2, '2001:db8::1:5353': 1 }, commands: 1 },
    });
    const one = await h.callCommandHandlers('ddns-counters-get', { server: '192.0.2.1:53' });
    expect(one.arguments).toMatchObject({ servers: { '192.0.2.1:53': 2 } });
    expect(Object.keys((one.arguments as { servers: object }).servers)).toEqual(['192.0.2.1:53']);
    expect(await h.callCommandHandlers('ddns-counters-get', { server: 53 })).toMatchObject({ result: 1, text: expect.stringMatching(/"server" must be a string/) });
    const reset = await h.callCommandHandlers('ddns-counters-reset');
    expect(reset.arguments).toMatchObject({ 'select-key': 3, commands: 4 });
    expect((await h.callCommandHandlers('ddns-counters-get')).arguments).toMatchObject({ 'select-key': 0, servers: {}, commands: 1 });
  });

  it('answers over the control channel\'s unix socket, in the d2box daemon', async () => {
    dir = mkdtempSync(join(tmpdir(), 'd2box-cmd-'));
    const path = join(dir, 'ctrl');
    const config = join(dir, 'kea-dhcp-ddns.conf');
    // The daemon wants a DNS server in each domain (nothing is sent to it here) and, as Kea,
    // key names spelled as defined.
    const domains = (list: { name: string; 'key-name': string }[]) => ({
      'ddns-domains': list.map((d) => ({ name: d.name, 'key-name': d['key-name'].toLowerCase(), 'dns-servers': [{ 'ip-address': '127.0.0.1' }] })),
    });
    const d2 = {
      'ip-address': '127.0.0.1',
      port: await freeUdpPort(),
      'control-socket': { 'socket-type': 'unix', 'socket-name': path },
      'tsig-keys': CONFIG.DhcpDdns['tsig-keys'],
      'forward-ddns': domains(CONFIG.DhcpDdns['forward-ddns']['ddns-domains']),
      'reverse-ddns': domains(CONFIG.DhcpDdns['reverse-ddns']['ddns-domains']),
      'hooks-libraries': [{ library: resolve(LIBRARY), parameters: { commands: ['ddns-keys-list', 'ddns-counters-get'] } }],
    };
    writeFileSync(config, JSON.stringify({ DhcpDdns: d2 }));
    daemon = spawn(process.execPath, ['dist/src/cli.js', '-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    daemon.stderr!.on('data', (d) => (stderr += d));
    // Bounded: the daemon loads the library in its worker first (a shared machine may be slow).
    await vi.waitFor(() => {
      expect(daemon!.exitCode, stderr).toBeNull();
      expect(ask(path, { command: 'status-get' })).toMatchObject({ result: 0 });
    }, { timeout: 20_000, interval: 100 });
    expect(ask(path, { command: 'ddns-keys-list' })).toMatchObject({ result: 0, arguments: { keys: [{ name: 'key-a' }, { name: 'key-b' }] } });
    for (let i = 0; i < 5; i++) expect(ask(path, { command: 'ddns-counters-get' })).toMatchObject({ result: 0, arguments: { 'select-key': 0 } });
    // Only the commands asked for are registered.
    expect(ask(path, { command: 'ddns-counters-reset' })).toMatchObject({ result: 2 });
  });

  it('refuses an unknown command name in its parameters, naming the library', async () => {
    hooks = new HooksManager({ baseDir: process.cwd() });
    await expect(hooks.loadLibraries([{ library: LIBRARY, parameters: { commands: ['ddns-nope'] } }])).rejects.toThrow(/ddns-commands.*unknown command "ddns-nope"/s);
  });
});
