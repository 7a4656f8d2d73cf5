/**
 * Commands registered by a hook library, routed to its worker; the
 * command_processed hook point; hooks-status after a library that crashes or
 * hangs while handling a command, and hooks-restart bringing it back; the
 * per-library statistics. Each test has a daemon of its own, so that none
 * depends on what an earlier one did to the library.
 */
import net from 'node:net';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { freePort } from './support/bind9.js';
import { Daemon, rawRequest, sleep, socatRequest, tempDir, writeJson, type Answer } from './control-daemon.js';

const LIB = resolve('test/fixtures/control-commands.mjs');
const tmp = tempDir('d2box-ctlhooks-');
let d: Daemon;
let n = 0;

beforeEach(async () => {
  const id = ++n;
  const socket = join(tmp.dir, `sock${id}`);
  const file = writeJson(join(tmp.dir, `c${id}.json`), {
    DhcpDdns: {
      'ip-address': '127.0.0.1',
      port: await freePort(),
      'control-socket': { 'socket-type': 'unix', 'socket-name': socket },
      'hooks-libraries': [{ library: LIB, parameters: { greeting: 'hi there' }, sandbox: { 'callout-timeout-ms': 1000, 'max-restarts': 0 } }],
    },
  });
  d = new Daemon(file, socket);
  await d.ready();
});

afterEach(async () => {
  expect(await d.stop()).toBe(0);
});
afterAll(() => tmp.cleanup());

type LibStatus = { library: string; state: string; calls: number; failures: Record<string, number>; timeouts: number; restarts: number; quarantineReason: string | null; latencyUs: { p50: number; p99: number; count: number } };

async function libStatus(): Promise<LibStatus> {
  const a = await d.command('hooks-status');
  expect(a.result).toBe(0);
  expect(a.arguments.libraries).toHaveLength(1);
  return a.arguments.libraries[0];
}

async function waitState(state: string): Promise<LibStatus> {
  let s = await libStatus();
  for (let i = 0; i < 200 && s.state !== state; i++) {
    await sleep(25);
    s = await libStatus();
  }
  expect(s.state).toBe(state);
  return s;
}

describe('hook-registered commands', () => {
  it('list-commands merges the library\'s commands with the built-in ones', async () => {
    const a = await d.command('list-commands');
    expect(a.result).toBe(0);
    for (const c of ['hello-world', 'boom', 'spin', 'die', 'config-get', 'hooks-status']) expect(a.arguments).toContain(c);
    expect(a.arguments).toEqual([...a.arguments].sort());
  });

  it('a library\'s command is answered by its worker, its response passed back unchanged', async () => {
    expect(await d.command('hello-world', { a: [1, 2] })).toEqual({ result: 0, text: 'hi there', arguments: { echo: { a: [1, 2] } } });
    expect(await d.command('hello-world')).toEqual({ result: 0, text: 'hi there', arguments: { echo: null } });
  });

  it('command_processed amends a response; a failing callout leaves the original', async () => {
    const s = await d.command('status-get', { probe: true });
    expect(s.result).toBe(0);
    expect(s.arguments.pid).toBe(d.pid);
    expect(s.arguments.hooked).toBe('hi there');
    expect(s.arguments.seen).toEqual({ probe: true });
    const v = await d.command('version-get');
    expect(v.result).toBe(0);
    expect(v.arguments.extended).toBeTypeOf('string');
    expect(v.arguments.hooked).toBeUndefined();
  });

  it('a handler that throws yields result 1 naming the library; the library stays in service', async () => {
    const a = await d.command('boom');
    expect(a.result).toBe(1);
    expect(a.text).toContain(LIB);
    expect(a.text).toContain('the boom command exploded on purpose');
    let s = await libStatus();
    expect(s.state).toBe('ready');
    expect(s.failures.throw).toBe(1);
    expect((await d.command('hello-world')).result).toBe(0);
    // A command_processed callout that throws is counted the same way, the answer left as it was.
    expect((await d.command('version-get')).result).toBe(0);
    s = await libStatus();
    expect(s.failures.throw).toBe(2);
    expect(s.state).toBe('ready');
  });
});

