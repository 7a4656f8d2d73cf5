/**
 * The PID file (src/config/pid-file.ts) against Kea 2.2's own: the same name in
 * the same KEA_PIDFILE_DIR, so d2box refuses to start while Kea serves the same
 * configuration, and Kea's file layout (PID and newline) once d2box runs; a stale
 * file replaced; the file gone after shutdown; a named directory that is missing
 * refused as Kea refuses it.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Daemon, sleep, tempDir, writeJson } from './control-daemon.js';

let tmp: { dir: string; cleanup: () => void };
const stoppers: (() => Promise<unknown>)[] = [];

beforeEach(() => {
  tmp = tempDir('d2box-pidfile-');
});
afterEach(async () => {
  for (const stop of stoppers.splice(0)) await stop();
  tmp.cleanup();
});

function config(socket: string): string {
  // A port of its own per run: Kea and d2box never listen at the same time here, but other tests may.
  const port = 40000 + Math.floor(Math.random() * 20000);
  return writeJson(join(tmp.dir, 'kea-dhcp-ddns.conf'), {
    DhcpDdns: {
      'ip-address': '127.0.0.1',
      port,
      'control-socket': { 'socket-type': 'unix', 'socket-name': socket },
      'tsig-keys': [],
      'forward-ddns': {},
      'reverse-ddns': {},
      loggers: [{ name: 'kea-dhcp-ddns', severity: 'INFO', output_options: [{ output: 'stdout' }] }],
    },
  });
}

/** Polls (bounded: 20 s, 400 rounds) until `check` holds. */
async function until(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (let i = 0; i < 400 && Date.now() < deadline; i++) {
    if (check()) return;
    await sleep(50);
  }
  throw new Error(`never happened: ${what}`);
}

describe('PID file', () => {
  it("has Kea's name and layout, and d2box refuses to start while Kea holds it", async () => {
    const pidDir = join(tmp.dir, 'run');
    mkdirSync(pidDir);
    const file = config(join(tmp.dir, 'kea.sock'));
    const env = { ...process.env, KEA_PIDFILE_DIR: pidDir, KEA_LOCKFILE_DIR: tmp.dir };

    const kea = spawn('kea-dhcp-ddns', ['-c', file], { env, stdio: 'ignore' });
    const keaExited = new Promise((r) => kea.on('exit', r));
    stoppers.push(async () => {
      if (kea.exitCode === null && kea.signalCode === null) kea.kill('SIGKILL');
      await keaExited;
    });
    const expected = join(pidDir, 'kea-dhcp-ddns.kea-dhcp-ddns.pid');
    await until("Kea's PID file", () => existsSync(expected));
    const keaFiles = readdirSync(pidDir);
    expect(keaFiles).toEqual(['kea-dhcp-ddns.kea-dhcp-ddns.pid']);
    expect(readFileSync(expected, 'utf8')).toBe(`${kea.pid}\n`);

    const refused = new Daemon(file, join(tmp.dir, 'kea.sock'), { env: { KEA_PIDFILE_DIR: pidDir } });
    stoppers.push(() => refused.stop());
    expect(await refused.exited).toBe(1);
    expect(refused.stdout() + refused.stderr()).toContain(`DCTL_ALREADY_RUNNING kea-dhcp-ddns already running? Daemon::createPIDFile: PID: ${kea.pid} exists, PID file: ${expected}`);
    expect(readFileSync(expected, 'utf8')).toBe(`${kea.pid}\n`);

    kea.kill('SIGTERM');
    await keaExited;
    expect(existsSync(expected)).toBe(false);

    // The same file as Kea's, its control socket included: a switch-over.
    const d = new Daemon(file, join(tmp.dir, 'kea.sock'), { env: { KEA_PIDFILE_DIR: pidDir } });
    stoppers.push(() => d.stop());
    await d.ready();
    expect(readdirSync(pidDir)).toEqual(keaFiles);
    expect(readFileSync(expected, 'utf8')).toBe(`${d.pid}\n`);
    expect(await d.stop()).toBe(0);
    expect(existsSync(expected)).toBe(false);
  });

  it('refuses a second d2box on the same configuration, replaces a stale file, honours D2BOX_PIDFILE_DIR', async () => {
    const file = config(join(tmp.dir, 'a.sock'));
    const expected = join(tmp.dir, 'kea-dhcp-ddns.kea-dhcp-ddns.pid');
    // A PID no process has now: a child that has exited.
    const gone = spawn(process.execPath, ['-e', '0']);
    await new Promise((r) => gone.on('exit', r));
    writeFileSync(expected, `${gone.pid}\n`);

    const first = new Daemon(file, join(tmp.dir, 'a.sock'), { env: { D2BOX_PIDFILE_DIR: tmp.dir, KEA_PIDFILE_DIR: join(tmp.dir, 'not-this-one') } });
    stoppers.push(() => first.stop());
    await first.ready();
    expect(readFileSync(expected, 'utf8')).toBe(`${first.pid}\n`);

    const second = new Daemon(file, join(tmp.dir, 'b.sock'), { env: { D2BOX_PIDFILE_DIR: tmp.dir } });
    stoppers.push(() => second.stop());
    expect(await second.exited).toBe(1);
    expect(second.stdout() + second.stderr()).toMatch(new RegExp(`FATAL .*DCTL_ALREADY_RUNNING .*PID: ${first.pid} exists`));
    // The refused daemon left the first one's file alone, and the first one still answers.
    expect(readFileSync(expected, 'utf8')).toBe(`${first.pid}\n`);
    expect((await first.command('status-get')).result).toBe(0);

    expect(await first.stop()).toBe(0);
    expect(existsSync(expected)).toBe(false);
  });

  it('refuses to start when the directory the operator named does not exist', async () => {
    const missing = join(tmp.dir, 'no-such-dir');
    const d = new Daemon(config(join(tmp.dir, 'c.sock')), join(tmp.dir, 'c.sock'), { env: { KEA_PIDFILE_DIR: missing } });
    stoppers.push(() => d.stop());
    expect(await d.exited).toBe(1);
    expect(d.stdout() + d.stderr()).toMatch(/DCTL_PID_FILE_ERROR DhcpDdns could not create a PID file: .*no-such-dir/);
    expect(existsSync(join(tmp.dir, 'c.sock'))).toBe(false);
  });
});
