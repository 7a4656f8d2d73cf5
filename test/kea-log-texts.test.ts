/**
 * The controller's messages as Kea 2.2 logs them: the same IDs on the same loggers with the
 * same texts, for a start, a SIGHUP reload and a SIGTERM shutdown. Kea and d2box run one after
 * the other on configurations that differ only in the socket path and the port, their lines
 * written as `%c %m` to stdout; the PIDs, versions, paths and ports are put back before
 * comparing.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from './support/bind9.js';
import { sleep, tempDir } from './control-daemon.js';

const tmp = tempDir('d2box-log-texts-');
afterAll(() => tmp.cleanup());

const COMPARED = ['COMMAND_ACCEPTOR_START', 'DCTL_CONFIG_COMPLETE', 'DCTL_CFG_FILE_RELOAD_SIGNAL_RECVD', 'DCTL_SHUTDOWN'];

/** Runs a daemon through start, SIGHUP and SIGTERM; its stdout and stderr. Every wait bounded (20 s). */
async function lifecycle(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise((r) => child.on('exit', r));
  const waitFor = async (what: RegExp, count = 1) => {
    const deadline = Date.now() + 20_000;
    for (let i = 0; i < 400 && Date.now() < deadline && (out.match(what)?.length ?? 0) < count; i++) await sleep(50);
    if ((out.match(what)?.length ?? 0) < count) throw new Error(`${cmd}: never logged ${what}:\n${out}`);
  };
  try {
    await waitFor(/DCTL_CONFIG_COMPLETE/g);
    child.kill('SIGHUP');
    await waitFor(/DCTL_CONFIG_COMPLETE/g, 2);
    child.kill('SIGTERM');
    await waitFor(/DCTL_SHUTDOWN /g);
    await exited;
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  return out;
}

async function config(name: string): Promise<{ file: string; socket: string; port: number }> {
  const socket = join(tmp.dir, `${name}.sock`);
  const port = await freePort();
  const file = join(tmp.dir, `${name}.conf`);
  writeFileSync(
    file,
    JSON.stringify({
      DhcpDdns: {
        'ip-address': '127.0.0.1',
        port,
        'control-socket': { 'socket-type': 'unix', 'socket-name': socket },
        'tsig-keys': [],
        'forward-ddns': {},
        'reverse-ddns': {},
        loggers: [{ name: 'kea-dhcp-ddns', severity: 'INFO', output_options: [{ output: 'stdout', pattern: '%c %m\n' }] }],
      },
    }),
  );
  return { file, socket, port };
}

function normalized(out: string, c: { file: string; socket: string; port: number }, pid: RegExp): Map<string, string> {
  const lines = new Map<string, string>();
  for (const line of out.split('\n')) {
    const m = /^(kea-dhcp-ddns(?:\.[a-z0-9-]+)?) ([A-Z0-9_]+) (.*)$/.exec(line);
    if (!m || !COMPARED.includes(m[2]!) || lines.has(m[2]!)) continue;
    lines.set(m[2]!, `${m[1]} ${m[2]} ${m[3]!.split(c.socket).join('SOCKET').split(c.file).join('FILE').split(String(c.port)).join('PORT').replace(pid, 'PID').replace(/version: [^\s,]+/, 'version: V')}`);
  }
  return lines;
}

describe("the controller's messages", () => {
  it("are Kea 2.2's: IDs, loggers and texts for start, reload and shutdown", async () => {
    const k = await config('kea');
    const d = await config('d2box');
    const keaOut = await lifecycle('kea-dhcp-ddns', ['-c', k.file], { KEA_PIDFILE_DIR: tmp.dir, KEA_LOCKFILE_DIR: tmp.dir });
    const d2boxOut = await lifecycle(process.execPath, [resolve('dist/src/cli.js'), '-c', d.file], { D2BOX_PIDFILE_DIR: tmp.dir });
    const kea = normalized(keaOut, k, /pid: \d+/);
    const ours = normalized(d2boxOut, d, /pid: \d+/);
    expect([...kea.keys()].sort()).toEqual([...COMPARED].sort());
    for (const id of COMPARED) expect(ours.get(id), id).toBe(kea.get(id)!.replace(/pid: \d+/, 'pid: PID'));
    // DCTL_STARTING comes before the configuration, on the default output: Kea's build tag is its own.
    expect(d2boxOut).toMatch(/\[kea-dhcp-ddns\.dctl\/\d+\.\d+\] DCTL_STARTING DhcpDdns starting, pid: \d+, version: [^ ]+ \(d2box\)/);
    expect(keaOut).toMatch(/\[kea-dhcp-ddns\.dctl\/\d+\.\d+\] DCTL_STARTING DhcpDdns starting, pid: \d+, version: 2\.2\.\d+ \(stable\)/);
  });
});
