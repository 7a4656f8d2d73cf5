/**
 * Kea's D2 commands over the real unix socket of the real daemon: each
 * command's success and error shape (Kea 2.2's texts and result codes), the
 * socket file's life (0600, removed at shutdown, stale file replaced, live
 * server refused), and shutdown's exit-value as the process's exit code.
 */
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { NcrSender } from '../src/ncr/ncr-sender.js';
import { ncr, newDhcid, silentServer } from './fixtures/d2-harness.js';
import { freePort } from './support/bind9.js';
import { command, Daemon, sleep, tempDir, writeJson, type Answer } from './control-daemon.js';

const tmp = tempDir('d2box-ctl-');
afterAll(() => tmp.cleanup());
const daemons: Daemon[] = [];
afterEach(async () => {
  for (const d of daemons.splice(0)) await d.stop();
});

const SECRET = 'LSWXnfkKZjdPJI5QxlpnfQ==';
let n = 0;

function d2Config(port: number, socket: string, over: Record<string, unknown> = {}) {
  return {
    DhcpDdns: {
      'ip-address': '127.0.0.1',
      port,
      'control-socket': { 'socket-type': 'unix', 'socket-name': socket },
      'tsig-keys': [{ name: 'd2.example.key', algorithm: 'HMAC-SHA256', secret: SECRET }],
      'forward-ddns': { 'ddns-domains': [{ name: 'example.com.', 'key-name': 'd2.example.key', 'dns-servers': [{ 'ip-address': '127.0.0.1', port: 53 }] }] },
      ...over,
    },
  };
}

async function start(over: Record<string, unknown> = {}): Promise<{ d: Daemon; file: string; socket: string; port: number }> {
  const id = ++n;
  const socket = join(tmp.dir, `s${id}`);
  const port = await freePort();
  const file = writeJson(join(tmp.dir, `c${id}.json`), d2Config(port, socket, over));
  const d = new Daemon(file, socket);
  daemons.push(d);
  await d.ready();
  return { d, file, socket, port };
}

const KEA_D2_COMMANDS = [
  'build-report', 'config-get', 'config-reload', 'config-set', 'config-test', 'config-write', 'list-commands', 'shutdown',
  'statistic-get', 'statistic-get-all', 'statistic-reset', 'statistic-reset-all', 'status-get', 'version-get',
];

