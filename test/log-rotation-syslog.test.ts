/**
 * Kea's file rotation semantics and the syslog output.
 *
 * Rotation (log4cplus's RollingFileAppender, as Kea 2.2 uses it; measured: maxsize 1000 and
 * maxver 0 left k.log.1 of 204875 bytes and no k.log.2): a non-zero maxsize below 204800 is
 * raised to it, the file rolls once it has grown past the size, maxver is at least 1, and the
 * current file exists after every rotation, a shutdown right after one included.
 *
 * Syslog: the daemon's lines reach a stream socket the test binds (D2BOX_SYSLOG_SOCKET) as
 * syslog(3) frames them, with the facility of `syslog:NAME`; a datagram socket (socat
 * UNIX-RECVFROM, like /dev/log), which Node cannot write to, gets a warning and the lines on
 * stderr; `-t` warns about it before the daemon runs.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { LogPipeline, MINIMUM_ROLLING_LOG_SIZE } from '../src/log/log-pipeline.js';
import { Logger, stderrSink } from '../src/log/logger.js';
import type { LoggerConfig } from '../src/config/loggers.js';
import { freePort } from './support/bind9.js';
import { CLI, Daemon, sleep, tempDir, writeJson } from './control-daemon.js';

const tmp = tempDir('d2box-rot-syslog-');
afterAll(() => tmp.cleanup());
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Polls (bounded: 20 s, 400 rounds) until `check` holds. */
async function until(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (let i = 0; i < 400 && Date.now() < deadline; i++) {
    if (check()) return;
    await sleep(50);
  }
  throw new Error(`never happened: ${what}`);
}

describe("rotation as Kea's", () => {
  async function logThrough(file: string, maxsize: number, maxver: number, lines: number): Promise<void> {
    const p = new LogPipeline();
    p.configure([{ name: 'kea-dhcp-ddns', severity: 'INFO', debuglevel: 0, output_options: [{ output: file, flush: true, maxsize, maxver, pattern: '%m\n' }] } as LoggerConfig]);
    p.install();
    try {
      const log = new Logger('rotation');
      // 100-byte lines: "ROT " + 95 characters + "\n", 100 per turn of the loop, each turn's
      // lines written before the next (a daemon logs over time, not all in one turn).
      for (let i = 0; i < lines; i++) {
        log.info('ROT', String(i).padStart(95, '.'));
        if (i % 100 === 99) {
          await p.flush();
          await sleep(1);
        }
      }
    } finally {
      Logger.setFilter(undefined);
      Logger.setSink(stderrSink);
      await p.close();
    }
  }

  it('a maxsize under 200 KiB rotates at 200 KiB; maxver 0 keeps one old version', async () => {
    const file = join(tmp.dir, 'small.log');
    await logThrough(file, 1000, 0, 5000);
    expect(existsSync(`${file}.1`)).toBe(true);
    expect(existsSync(`${file}.2`)).toBe(false);
    // Rolled after the line that took it past the minimum, not at 1000 bytes. Unlike log4cplus,
    // which writes synchronously, lines already handed to the asynchronous destination when the
    // file is renamed still land in the old one: bounded by one batch (64 KiB).
    const rolled = statSync(`${file}.1`).size;
    expect(rolled).toBeGreaterThan(MINIMUM_ROLLING_LOG_SIZE);
    expect(rolled).toBeLessThanOrEqual(MINIMUM_ROLLING_LOG_SIZE + 64 * 1024);
    // Nothing lost: every line is in the current file or the one kept version (the rest rolled off).
    const last = readFileSync(file, 'utf8').trim().split('\n').at(-1)!;
    expect(last).toBe(`ROT ${String(4999).padStart(95, '.')}`);
  });

  it('maxsize 0 never rotates; the current file exists after a shutdown right after a rotation', async () => {
    const off = join(tmp.dir, 'off.log');
    await logThrough(off, 0, 3, 3000);
    expect(existsSync(`${off}.1`)).toBe(false);
    expect(statSync(off).size).toBe(300_000);

    // 2048 lines of 100 bytes pass 204800 on the last one: the shutdown follows that rotation at once.
    const edge = join(tmp.dir, 'edge.log');
    await logThrough(edge, MINIMUM_ROLLING_LOG_SIZE, 2, 2049);
    expect(existsSync(`${edge}.1`)).toBe(true);
    expect(existsSync(edge)).toBe(true);
    expect(statSync(edge).size).toBe(0);
  });
});