describe('a client that half-closes after its request (socat, the documented client)', () => {
  // A library's command is answered after a round trip to its worker, so the
  // client's half-close arrives while it runs; a built-in one answers at once.
  const hello = JSON.stringify({ command: 'hello-world', arguments: { n: 1 } });

  it('socat gets the answer to a library\'s command and to built-in ones, every time', async () => {
    for (let i = 0; i < 12; i++) {
      expect(JSON.parse(await socatRequest(d.socketPath!, hello))).toEqual({ result: 0, text: 'hi there', arguments: { echo: { n: 1 } } });
    }
    expect(JSON.parse(await socatRequest(d.socketPath!, '{"command":"config-get"}')).result).toBe(0);
    const status = JSON.parse(await socatRequest(d.socketPath!, '{"command":"status-get"}'));
    expect(status.arguments.pid).toBe(d.pid);
    expect(status.arguments.hooked).toBe('hi there');
  });

  it('a half-close after each byte: incomplete before the JSON ends, answered once it has', async () => {
    for (const request of [hello, '{"command":"list-commands"}']) {
      for (let cut = 1; cut <= request.length; cut++) {
        const a = JSON.parse(await rawRequest(d.socketPath!, request.slice(0, cut), { end: true }));
        if (cut < request.length) {
          expect(a).toEqual({ result: 1, text: `incomplete command of ${cut} bytes: the connection was closed before the JSON ended` });
        } else {
          expect(a.result).toBe(0);
          if (request === hello) expect(a.arguments).toEqual({ echo: { n: 1 } });
          else expect(a.arguments).toContain('hello-world');
        }
      }
    }
  });

  it('the request written one byte at a time, then a half-close, is answered', async () => {
    const a = await new Promise<Answer>((resolvePromise, reject) => {
      const sock = net.connect(d.socketPath!);
      let out = '';
      const t = setTimeout(() => {
        sock.destroy();
        reject(new Error(`no answer within 15 s; got ${out}`));
      }, 15_000);
      sock.setEncoding('utf8');
      sock.on('data', (c: string) => (out += c));
      sock.on('error', reject);
      sock.on('close', () => {
        clearTimeout(t);
        resolvePromise(JSON.parse(out) as Answer);
      });
      sock.on('connect', async () => {
        // A pause between bytes, none between the last byte and the half-close.
        for (let i = 0; i < hello.length; i++) {
          if (i > 0) await sleep(1);
          sock.write(hello[i]!);
        }
        sock.end();
      });
    });
    expect(a).toEqual({ result: 0, text: 'hi there', arguments: { echo: { n: 1 } } });
  });
});

describe('hooks-status and hooks-restart', () => {
  it('a library that exits while handling a command is quarantined (max-restarts 0), and hooks-status says why', async () => {
    // Calls before the failure, counted with it: a command of its own, and command_processed on each.
    expect((await d.command('hello-world')).result).toBe(0);
    expect((await d.command('status-get')).arguments.hooked).toBe('hi there');
    const a = await d.command('die');
    expect(a.result).toBe(1);
    expect(a.text).toContain(LIB);
    const s = await waitState('quarantined');
    expect(s.library).toBe(LIB);
    expect(s.failures.exit).toBe(1);
    expect(s.quarantineReason).toMatch(/exit/);
    // hello-world and its command_processed, status-get's, die; hooks-status's own come on top.
    expect(s.calls).toBeGreaterThanOrEqual(4);
    expect(s.latencyUs.count).toBeGreaterThan(0);
    expect(s.latencyUs.p99).toBeGreaterThanOrEqual(s.latencyUs.p50);
    // Its commands fail clearly; command_processed is skipped; the daemon serves.
    const hello = await d.command('hello-world');
    expect(hello.result).toBe(1);
    expect(hello.text).toMatch(/quarantined/);
    const status = await d.command('status-get');
    expect(status.result).toBe(0);
    expect(status.arguments.hooked).toBeUndefined();
    // As statistics too.
    expect(await d.stat(`hook-library[${LIB}].quarantined`)).toBe(1);
    expect(await d.stat(`hook-library[${LIB}].failures`)).toBeGreaterThanOrEqual(2);
  });

  it('hooks-restart brings it back', async () => {
    expect((await d.command('die')).result).toBe(1);
    await waitState('quarantined');
    expect(await d.command('hooks-restart', { library: '/no/such/lib.mjs' })).toEqual({ result: 3, text: 'no hook library named /no/such/lib.mjs is configured' });
    const r: Answer = await d.command('hooks-restart', { library: LIB });
    expect(r).toEqual({ result: 0, text: '1 hook library restarted', arguments: { restarted: [LIB] } });
    const s = await waitState('ready');
    expect(s.quarantineReason).toBeNull();
    expect(await d.command('hello-world')).toEqual({ result: 0, text: 'hi there', arguments: { echo: null } });
    expect(await d.stat(`hook-library[${LIB}].quarantined`)).toBe(0);
    // Nothing left to restart.
    expect(await d.command('hooks-restart')).toEqual({ result: 3, text: 'no hook library is quarantined' });
    expect((await d.command('hooks-restart', { library: LIB })).result).toBe(1);
  });

  it('a handler that hangs is cut at its deadline: result 1, a timeout counted; hooks-restart without arguments restarts it', async () => {
    const a = await d.command('spin');
    expect(a.result).toBe(1);
    expect(a.text).toMatch(/timeout/);
    const s = await waitState('quarantined');
    expect(s.timeouts).toBe(1);
    expect(await d.stat(`hook-library[${LIB}].timeouts`)).toBe(1);
    expect(await d.command('hooks-restart')).toEqual({ result: 0, text: '1 hook library restarted', arguments: { restarted: [LIB] } });
    await waitState('ready');
    expect((await d.command('hello-world')).result).toBe(0);
  });
});
