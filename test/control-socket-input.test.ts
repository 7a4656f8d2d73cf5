/**
 * Bad input on the control socket: each gets a clear result-1 answer (or a
 * closed connection when nothing was asked) and the daemon goes on serving.
 */
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from './support/bind9.js';
import { Daemon, rawRequest, sleep, tempDir, writeJson } from './control-daemon.js';

const tmp = tempDir('d2box-ctlin-');
const LIMIT = 64 * 1024;
let d: Daemon;
let socket: string;

beforeAll(async () => {
  socket = join(tmp.dir, 'sock');
  const file = writeJson(join(tmp.dir, 'c.json'), {
    DhcpDdns: { 'ip-address': '127.0.0.1', port: await freePort(), 'control-socket': { 'socket-type': 'unix', 'socket-name': socket } },
  });
  d = new Daemon(file, socket, { env: { D2BOX_CONTROL_TIMEOUT_MS: '400', D2BOX_CONTROL_MAX_REQUEST_BYTES: String(LIMIT) } });
  await d.ready();
});

afterAll(async () => {
  expect(await d.stop()).toBe(0);
  tmp.cleanup();
});

const answer = async (data: string | Buffer, opts?: { end?: boolean }) => JSON.parse(await rawRequest(socket, data, opts));
const stillServing = async () => expect((await d.command('status-get')).arguments.pid).toBe(d.pid);

describe('bad input on the control socket', () => {
  it('invalid JSON', async () => {
    const a = await answer('{"command": "status-get",, }');
    expect(a.result).toBe(1);
    expect(a.text).toMatch(/^invalid JSON command: /);
    expect(await answer('hello')).toEqual({ result: 1, text: 'invalid JSON command: invalid first character "h"' });
    await stillServing();
  });

  it('not a map, no command, a non-string command, an unknown parameter: Kea\'s texts', async () => {
    expect(await answer('["status-get"]')).toEqual({ result: 1, text: 'Invalid command Element specified, expected map' });
    expect(await answer('{"arguments": {}}')).toEqual({ result: 1, text: "Invalid answer specified, does not contain mandatory 'command'" });
    expect(await answer('{"command": ["x"]}')).toEqual({ result: 1, text: "'command' element in command message is not a string" });
    expect(await answer('{"command": "status-get", "extra": 1}')).toEqual({ result: 1, text: "Received command contains unsupported parameter 'extra'" });
    // What kea-ctrl-agent adds is accepted.
    expect((await answer('{"command": "status-get", "service": ["d2"], "remote-address": "127.0.0.1"}')).result).toBe(0);
    await stillServing();
  });

  it('braces inside strings do not end the request early; whitespace before it is fine', async () => {
    const a = await answer('  \n{"command": "statistic-get", "arguments": {"name": "}{\\"]"}}');
    expect(a).toEqual({ result: 0, arguments: {} });
  });

  it('a request over the size limit is refused', async () => {
    const huge = JSON.stringify({ command: 'config-test', arguments: { DhcpDdns: { comment: 'x'.repeat(LIMIT * 2) } } });
    const a = await answer(huge);
    expect(a).toEqual({ result: 1, text: `command too large: over the ${LIMIT}-byte limit` });
    await stillServing();
  });

  it('a request that never ends times out with Kea\'s text', async () => {
    const partial = '{"command": "status-get"';
    const a = await answer(partial);
    expect(a).toEqual({ result: 1, text: `Connection over control channel timed out, discarded partial command of ${partial.length} bytes` });
    await stillServing();
  });

  it('a client that connects and says nothing is timed out too', async () => {
    expect(await answer('')).toEqual({ result: 1, text: 'Connection over control channel timed out' });
  });

  it('a request cut short by the client\'s half-close is answered as incomplete', async () => {
    const a = await answer('{"command": "sta', { end: true });
    expect(a.result).toBe(1);
    expect(a.text).toMatch(/^incomplete command of 16 bytes/);
  });

  it('clients that disconnect before or during the reply cost nothing', async () => {
    for (let i = 0; i < 20; i++) {
      await new Promise<void>((resolve) => {
        const s = net.connect(socket, () => {
          s.write(JSON.stringify({ command: i % 2 ? 'statistic-get-all' : 'config-get' }));
          if (i % 3 === 0) s.destroy();
          else setImmediate(() => s.destroy());
          resolve();
        });
        s.on('error', () => resolve());
      });
    }
    await sleep(100);
    await stillServing();
    expect(d.child.exitCode).toBeNull();
  });

  it('many clients at once all get their answer', async () => {
    const answers = await Promise.all(
      Array.from({ length: 60 }, (_, i) => answer(JSON.stringify({ command: 'statistic-get', arguments: { name: i % 2 ? 'ncr-received' : `nope-${i}` } }))),
    );
    answers.forEach((a, i) => {
      expect(a.result).toBe(0);
      expect(Object.keys(a.arguments)).toEqual(i % 2 ? ['ncr-received'] : []);
    });
  });

  it('wrong argument types get a result 1 naming the argument', async () => {
    expect(await d.command('statistic-get', 'ncr-received')).toEqual({ result: 1, text: "'arguments' expected to be a map." });
    expect(await d.command('hooks-restart', { library: 1 })).toEqual({ result: 1, text: "parameter 'library' is not a string" });
    expect(await d.command('config-set', 'x')).toEqual({ result: 1, text: "Missing mandatory 'DhcpDdns' parameter." });
    await stillServing();
  });
});