describe('Kea D2 commands over the unix socket', () => {
  let d: Daemon;
  let file: string;
  let socket: string;
  let port: number;
  beforeAll(async () => {
    ({ d, file, socket, port } = await start());
    daemons.length = 0; // this one lives for the whole block
  });
  afterAll(async () => {
    await d.stop();
  });

  it('list-commands lists exactly Kea D2\'s commands plus hooks-status and hooks-restart, sorted', async () => {
    const a = await d.command('list-commands');
    expect(a).toEqual({ result: 0, arguments: [...KEA_D2_COMMANDS, 'hooks-restart', 'hooks-status'].sort() });
  });

  it('an unknown command answers 2, Kea\'s text', async () => {
    expect(await d.command('config-hash-get')).toEqual({ result: 2, text: "'config-hash-get' command not supported." });
  });

  it('version-get and build-report', async () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
    const v = await d.command('version-get');
    expect(v.result).toBe(0);
    expect(v.text).toBe(pkg.version);
    expect(v.arguments.extended).toMatch(new RegExp(`^${pkg.version}\\n`));
    const b = await d.command('build-report');
    expect(b.result).toBe(0);
    expect(b.text).toContain('configuration report');
  });

  it('status-get reports the pid, uptime and time since the last reload; both grow, and config-reload sets reload back', async () => {
    const { d } = await start();
    const a = await d.command('status-get');
    expect(a.result).toBe(0);
    expect(a.arguments.pid).toBe(d.pid);
    expect(Number.isInteger(a.arguments.uptime)).toBe(true);
    expect(Number.isInteger(a.arguments.reload)).toBe(true);
    // Both count whole seconds: 2.2 s later each must be at least 2 more, whatever the machine's load.
    await sleep(2200);
    const b = await d.command('status-get');
    expect(b.arguments.uptime - a.arguments.uptime).toBeGreaterThanOrEqual(2);
    expect(b.arguments.reload - a.arguments.reload).toBeGreaterThanOrEqual(2);
    expect(await d.command('config-reload')).toMatchObject({ result: 0 });
    const c = await d.command('status-get');
    // Just reloaded: back under the uptime, which keeps counting from the start.
    expect(c.arguments.reload).toBeLessThan(b.arguments.reload);
    expect(c.arguments.reload).toBeLessThanOrEqual(1);
    expect(c.arguments.uptime).toBeGreaterThanOrEqual(b.arguments.uptime);
  });

  it('config-get returns the running configuration with Kea\'s defaults filled in', async () => {
    const a = await d.command('config-get');
    expect(a.result).toBe(0);
    expect(a.text).toBeUndefined();
    const cfg = a.arguments.DhcpDdns;
    expect(cfg.port).toBe(port);
    expect(cfg['ncr-protocol']).toBe('UDP');
    expect(cfg['dns-server-timeout']).toBe(100);
    expect(cfg['control-socket']).toEqual({ 'socket-type': 'unix', 'socket-name': socket });
    expect(cfg['tsig-keys'][0].name).toBe('d2.example.key');
  });

  it('config-test: success, and Kea\'s errors for missing, malformed or extra arguments, nothing applied', async () => {
    const good = d2Config(await freePort(), socket);
    expect(await d.command('config-test', good)).toEqual({ result: 0, text: 'Configuration check successful' });
    expect(await d.command('config-test')).toEqual({ result: 1, text: "Missing mandatory 'arguments' parameter." });
    expect(await d.command('config-test', { Dhcp4: {} })).toEqual({ result: 1, text: "Missing mandatory 'DhcpDdns' parameter." });
    expect(await d.command('config-test', { DhcpDdns: [] })).toEqual({ result: 1, text: "'DhcpDdns' parameter expected to be a map." });
    expect(await d.command('config-test', { ...good, Dhcp4: {} })).toEqual({ result: 1, text: "'arguments' parameter contains unsupported 'Dhcp4' parameter" });
    const bad = await d.command('config-test', d2Config(port, socket, { port: 'x' }));
    expect(bad.result).toBe(1);
    expect(bad.text).toMatch(/port/);
    const undefinedKey = await d.command('config-test', d2Config(port, socket, { 'forward-ddns': { 'ddns-domains': [{ name: 'a.', 'key-name': 'nope', 'dns-servers': [{ 'ip-address': '127.0.0.1' }] }] } }));
    expect(undefinedKey.result).toBe(1);
    expect(undefinedKey.text).toContain('nope');
    expect((await d.command('config-get')).arguments.DhcpDdns.port).toBe(port);
  });

  it('statistic-get: Kea\'s sample shape, {} for an unknown name, errors for a missing or non-string name', async () => {
    const a = await d.command('statistic-get', { name: 'ncr-received' });
    expect(a.result).toBe(0);
    expect(a.arguments['ncr-received']).toHaveLength(1);
    expect(a.arguments['ncr-received'][0][0]).toBe(0);
    expect(a.arguments['ncr-received'][0][1]).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$/);
    expect(await d.command('statistic-get', { name: 'no-such-stat' })).toEqual({ result: 0, arguments: {} });
    expect(await d.command('statistic-get')).toEqual({ result: 1, text: "Missing mandatory 'name' parameter." });
    expect(await d.command('statistic-get', {})).toEqual({ result: 1, text: "Missing mandatory 'name' parameter." });
    expect(await d.command('statistic-get', { name: 5 })).toEqual({ result: 1, text: "'name' parameter expected to be a string." });
  });

  it('statistic-get-all has every Kea D2 statistic and the per-key ones', async () => {
    const a = await d.command('statistic-get-all');
    expect(a.result).toBe(0);
    for (const s of ['ncr-received', 'ncr-invalid', 'ncr-error', 'update-sent', 'update-signed', 'update-unsigned', 'update-success', 'update-timeout', 'update-error']) {
      expect(a.arguments[s]?.[0]?.[0], s).toBe(0);
    }
    for (const s of ['update-sent', 'update-success', 'update-timeout', 'update-error']) {
      expect(a.arguments[`key[d2.example.key.].${s}`]?.[0]?.[0], s).toBe(0);
    }
  });

  it('statistic-reset and statistic-reset-all: Kea\'s texts; an unknown name is an error', async () => {
    expect(await d.command('statistic-reset', { name: 'ncr-invalid' })).toEqual({ result: 0, text: "Statistic 'ncr-invalid' reset." });
    expect(await d.command('statistic-reset', { name: 'nope' })).toEqual({ result: 1, text: "No 'nope' statistic found" });
    expect(await d.command('statistic-reset', { name: [] })).toEqual({ result: 1, text: "'name' parameter expected to be a string." });
    expect(await d.command('statistic-reset-all')).toEqual({ result: 0, text: 'All statistics reset to neutral values.' });
  });

  it('config-write writes config-get\'s JSON and answers size and filename; errors are Kea\'s', async () => {
    const out = join(tmp.dir, 'written.json');
    const a = await d.command('config-write', { filename: out });
    expect(a).toEqual({ result: 0, text: `Configuration written to ${out} successful`, arguments: { size: statSync(out).size, filename: out } });
    const written = JSON.parse(readFileSync(out, 'utf8'));
    expect(written).toEqual((await d.command('config-get')).arguments);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(await d.command('config-write', { filename: 7 })).toEqual({ result: 1, text: "passed parameter 'filename' is not a string" });
    expect(await d.command('config-write', [1])).toEqual({ result: 1, text: 'Argument must be a map' });
    const nowhere = await d.command('config-write', { filename: join(tmp.dir, 'no-such-file-dir.json', 'x.json') });
    expect(nowhere.result).toBe(1);
    // Kea 3.x refuses a directory other than the configuration's before trying to write (test/path-hardening.test.ts).
    expect(nowhere.text).toMatch(/^not allowed to write config into .*must be in the same directory as the config file/);
    mkdirSync(join(tmp.dir, 'taken.json'));
    const unwritable = await d.command('config-write', { filename: join(tmp.dir, 'taken.json') });
    expect(unwritable.result).toBe(1);
    expect(unwritable.text).toMatch(/^Error during write-config:/);
  });

  it('config-set applies a new configuration; a rejected one leaves the old in force', async () => {
    const newPort = await freePort();
    const set = await d.command('config-set', d2Config(newPort, socket, { 'dns-server-timeout': 250 }));
    expect(set).toEqual({ result: 0, text: 'Configuration applied successfully.' });
    let cfg = (await d.command('config-get')).arguments.DhcpDdns;
    expect(cfg.port).toBe(newPort);
    expect(cfg['dns-server-timeout']).toBe(250);
    const bad = await d.command('config-set', d2Config(newPort, socket, { 'tsig-keys': [{ name: 'k', algorithm: 'HMAC-NOPE', secret: SECRET }] }));
    expect(bad.result).toBe(1);
    expect(bad.text).toMatch(/HMAC-NOPE|algorithm/);
    expect(await d.command('config-set')).toEqual({ result: 1, text: "Missing mandatory 'arguments' parameter." });
    cfg = (await d.command('config-get')).arguments.DhcpDdns;
    expect(cfg.port).toBe(newPort);
    expect(cfg['dns-server-timeout']).toBe(250);
    port = newPort;
  });

  it('config-reload rereads the -c file; a broken file is refused and the configuration in force stays', async () => {
    const newPort = await freePort();
    writeJson(file, d2Config(newPort, socket, { 'dns-server-timeout': 333 }));
    expect(await d.command('config-reload')).toEqual({ result: 0, text: 'Configuration applied successfully.' });
    expect((await d.command('config-get')).arguments.DhcpDdns['dns-server-timeout']).toBe(333);
    writeJson(file, { DhcpDdns: { port: 'nope' } });
    const bad = await d.command('config-reload');
    expect(bad.result).toBe(1);
    expect(bad.text).toMatch(/^Configuration parsing failed: /);
    expect((await d.command('config-get')).arguments.DhcpDdns['dns-server-timeout']).toBe(333);
  });

  it('shutdown refuses wrong arguments and keeps serving', async () => {
    expect(await d.command('shutdown', { 'exit-value': 'x' })).toEqual({ result: 1, text: "parameter 'exit-value' is not an integer" });
    expect(await d.command('shutdown', { type: 'sideways' })).toEqual({ result: 1, text: 'Invalid Shutdown type: sideways' });
    expect(await d.command('shutdown', 'now')).toEqual({ result: 1, text: 'Argument must be a map' });
    expect((await d.command('status-get')).result).toBe(0);
  });
});

