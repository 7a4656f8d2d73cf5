/**
 * The unix control socket answers in Kea's own layout (src/control/kea-element-text.ts),
 * compared byte for byte with what Kea 2.2's kea-dhcp-ddns answers on its socket for the
 * same configuration: config-get (keys, spacing, escapes, no `"key-name": ""`, Kea's
 * logger output keys), the file config-write writes, an unknown command, status-get's shape.
 * Only the socket path and the NCR port differ between the two daemons' configurations,
 * and those are put back before comparing.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Daemon, rawRequest, sleep, tempDir } from './control-daemon.js';

let tmp: { dir: string; cleanup: () => void };
let kea: ReturnType<typeof spawn> | undefined;
let keaExited: Promise<unknown> | undefined;
let d2box: Daemon | undefined;
const keaSocket = () => join(tmp.dir, 'kea.sock');
const d2boxSocket = () => join(tmp.dir, 'd2box.sock');
// Ports of their own: nothing is sent to them, but two daemons cannot bind one.
const keaPort = 40000 + Math.floor(Math.random() * 10000);
const d2boxPort = keaPort + 10000;

function configText(socket: string, port: number): string {
  // Written by hand, not by JSON.stringify: each daemon reads the same text, so what
  // differs in the answers is the daemon's doing. The é checks Kea's byte-wise escapes.
  return `{ "DhcpDdns": {
  "ip-address": "127.0.0.1", "port": ${port},
  "control-socket": { "socket-type": "unix", "socket-name": "${socket}" },
  "user-context": { "site": "\u00e9/x", "n": 3 },
  "tsig-keys": [ { "name": "k1", "algorithm": "HMAC-SHA256", "secret": "LSWXnfkKZjdPJI5QxlpnfQ==" } ],
  "forward-ddns": { "ddns-domains": [ { "name": "example.org.", "key-name": "k1", "comment": "c1",
      "dns-servers": [ { "ip-address": "127.0.0.1", "port": 5353 }, { "ip-address": "127.0.0.2" } ] } ] },
  "reverse-ddns": { "ddns-domains": [ { "name": "1.0.127.in-addr.arpa.", "dns-servers": [ { "ip-address": "127.0.0.1" } ] } ] },
  "loggers": [ { "name": "kea-dhcp-ddns", "severity": "WARN", "output_options": [
      { "output": "${join(tmp.dir, 'logs', 'd2.log')}", "maxsize": 2048000, "maxver": 3 },
      { "output": "stdout", "pattern": "%m\\n" } ] } ]
} }
`;
}

/** Polls (bounded: 20 s, 400 rounds) until the socket answers. */
async function answering(socket: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (let i = 0; i < 400 && Date.now() < deadline; i++) {
    try {
      if ((await rawRequest(socket, '{"command":"status-get"}', { end: true, timeoutMs: 2000 })).includes('"result": 0')) return;
    } catch {
      // not yet
    }
    await sleep(50);
  }
  throw new Error(`${socket} never answered`);
}

beforeAll(async () => {
  tmp = tempDir('d2box-kea-json-');
  mkdirSync(join(tmp.dir, 'logs'));
  writeFileSync(join(tmp.dir, 'kea.conf'), configText(keaSocket(), keaPort));
  writeFileSync(join(tmp.dir, 'd2box.conf'), configText(d2boxSocket(), d2boxPort));
  kea = spawn('kea-dhcp-ddns', ['-c', join(tmp.dir, 'kea.conf')], {
    env: { ...process.env, KEA_PIDFILE_DIR: tmp.dir, KEA_LOCKFILE_DIR: tmp.dir },
    stdio: 'ignore',
  });
  keaExited = new Promise((r) => kea!.on('exit', r));
  d2box = new Daemon(join(tmp.dir, 'd2box.conf'), d2boxSocket(), { env: { D2BOX_PIDFILE_DIR: tmp.dir } });
  await Promise.all([answering(keaSocket()), d2box.ready()]);
});

afterAll(async () => {
  if (kea && kea.exitCode === null && kea.signalCode === null) {
    kea.kill('SIGTERM');
    const t = setTimeout(() => kea!.kill('SIGKILL'), 10_000);
    await keaExited;
    clearTimeout(t);
  }
  await d2box?.stop();
  tmp?.cleanup();
});

