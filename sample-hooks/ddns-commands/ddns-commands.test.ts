import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CommandMgr } from '../../src/control/command-mgr.js';
import { UnixCommandSocket } from '../../src/control/unix-command-socket.js';
import { HooksManager } from '../../src/hooks/hooks-manager.js';

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
let socket: UnixCommandSocket | undefined;
let dir: string | undefined;
afterEach(async () => {
  await socket?.close();
  await hooks?.unloadLibraries();
  if (dir) rmSync(dir, { recursive: true, force: true });
  hooks = undefined;
  socket = undefined;
  dir = undefined;
});

async function load(parameters: Record<string, unknown> = {}): Promise<{ hooks: HooksManager; commands: CommandMgr }> {
  hooks = new HooksManager({ baseDir: process.cwd() });
  await hooks.loadLibraries([{ library: LIBRARY, parameters }]);
  return { hooks, commands: new CommandMgr(hooks) };
}

async function selectKey(h: HooksManager, address: string, port: number): Promise<void> {
  const handle = await h.createCalloutHandle();
  handle.setArgument('current_server', { 'ip-address': address, port }).setArgument('tsig_key', null);
  const report = await h.callCallouts('select_key', handle);
  expect(report.failures).toEqual([]);
  expect(h.nextStep('select_key', handle)).toBe(0);
  expect(handle.getArgument('tsig_key')).toBeNull();
}

/** One request over the control socket, as a Kea client (kea-shell, socat) sends it. */
function ask(path: string, request: unknown): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const client = connect(path);
    let data = '';
    client.setTimeout(10_000, () => client.destroy(new Error('no answer in 10 s')));
    client.on('data', (d) => (data += d));
    client.on('error', reject);
    client.on('close', () => {
      try {
        resolve(JSON.parse(data));
      } catch (err) {
        reject(err);
      }
    });
    client.write(JSON.stringify(request));
  });
}

describe('sample ddns-commands', () => {
  it('lists its commands in list-commands and lists TSIG keys without their secrets', async () => {
    const { hooks: h, commands } = await load();
    const list = await commands.processCommand({ command: 'list-commands' });
    expect(list.arguments).toEqual(expect.arrayContaining(['ddns-counters-get', 'ddns-counters-reset', 'ddns-keys-list', 'list-commands']));
    // Nothing configured yet: result 3, empty.
    expect(await commands.processCommand({ command: 'ddns-keys-list' })).toMatchObject({ result: 3 });
    await h.configured(CONFIG, {});
    const keys = await commands.processCommand({ command: 'ddns-keys-list' });
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
    const { hooks: h, commands } = await load();
    await selectKey(h, '192.0.2.1', 53);
    await selectKey(h, '192.0.2.1', 53);
    await selectKey(h, '2001:db8::1', 5353);
    const got = await commands.processCommand({ command: 'ddns-counters-get' });
    expect(got).toMatchObject({
      result: 0,
      text: '3 select_key callouts',
      arguments: { 'select-key': 3, servers: { '192.0.2.1:53': 2, '2001:db8::1:5353': 1 }, commands: 1 },
    });
    const one = await commands.processCommand({ command: 'ddns-counters-get', arguments: { server: '192.0.2.1:53' } });
    expect(one.arguments).toMatchObject({ servers: { '192.0.2.1:53': 2 } });
    expect(Object.keys((one.arguments as { servers: object }).servers)).toEqual(['192.0.2.1:53']);
    expect(await commands.processCommand({ command: 'ddns-counters-get', arguments: { server: 53 } })).toMatchObject({ result: 1, text: expect.stringMatching(/"server" must be a string/) });
    const reset = await commands.processCommand({ command: 'ddns-counters-reset' });
    expect(reset.arguments).toMatchObject({ 'select-key': 3, commands: 4 });
    expect((await commands.processCommand({ command: 'ddns-counters-get' })).arguments).toMatchObject({ 'select-key': 0, servers: {}, commands: 1 });
  });

  it('answers over the control channel\'s unix socket', async () => {
    const { hooks: h, commands } = await load({ commands: ['ddns-keys-list'] });
    await h.configured(CONFIG, {});
    dir = mkdtempSync(join(tmpdir(), 'd2box-cmd-'));
    const path = join(dir, 'ctrl');
    socket = new UnixCommandSocket({ path, process: (request) => commands.processCommand(request) });
    await socket.open();
    expect(await ask(path, { command: 'ddns-keys-list' })).toMatchObject({ result: 0, arguments: { keys: [{ name: 'key-a' }, { name: 'key-b' }] } });
    // Only the commands asked for are registered.
    expect(await ask(path, { command: 'ddns-counters-get' })).toMatchObject({ result: 2 });
  });

  it('refuses an unknown command name in its parameters, naming the library', async () => {
    hooks = new HooksManager({ baseDir: process.cwd() });
    await expect(hooks.loadLibraries([{ library: LIBRARY, parameters: { commands: ['ddns-nope'] } }])).rejects.toThrow(/ddns-commands.*unknown command "ddns-nope"/s);
  });
});