async function daemonWithSyslog(output: string, socketPath: string) {
  const control = join(tmp.dir, `c-${Math.random().toString(36).slice(2, 8)}`);
  const file = writeJson(`${control}.json`, {
    DhcpDdns: {
      'ip-address': '127.0.0.1',
      port: await freePort(),
      'control-socket': { 'socket-type': 'unix', 'socket-name': control },
      loggers: [{ name: 'kea-dhcp-ddns', severity: 'INFO', output_options: [{ output }] }],
    },
  });
  const d = new Daemon(file, control, { env: { D2BOX_SYSLOG_SOCKET: socketPath } });
  cleanups.push(() => d.stop());
  return { d, file };
}

describe('syslog output', () => {
  it("reaches a stream socket as syslog(3) frames it, with syslog:NAME's facility", async () => {
    const path = join(tmp.dir, 'syslog-stream.sock');
    let received = '';
    const server = net.createServer((c) => c.setEncoding('utf8').on('data', (d: string) => (received += d)));
    await new Promise<void>((r) => server.listen(path, r));
    cleanups.push(() => new Promise((r) => server.close(r)));

    const { d } = await daemonWithSyslog('syslog:local3', path);
    await d.ready();
    await d.command('version-get');
    await until('COMMAND_RECEIVED on the syslog socket', () => received.includes("Received command 'version-get'"));
    const messages = received.split('\0').filter(Boolean);
    // local3 (19) * 8 + info (6) = 158; Kea's tag; the syslog pattern's text.
    const cmd = messages.find((m) => m.includes("Received command 'version-get'"))!;
    expect(cmd).toMatch(/^<158>[A-Z][a-z]{2} [ 1-3]\d \d\d:\d\d:\d\d kea-dhcp-ddns: INFO {2}\[kea-dhcp-ddns\.commands\.\d+\] COMMAND_RECEIVED Received command 'version-get'\n$/);
    // As Kea, DCTL_STARTING comes before the configuration and so goes to the console, not to syslog.
    expect(d.stderr() + d.stdout()).toContain('DCTL_STARTING');
    // Nothing of it on the console.
    expect(d.stdout() + d.stderr()).not.toContain("Received command 'version-get'");
    expect(await d.stop()).toBe(0);
    await until('the shutdown on the syslog socket', () => / DCTL_SHUTDOWN /.test(received));
  });

  it('a bare `syslog` is local0', async () => {
    const path = join(tmp.dir, 'syslog-local0.sock');
    let received = '';
    const server = net.createServer((c) => c.setEncoding('utf8').on('data', (d: string) => (received += d)));
    await new Promise<void>((r) => server.listen(path, r));
    cleanups.push(() => new Promise((r) => server.close(r)));
    const { d } = await daemonWithSyslog('syslog', path);
    await d.ready();
    await d.command('status-get');
    await until('COMMAND_RECEIVED on the syslog socket', () => received.includes('COMMAND_RECEIVED'));
    // local0 (16) * 8 + info (6) = 134.
    expect(received.split('\0').find((m) => m.includes('COMMAND_RECEIVED'))).toMatch(/^<134>/);
  });

  it('a datagram socket (as /dev/log) gets a warning and the lines on stderr; -t warns first', async () => {
    const path = join(tmp.dir, 'syslog-dgram.sock');
    const socat = spawn('socat', ['-u', `UNIX-RECVFROM:${path},fork`, 'STDOUT'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let got = '';
    socat.stdout!.setEncoding('utf8').on('data', (d: string) => (got += d));
    const socatExited = new Promise((r) => socat.on('exit', r));
    cleanups.push(async () => {
      socat.kill('SIGTERM');
      await socatExited;
    });
    await until('socat bound the datagram socket', () => existsSync(path));

    const { d, file } = await daemonWithSyslog('syslog:daemon', path);
    await d.ready();
    await d.waitLog(/D2BOX_SYSLOG_UNAVAILABLE syslog output syslog:daemon unavailable \(.*datagram socket/);
    await d.command('version-get');
    await d.waitLog(/COMMAND_RECEIVED Received command 'version-get'/);
    expect(d.stderr()).toMatch(/INFO {2}\[kea-dhcp-ddns\.commands\.\d+\] COMMAND_RECEIVED Received command 'version-get'/);
    expect(got).toBe('');

    const check = await new Promise<{ code: number; stderr: string }>((res) => {
      execFile(process.execPath, [CLI, '-t', file], { env: { ...process.env, D2BOX_SYSLOG_SOCKET: path }, timeout: 20_000, encoding: 'utf8' }, (err, _out, stderr) =>
        res({ code: err ? Number(err.code ?? 1) : 0, stderr }),
      );
    });
    expect(check.code).toBe(0);
    expect(check.stderr).toMatch(/WARN D2BOX_SYSLOG_UNAVAILABLE syslog output syslog:daemon unavailable \(.*datagram socket/);
  });
});