/** d2box's text with its own socket path and port replaced by Kea's. */
function asKeas(text: string): string {
  return text.split(d2boxSocket()).join(keaSocket()).split(`"port": ${d2boxPort}`).join(`"port": ${keaPort}`);
}

async function both(request: string): Promise<{ kea: string; d2box: string }> {
  const [k, d] = await Promise.all([rawRequest(keaSocket(), request, { end: true }), rawRequest(d2boxSocket(), request, { end: true })]);
  return { kea: k, d2box: asKeas(d) };
}

describe("the unix socket answers as Kea 2.2's", () => {
  it('config-get: byte for byte', async () => {
    const r = await both('{ "command": "config-get" }');
    expect(r.kea).toMatch(/^\{ "arguments": \{ "DhcpDdns": \{ "control-socket"/);
    expect(r.d2box).not.toContain('"key-name": ""');
    expect(r.d2box).toContain('"site": "\\u00c3\\u00a9/x"');
    expect(r.d2box).toBe(r.kea);
  });

  it("a value of the wrong type in config-test/config-set: Kea's text and its place on the wire, byte for byte", async () => {
    const requests = [
      '{ "command": "config-test", "arguments": { "DhcpDdns": { "port": "abc" } } }',
      '{ "command": "config-test", "arguments": { "DhcpDdns": { "ip-address": 5 } } }',
      '{ "command": "config-test",\n  "arguments": { "DhcpDdns": {\n    "port": "abc" } } }',
      '{"command":"config-test","arguments":{"DhcpDdns":{"ip-address":"127.0.0.1","port":true}}}',
      '{"command":"config-test","arguments":{"DhcpDdns":{"forward-ddns":{"ddns-domains":[{"name":"a.","dns-servers":[{"ip-address":"127.0.0.1","port":"x"}]}]}}}}',
      // Refused, so neither daemon's configuration (nor its socket) changes.
      '{ "command": "config-set", "arguments": { "DhcpDdns": { "ip-address": "127.0.0.1", "dns-server-timeout": "10" } } }',
    ];
    for (const request of requests) {
      const r = await both(request);
      expect(r.kea, request).toMatch(/^\{ "result": 1, "text": "invalid type specified for parameter '[a-z-]+' \(<wire>:\d+:\d+\)" \}$/);
      expect(r.d2box, request).toBe(r.kea);
    }
  });

  it('an unknown command: byte for byte', async () => {
    const r = await both('{ "command": "no-such-command" }');
    expect(r.kea).toBe(`{ "result": 2, "text": "'no-such-command' command not supported." }`);
    expect(r.d2box).toBe(r.kea);
  });

  it("status-get: Kea's keys, order and spacing", async () => {
    const r = await both('{ "command": "status-get" }');
    const shape = (s: string) => s.replace(/\d+/g, 'N');
    expect(shape(r.kea)).toBe('{ "arguments": { "pid": N, "reload": N, "uptime": N }, "result": N }');
    expect(shape(r.d2box)).toBe(shape(r.kea));
  });

  it('config-write: the same file as Kea writes, and the same answer', async () => {
    const k = await rawRequest(keaSocket(), `{ "command": "config-write", "arguments": { "filename": "${join(tmp.dir, 'kea-written.json')}" } }`, { end: true });
    const d = await rawRequest(d2boxSocket(), `{ "command": "config-write", "arguments": { "filename": "${join(tmp.dir, 'd2box-written.json')}" } }`, { end: true });
    const keaFile = readFileSync(join(tmp.dir, 'kea-written.json'), 'utf8');
    const d2boxFile = asKeas(readFileSync(join(tmp.dir, 'd2box-written.json'), 'utf8'));
    expect(keaFile).toMatch(/^\{\n {2}"DhcpDdns": \{\n {4}"control-socket": \{\n/);
    expect(d2boxFile).toBe(keaFile);
    // The size differs by the socket paths' lengths (the ports have as many digits).
    const d2boxSize = Buffer.byteLength(readFileSync(join(tmp.dir, 'd2box-written.json')));
    expect(d).toContain(`"size": ${d2boxSize} }`);
    const sizeAsKeas = d2boxSize - (d2boxSocket().length - keaSocket().length);
    expect(d.replace(/d2box-written/g, 'kea-written').replace(`"size": ${d2boxSize}`, `"size": ${sizeAsKeas}`)).toBe(k);
  });
});
