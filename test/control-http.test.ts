/**
 * Kea 3.x's control channel over HTTP and HTTPS on the real daemon, with real
 * clients: curl (basic authentication, TLS with and without a client
 * certificate, made with openssl in the test's temp folder) and Node's own
 * HTTP client and raw sockets for the bad input. The Kea 2.2 Control Agent
 * path stays tested in control-kea-ctrl-agent.test.ts.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NcrSender } from '../src/ncr/ncr-sender.js';
import { freePort } from './support/bind9.js';
import { makeTestPki, type TestPki } from './support/test-pki.js';
import { Daemon, rawRequest, sleep, tempDir, writeJson, type Answer } from './control-daemon.js';
import { ncr } from './fixtures/d2-harness.js';

const tmp = tempDir('d2box-http-');
afterAll(() => tmp.cleanup());
const LIB = resolve('test/fixtures/control-commands.mjs');
// Short enough that the timeout cases end quickly; long enough for a loaded 2-core machine to send a whole request.
const TIMEOUT_MS = 1500;
const MAX_BYTES = 64 * 1024;

interface CurlResult {
  exit: number;
  status: number;
  headers: Record<string, string>;
  body: string;
  stderr: string;
}

/** Runs curl (bounded); the status line, headers and body of the last answer. */
function curl(args: string[]): Promise<CurlResult> {
  return new Promise((done) => {
    execFile('curl', ['-sS', '-i', '--max-time', '15', ...args], { encoding: 'utf8', timeout: 20_000 }, (err, stdout, stderr) => {
      const exit = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
      const split = stdout.indexOf('\r\n\r\n');
      const head = split >= 0 ? stdout.slice(0, split) : '';
      const lines = head.split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        if (i > 0) headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
      }
      done({ exit, status: Number(/^HTTP\/\S+ (\d+)/.exec(lines[0] ?? '')?.[1] ?? 0), headers, body: split >= 0 ? stdout.slice(split + 4) : '', stderr });
    });
  });
}

const jsonCommand = (command: string, args?: unknown) => ['-H', 'Content-Type: application/json', '-d', JSON.stringify({ command, ...(args === undefined ? {} : { arguments: args }) })];