describe('the socket file and shutdown', () => {
  it('is owner-only, and shutdown with exit-value exits with it and removes the file', async () => {
    const { d, socket } = await start();
    expect(statSync(socket).isSocket()).toBe(true);
    expect(statSync(socket).mode & 0o777).toBe(0o600);
    expect(await d.command('shutdown', { 'exit-value': 7 })).toEqual({ result: 0, text: 'Shutdown initiated, type is: normal' });
    expect(await d.exited).toBe(7);
    expect(existsSync(socket)).toBe(false);
  });

  it('shutdown types: normal abandons the queue, drain_first serves it, now stops what is in flight', async () => {
    const dead = await silentServer();
    try {
      const counts: Record<string, { abandoned: number; failed: number; stopped: number }> = {};
      for (const type of ['normal', 'drain_first', 'now']) {
        // Each NCR takes 3 attempts × the timeout: long enough to be caught in flight, except where
        // drain_first must serve all three within the shutdown bound (5 s).
        const { d, port } = await start({
          'dns-server-timeout': type === 'drain_first' ? 100 : 1000,
          // Kea's single attempt, whose shutdown types this checks (no NCR waits to be retried).
          'd2box-retry-unanswered': false,
          'forward-ddns': { 'ddns-domains': [{ name: 'dead.test.', 'dns-servers': [{ 'ip-address': '127.0.0.1', port: dead.port }] }] },
        });
        // Three NCRs for one DHCID run one after the other: one in flight, two queued.
        const sender = new NcrSender({ serverAddress: '127.0.0.1', serverPort: port });
        const dhcid = newDhcid();
        for (let i = 1; i <= 3; i++) await sender.send(ncr({ fqdn: `h${i}.dead.test.`, ipAddress: `192.0.2.${i}`, dhcid, reverseChange: false }));
        await sender.close();
        // Counted, not timed: shut down only once all three are in (a busy machine may take seconds).
        for (let i = 0; i < 1000 && (await d.stat('ncr-received')) < 3; i++) await sleep(10);
        expect(await d.stat('ncr-received')).toBe(3);
        expect(await d.command('shutdown', { type })).toEqual({ result: 0, text: `Shutdown initiated, type is: ${type}` });
        expect(await d.exited).toBe(0);
        const log = d.stderr();
        counts[type] = {
          abandoned: log.match(/D2BOX_NCR_ABANDONED/g)?.length ?? 0,
          failed: log.match(/DHCP_DDNS_ADD_FAILED .*no-more-servers/g)?.length ?? 0,
          stopped: log.match(/DHCP_DDNS_ADD_FAILED .*\(stopped\)/g)?.length ?? 0,
        };
      }
      expect(counts).toEqual({
        normal: { abandoned: 2, failed: 1, stopped: 0 },
        drain_first: { abandoned: 0, failed: 3, stopped: 0 },
        now: { abandoned: 2, failed: 0, stopped: 1 },
      });
    } finally {
      await dead.close();
    }
  });

  it('SIGTERM and SIGINT exit 0 and remove the file', async () => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      const { d, socket } = await start();
      d.child.kill(signal);
      expect(await d.exited).toBe(0);
      expect(existsSync(socket)).toBe(false);
    }
  });

  it('a stale file from a killed run is replaced; a live server on the path makes the second daemon exit 1', async () => {
    const first = await start();
    first.d.child.kill('SIGKILL');
    await first.d.exited;
    expect(existsSync(first.socket)).toBe(true);
    // Same socket path, a new daemon: it takes the path over.
    const file2 = writeJson(join(tmp.dir, 'stale.json'), d2Config(await freePort(), first.socket));
    const second = new Daemon(file2, first.socket);
    daemons.push(second);
    await second.ready();
    await second.waitLog(/D2BOX_CONTROL_SOCKET_STALE/);
    // A third daemon on the path the second serves: refused, the second unharmed.
    const file3 = writeJson(join(tmp.dir, 'live.json'), d2Config(await freePort(), first.socket));
    const third = new Daemon(file3, first.socket);
    daemons.push(third);
    expect(await third.exited).toBe(1);
    expect(third.stdout() + third.stderr()).toMatch(/another server is accepting on the control socket/);
    expect((await second.command('status-get')).arguments.pid).toBe(second.pid);
  });

  it('a path that is not a socket is refused at start', async () => {
    const path = join(tmp.dir, 'plain-file');
    writeJson(path, {});
    const file = writeJson(join(tmp.dir, 'plain.json'), d2Config(await freePort(), path));
    const d = new Daemon(file, path);
    daemons.push(d);
    expect(await d.exited).toBe(1);
    expect(d.stdout() + d.stderr()).toMatch(/exists and is not a socket/);
    expect(readFileSync(path, 'utf8')).toBe('{}');
  });

  it('config-set moving the socket opens the new path and removes the old', async () => {
    const { d, socket, port } = await start();
    const moved = join(tmp.dir, 'moved');
    const a: Answer = await d.command('config-set', d2Config(port, moved));
    expect(a.result).toBe(0);
    expect(existsSync(socket)).toBe(false);
    expect((await command(moved, 'status-get')).arguments.pid).toBe(d.pid);
  });
});
