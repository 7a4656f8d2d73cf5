/**
 * Kea's own client against d2box: Debian's kea-ctrl-agent (Kea 2.2) on a
 * loopback high port, configured with d2box's socket as its `d2` service,
 * forwards commands sent over HTTP with "service": ["d2"].
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from './support/bind9.js';
import { Daemon, sleep, tempDir, writeJson } from './control-daemon.js';

const CA = '/usr/sbin/kea-ctrl-agent';
const tmp = tempDir('d2box-ca-');
let d: Daemon;
let ca: ChildProcess;
let caLog = '';
let url = '';
let d2Port = 0;

async function post(body: unknown): Promise<any> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(15_000) });
  expect(res.status).toBe(200);
  return res.json();
}

beforeAll(async () => {
  expect(spawnSync(CA, ['-v'], { encoding: 'utf8' }).stdout).toMatch(/^2\./);
  const socket = join(tmp.dir, 'd2-sock');
  d2Port = await freePort();
  const file = writeJson(join(tmp.dir, 'd2.json'), {
    DhcpDdns: { 'ip-address': '127.0.0.1', port: d2Port, 'control-socket': { 'socket-type': 'unix', 'socket-name': socket } },
  });
  d = new Daemon(file, socket);
  await d.ready();

  const httpPort = await freePort();
  url = `http://127.0.0.1:${httpPort}/`;
  const caFile = writeJson(join(tmp.dir, 'ca.json'), {
    'Control-agent': {
      'http-host': '127.0.0.1',
      'http-port': httpPort,
      'control-sockets': { d2: { 'socket-type': 'unix', 'socket-name': socket } },
      loggers: [{ name: 'kea-ctrl-agent', output_options: [{ output: 'stdout' }], severity: 'INFO', debuglevel: 0 }],
    },
  });
  ca = spawn(CA, ['-c', caFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, KEA_LOCKFILE_DIR: tmp.dir, KEA_PIDFILE_DIR: tmp.dir },
  });
  ca.stdout!.on('data', (b) => (caLog += b));
  ca.stderr!.on('data', (b) => (caLog += b));
  // Bounded wait for the agent's HTTP listener.
  for (let i = 0; i < 200; i++) {
    if (ca.exitCode !== null) throw new Error(`kea-ctrl-agent exited ${ca.exitCode}:\n${caLog}`);
    try {
      await fetch(url, { method: 'POST', body: '{"command":"list-commands"}', signal: AbortSignal.timeout(1000) });
      return;
    } catch {
      await sleep(50);
    }
  }
  throw new Error(`kea-ctrl-agent never listened:\n${caLog}`);
}, 60_000);

afterAll(async () => {
  if (ca && ca.exitCode === null) {
    const exited = new Promise((r) => ca.once('exit', r));
    ca.kill('SIGTERM');
    const t = setTimeout(() => ca.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  }
  if (d) expect(await d.stop()).toBe(0);
  tmp.cleanup();
});

describe('kea-ctrl-agent forwarding to d2box', () => {
  it('list-commands for service d2 returns d2box\'s command list', async () => {
    const answer = await post({ command: 'list-commands', service: ['d2'] });
    expect(Array.isArray(answer)).toBe(true);
    expect(answer).toHaveLength(1);
    expect(answer[0].result).toBe(0);
    for (const c of ['config-get', 'config-set', 'statistic-get-all', 'status-get', 'shutdown', 'hooks-status']) expect(answer[0].arguments).toContain(c);
  });

  it('config-get for service d2 returns d2box\'s running configuration', async () => {
    const [answer] = await post({ command: 'config-get', service: ['d2'] });
    expect(answer.result).toBe(0);
    expect(answer.arguments.DhcpDdns.port).toBe(d2Port);
    expect(answer.arguments.DhcpDdns['control-socket']['socket-type']).toBe('unix');
  });

  it('an unknown command comes back as d2box\'s result 2 through the agent', async () => {
    const [answer] = await post({ command: 'no-such-command', service: ['d2'] });
    expect(answer).toEqual({ result: 2, text: "'no-such-command' command not supported." });
  });
});