/** One request with Node's client (a fresh connection unless an agent is given); status, headers, body. */
function post(port: number, body: string | Buffer, opts: { auth?: string; method?: string; path?: string; agent?: http.Agent } = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string; reused: boolean }> {
  return new Promise((done, fail) => {
    const req = http.request(
      { host: '127.0.0.1', port, method: opts.method ?? 'POST', path: opts.path ?? '/', agent: opts.agent ?? false, timeout: 15_000,
        headers: { 'Content-Type': 'application/json', ...(opts.auth ? { Authorization: `Basic ${Buffer.from(opts.auth).toString('base64')}` } : {}) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => done({ status: res.statusCode!, headers: res.headers, body: text, reused: req.reusedSocket }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer within 15 s')));
    req.on('error', fail);
    req.end(body);
  });
}

/** Raw bytes on a TCP connection; everything the server sent until it closed (bounded). */
function raw(port: number, data: string | Buffer, timeoutMs = 15_000): Promise<{ text: string; closedAfterMs: number }> {
  return new Promise((done, fail) => {
    const started = Date.now();
    const sock = net.connect(port, '127.0.0.1');
    let text = '';
    const t = setTimeout(() => {
      sock.destroy();
      fail(new Error(`connection not closed by the server within ${timeoutMs} ms; got ${JSON.stringify(text.slice(0, 200))}`));
    }, timeoutMs);
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => (text += d));
    sock.on('error', () => {});
    sock.on('close', () => {
      clearTimeout(t);
      done({ text, closedAfterMs: Date.now() - started });
    });
    sock.on('connect', () => sock.write(data));
  });
}

const ADMIN = 'admin:s3cret';

/** A d2box control-channel statistic: absent until its first event. */
async function counter(d: Daemon, name: string): Promise<number> {
  const v = await d.stat(name);
  return Number.isNaN(v) ? 0 : v;
}

describe('HTTP and HTTPS control sockets', () => {
  let pki: TestPki;
  let d: Daemon;
  let httpPort: number;
  let tlsPort: number;
  let tlsOptionalPort: number;
  let ncrPort: number;
  const unixSocket = join(tmp.dir, 'd2.sock');

  beforeAll(async () => {
    pki = makeTestPki(tmp.dir);
    const creds = join(tmp.dir, 'creds');
    mkdirSync(creds);
    writeFileSync(join(creds, 'user'), 'filed\n');
    writeFileSync(join(creds, 'password'), 'filedpw\n');
    writeFileSync(join(creds, 'both'), 'ops:opspw\n');
    [httpPort, tlsPort, tlsOptionalPort, ncrPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const file = writeJson(join(tmp.dir, 'd2.json'), {
      DhcpDdns: {
        'ip-address': '127.0.0.1',
        port: ncrPort,
        'control-sockets': [
          { 'socket-type': 'unix', 'socket-name': unixSocket },
          {
            'socket-type': 'http', 'socket-port': httpPort, comment: 'operators',
            'http-headers': [{ name: 'X-Served-By', value: 'd2box-test' }],
            authentication: {
              type: 'basic', realm: 'd2box-test', directory: creds,
              clients: [{ user: 'admin', password: 's3cret' }, { 'user-file': 'user', 'password-file': 'password' }, { 'password-file': 'both' }],
            },
          },
          { 'socket-type': 'https', 'socket-port': tlsPort, 'trust-anchor': pki.ca, 'cert-file': pki.serverCert, 'key-file': pki.serverKey },
          {
            'socket-type': 'https', 'socket-port': tlsOptionalPort, 'trust-anchor': pki.ca, 'cert-file': pki.serverCert, 'key-file': pki.serverKey, 'cert-required': false,
            authentication: { type: 'basic', realm: 'tls', clients: [{ user: 'admin', password: 's3cret' }] },
          },
        ],
        'hooks-libraries': [{ library: LIB, parameters: { greeting: 'hi from the hook' } }],
      },
    });
    d = new Daemon(file, unixSocket, { env: { D2BOX_CONTROL_TIMEOUT_MS: String(TIMEOUT_MS), D2BOX_CONTROL_MAX_REQUEST_BYTES: String(MAX_BYTES) } });
    await d.ready();
  });
  afterAll(async () => {
    await d?.stop();
  });

  it('config-get gives the sockets back as Kea writes them', async () => {
    const sockets = (await d.command('config-get')).arguments.DhcpDdns['control-sockets'];
    expect(sockets[0]).toEqual({ 'socket-type': 'unix', 'socket-name': unixSocket });
    expect(sockets[1]).toMatchObject({ 'user-context': { comment: 'operators' }, 'socket-type': 'http', 'socket-address': '127.0.0.1', 'socket-port': httpPort });
    expect(sockets[1].authentication).toMatchObject({ type: 'basic', realm: 'd2box-test', clients: [{ user: 'admin' }, { 'user-file': 'user', 'password-file': 'password' }, { 'password-file': 'both' }] });
    // https: the default cert-required (true) is written out, as Kea's toElement does.
    expect(sockets[2]).toEqual({ 'socket-type': 'https', 'socket-address': '127.0.0.1', 'socket-port': tlsPort, 'trust-anchor': pki.ca, 'cert-file': pki.serverCert, 'key-file': pki.serverKey, 'cert-required': true });
  });

  it('curl over HTTP: each kind of client credential is answered in a one-element list; wrong or missing ones get 401 with WWW-Authenticate, counted', async () => {
    for (const user of [ADMIN, 'filed:filedpw', 'ops:opspw']) {
      const r = await curl(['-u', user, ...jsonCommand('status-get'), `http://127.0.0.1:${httpPort}/`]);
      expect(r.status, `${user}: ${r.stderr}`).toBe(200);
      const body = JSON.parse(r.body) as Answer[];
      expect(body).toHaveLength(1);
      expect(body[0]).toMatchObject({ result: 0, arguments: { pid: d.pid } });
      expect(r.headers['x-served-by']).toBe('d2box-test');
    }
    const before = await counter(d, 'control-channel-auth-failed');
    for (const args of [['-u', 'admin:wrong'], ['-u', 's3cret:admin'], ['-u', 'admin:s3cret2'], []]) {
      const r = await curl([...args, ...jsonCommand('status-get'), `http://127.0.0.1:${httpPort}/`]);
      expect(r.status).toBe(401);
      expect(r.headers['www-authenticate']).toBe('Basic realm="d2box-test"');
      expect(r.headers['x-served-by']).toBe('d2box-test');
      expect(JSON.parse(r.body)).toMatchObject({ result: 401, text: expect.stringMatching(/^Unauthorized/) });
    }
    expect(before + 4).toBe(await counter(d, 'control-channel-auth-failed'));
    await d.waitLog(/D2BOX_COMMAND_HTTP_AUTH_FAILED HTTP authentication of 127\.0\.0\.1 on http:\/\/127\.0\.0\.1:\d+ failed: Unauthorized: wrong credentials/);
  });

  it('every command answers over HTTP exactly as over the unix socket: D2\'s, hooks-status, hook-registered ones, command_processed', async () => {
    const viaHttp = async (command: string, args?: unknown) => {
      const r = await post(httpPort, JSON.stringify({ command, ...(args === undefined ? {} : { arguments: args }) }), { auth: ADMIN });
      expect(r.status).toBe(200);
      const list = JSON.parse(r.body) as Answer[];
      expect(list).toHaveLength(1);
      return list[0]!;
    };
    for (const [command, args] of [['list-commands'], ['config-get'], ['version-get'], ['build-report'], ['hello-world', { x: 1 }], ['boom'], ['no-such-command'], ['statistic-get', { name: 'ncr-received' }]] as [string, unknown?][]) {
      expect(await viaHttp(command, args), command).toEqual(await d.command(command, args));
    }
    expect((await viaHttp('hello-world', { x: 1 })).text).toBe('hi from the hook');
    // command_processed amends status-get on both channels.
    expect((await viaHttp('status-get')).arguments.hooked).toBe((await d.command('status-get')).arguments.hooked);
    expect((await viaHttp('status-get')).arguments.hooked).toBeDefined();
    const status = await viaHttp('hooks-status');
    expect(status.arguments.libraries.map((l: { library: string }) => l.library)).toEqual([LIB]);
    expect(await viaHttp('hooks-restart', { library: 'nope' })).toEqual(await d.command('hooks-restart', { library: 'nope' }));
  });

  it('answers are written as Kea\'s HttpResponseJson writes them (Element::str() of the one-element list), the same bytes as the unix socket\'s answer inside `[ ... ]`; error bodies too', async () => {
    // The unix socket's bytes are Kea 2.2's own (control-kea-json.test.ts); Kea's HTTP server writes the list's str().
    for (const command of ['version-get', 'no-such-command', 'config-get']) {
      const viaUnix = await rawRequest(unixSocket, JSON.stringify({ command }), { end: true });
      const r = await post(httpPort, JSON.stringify({ command }), { auth: ADMIN });
      expect(r.body, command).toBe(`[ ${viaUnix} ]`);
    }
    const ok = await post(httpPort, JSON.stringify({ command: 'version-get' }), { auth: ADMIN });
    expect(ok.body).toMatch(/^\[ \{ "arguments": \{ "extended": .*, "result": 0, "text": "[^"]*" \} \]$/);
    expect(ok.headers['content-length']).toBe(String(Buffer.byteLength(ok.body)));
    const refused = await post(httpPort, '', { auth: ADMIN, method: 'GET' });
    expect(refused.body).toBe('{ "result": 405, "text": "Method Not Allowed: send the command with POST, not GET" }');
    const headersHang = await raw(httpPort, 'POST / HTTP/1.1\r\nHost: x\r\n\0bad\r\n\r\n');
    expect(headersHang.text).toMatch(/\r\n\r\n\{ "result": 400, "text": "Bad Request: [^"]*" \}$/);
  });

  it('curl over HTTPS: a client certificate the trust anchor signed is answered; none, or another CA\'s, fails the handshake (logged, counted); cert-required false answers without one', async () => {
    const url = `https://127.0.0.1:${tlsPort}/`;
    const good = await curl(['--cacert', pki.ca, '--cert', pki.clientCert, '--key', pki.clientKey, ...jsonCommand('version-get'), url]);
    expect(good.status, good.stderr).toBe(200);
    expect(JSON.parse(good.body)[0]).toEqual(await d.command('version-get'));
    const before = await counter(d, 'control-channel-tls-handshake-failed');
    const none = await curl(['--cacert', pki.ca, ...jsonCommand('version-get'), url]);
    expect(none.exit).not.toBe(0);
    expect(none.status).toBe(0);
    const rogue = await curl(['--cacert', pki.ca, '--cert', pki.rogueCert, '--key', pki.rogueKey, ...jsonCommand('version-get'), url]);
    expect(rogue.exit).not.toBe(0);
    expect(rogue.status).toBe(0);
    // The client does not trust a server its CA did not sign either.
    const untrusted = await curl(['--cacert', pki.rogueCert, '--cert', pki.clientCert, '--key', pki.clientKey, ...jsonCommand('version-get'), url]);
    expect(untrusted.exit).not.toBe(0);
    for (let i = 0; i < 200 && (await counter(d, 'control-channel-tls-handshake-failed')) < before + 3; i++) await sleep(25);
    expect(await counter(d, 'control-channel-tls-handshake-failed')).toBeGreaterThanOrEqual(before + 3);
    await d.waitLog(/D2BOX_COMMAND_HTTPS_HANDSHAKE_FAILED TLS handshake with 127\.0\.0\.1 on https:\/\/127\.0\.0\.1:\d+ failed/);

    const optional = `https://127.0.0.1:${tlsOptionalPort}/`;
    const noCert = await curl(['--cacert', pki.ca, '-u', ADMIN, ...jsonCommand('status-get'), optional]);
    expect(noCert.status, noCert.stderr).toBe(200);
    expect(JSON.parse(noCert.body)[0]).toMatchObject({ result: 0, arguments: { pid: d.pid } });
    const wrongPassword = await curl(['--cacert', pki.ca, '-u', 'admin:nope', ...jsonCommand('status-get'), optional]);
    expect(wrongPassword.status).toBe(401);
    expect(wrongPassword.headers['www-authenticate']).toBe('Basic realm="tls"');
  });

  it('bad input gets a status and a JSON error while NCRs keep flowing', async () => {
    const sender = new NcrSender({ serverAddress: '127.0.0.1', serverPort: ncrPort });
    const receivedBefore = await d.stat('ncr-received');
    let sent = 0;
    let sending = true;
    const ncrs = (async () => {
      for (let i = 0; i < 400 && sending; i++) {
        await sender.send(ncr({ fqdn: `h${i}.nowhere.test.`, ipAddress: '192.0.2.7' }));
        sent++;
        await sleep(20);
      }
    })();
    try {
      const get = await post(httpPort, '', { auth: ADMIN, method: 'GET' });
      expect(get.status).toBe(405);
      expect(get.headers.allow).toBe('POST');
      expect(JSON.parse(get.body)).toMatchObject({ result: 405 });
      const path = await post(httpPort, '{"command":"status-get"}', { auth: ADMIN, path: '/dhcp-ddns' });
      expect(path.status).toBe(404);
      expect(JSON.parse(path.body)).toMatchObject({ result: 404, text: expect.stringContaining('/dhcp-ddns') });
      const notJson = await post(httpPort, '{"command": "status-get"', { auth: ADMIN });
      expect(notJson.status).toBe(400);
      expect(JSON.parse(notJson.body)).toMatchObject({ result: 400, text: expect.stringMatching(/^Bad Request: the body is not a JSON command/) });
      const big = await post(httpPort, JSON.stringify({ command: 'status-get', arguments: { pad: 'x'.repeat(MAX_BYTES) } }), { auth: ADMIN });
      expect(big.status).toBe(413);
      expect(JSON.parse(big.body)).toMatchObject({ result: 413, text: expect.stringContaining(`${MAX_BYTES}-byte limit`) });

      // Headers that never end, and a body shorter than announced: 408 after the timeout, the connection closed.
      const auth = `Authorization: Basic ${Buffer.from(ADMIN).toString('base64')}\r\n`;
      // A chunked body announces no length: the bound holds while it streams in.
      const chunk = 'x'.repeat(MAX_BYTES + 10);
      const chunked = await raw(httpPort, `POST / HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding: chunked\r\n\r\n${chunk.length.toString(16)}\r\n${chunk}\r\n`);
      expect(chunked.text).toMatch(/^HTTP\/1\.1 413 /);
      const headersHang = await raw(httpPort, `POST / HTTP/1.1\r\nHost: x\r\n${auth}`);
      expect(headersHang.text).toMatch(/^HTTP\/1\.1 408 /);
      expect(JSON.parse(headersHang.text.slice(headersHang.text.indexOf('\r\n\r\n') + 4))).toMatchObject({ result: 408 });
      const bodyHang = await raw(httpPort, `POST / HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"command":`);
      expect(bodyHang.text).toMatch(/^HTTP\/1\.1 408 /);
      const garbage = await raw(httpPort, 'this is not HTTP\r\n\r\n');
      expect(garbage.text).toMatch(/^HTTP\/1\.1 400 /);

      // A TLS handshake that stops halfway (a record header and nothing more) is dropped after the timeout and counted.
      const tlsBefore = await counter(d, 'control-channel-tls-handshake-failed');
      const half = await raw(tlsPort, Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]));
      expect(half.text).toBe('');
      for (let i = 0; i < 200 && (await counter(d, 'control-channel-tls-handshake-failed')) <= tlsBefore; i++) await sleep(25);
      expect(await counter(d, 'control-channel-tls-handshake-failed')).toBe(tlsBefore + 1);

      // Keep-alive: a second command on the same connection.
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const first = await post(httpPort, '{"command":"status-get"}', { auth: ADMIN, agent });
      const second = await post(httpPort, '{"command":"version-get"}', { auth: ADMIN, agent });
      agent.destroy();
      expect([first.status, second.status, second.reused]).toEqual([200, 200, true]);

      // Hundreds of connections at once, each answered.
      const many = await Promise.all(Array.from({ length: 300 }, () => post(httpPort, '{"command":"status-get"}', { auth: ADMIN })));
      expect(many.filter((r) => r.status === 200 && JSON.parse(r.body)[0].result === 0)).toHaveLength(300);
    } finally {
      sending = false;
      await ncrs;
      await sender.close();
    }
    for (let i = 0; i < 400 && (await d.stat('ncr-received')) < receivedBefore + sent; i++) await sleep(25);
    expect(sent).toBeGreaterThan(0);
    expect(await d.stat('ncr-received')).toBe(receivedBefore + sent);
    expect(await counter(d, 'control-channel-bad-request')).toBeGreaterThanOrEqual(7);
  });
});

describe('control-sockets reconfiguration', () => {
  const dir = join(tmp.dir, 'reconf');
  let d: Daemon;
  let ncrPort: number;
  const unixSocket = () => join(dir, 'd2.sock');
  const cfg = (sockets: unknown[]) => ({ DhcpDdns: { 'ip-address': '127.0.0.1', port: ncrPort, 'control-sockets': [{ 'socket-type': 'unix', 'socket-name': unixSocket() }, ...sockets] } });
  const httpSocket = (port: number, password = 's3cret') => ({ 'socket-type': 'http', 'socket-port': port, authentication: { type: 'basic', clients: [{ user: 'admin', password }] } });

  beforeAll(async () => {
    mkdirSync(dir);
    ncrPort = await freePort();
    d = new Daemon(writeJson(join(dir, 'd2.json'), cfg([])), unixSocket());
    await d.ready();
  });
  afterAll(async () => {
    await d?.stop();
  });

  it('config-set opens a new HTTP socket, moves it (answered on the old connection), changes its password in place, and a failed one leaves the old sockets serving', async () => {
    const p1 = await freePort();
    expect(await d.command('config-set', cfg([httpSocket(p1)]))).toMatchObject({ result: 0 });
    expect((await post(p1, '{"command":"status-get"}', { auth: ADMIN })).status).toBe(200);

    // The command that moves the socket is itself in progress on it: its answer still arrives.
    const p2 = await freePort();
    const moved = await post(p1, JSON.stringify({ command: 'config-set', arguments: cfg([httpSocket(p2)]) }), { auth: ADMIN });
    expect(moved.status).toBe(200);
    expect(JSON.parse(moved.body)[0]).toMatchObject({ result: 0 });
    expect((await post(p2, '{"command":"status-get"}', { auth: ADMIN })).status).toBe(200);
    await expect(post(p1, '{"command":"status-get"}', { auth: ADMIN })).rejects.toThrow(/ECONNREFUSED/);

    // Only the password changes: same listener, the old password no longer works.
    expect(await d.command('config-set', cfg([httpSocket(p2, 'n3w')]))).toMatchObject({ result: 0 });
    expect((await post(p2, '{"command":"status-get"}', { auth: ADMIN })).status).toBe(401);
    expect((await post(p2, '{"command":"status-get"}', { auth: 'admin:n3w' })).status).toBe(200);

    // A port somebody else holds: refused, and what was open keeps serving with its old settings.
    const squatter = net.createServer();
    const taken = await freePort();
    await new Promise<void>((r) => squatter.listen(taken, '127.0.0.1', () => r()));
    try {
      const refused = await d.command('config-set', cfg([httpSocket(p2, 'other'), httpSocket(taken)]));
      expect(refused.result).toBe(1);
      expect(refused.text).toMatch(new RegExp(`could not open the control socket http://127\\.0\\.0\\.1:${taken}: .*EADDRINUSE`));
    } finally {
      squatter.close();
    }
    expect((await post(p2, '{"command":"status-get"}', { auth: 'admin:n3w' })).status).toBe(200);
    expect((await d.command('status-get')).result).toBe(0);
    expect((await d.command('config-get')).arguments.DhcpDdns['control-sockets']).toHaveLength(2);

    // config-reload rereads the file: the sockets it names now are opened, the others closed.
    const p3 = await freePort();
    writeJson(join(dir, 'd2.json'), cfg([httpSocket(p3)]));
    expect(await d.command('config-reload')).toMatchObject({ result: 0 });
    expect((await post(p3, '{"command":"status-get"}', { auth: ADMIN })).status).toBe(200);
    await expect(post(p2, '{"command":"status-get"}', { auth: 'admin:n3w' })).rejects.toThrow(/ECONNREFUSED/);

    // The old single control-socket is still accepted, alone.
    expect(await d.command('config-set', { DhcpDdns: { 'ip-address': '127.0.0.1', port: ncrPort, 'control-socket': { 'socket-type': 'unix', 'socket-name': unixSocket() } } })).toMatchObject({ result: 0 });
    await expect(post(p3, '{"command":"status-get"}', { auth: ADMIN })).rejects.toThrow(/ECONNREFUSED/);
    expect((await d.command('config-get')).arguments.DhcpDdns['control-socket']).toEqual({ 'socket-type': 'unix', 'socket-name': unixSocket() });
  });
});
