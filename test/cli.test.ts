import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from './support/bind9.js';

const CLI = resolve('dist/src/cli.js');
const FIXTURE = resolve('test/fixtures/cli-marker.mjs');
const dir = mkdtempSync(join(tmpdir(), 'd2box-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function config(name: string, hooks: unknown[], port = 53001): string {
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify({ DhcpDdns: { 'ip-address': '127.0.0.1', port, 'hooks-libraries': hooks } }, null, 2));
  return file;
}

function cli(...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000 });
}

describe('kea-dhcp-ddns compatible command line', () => {
  it('-v prints the version, -V the extended version, -W the configuration report', () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
    expect(cli('-v')).toMatchObject({ status: 0, stdout: `${pkg.version}\n` });
    expect(cli('-V').stdout).toMatch(new RegExp(`^${pkg.version}\\n.*Node\\.js`, 's'));
    expect(cli('-W').stdout).toContain('configuration report');
    // bubblewrap is installed by scripts/setup.sh and works here as root: the process mode can run.
    expect(cli('-W').stdout).toMatch(/isolation: +thread: available; process: available \(bwrap /);
  });

  it('refuses an "isolation": "process" library where bwrap is missing, saying so, and -W reports it', () => {
    const noTools = { encoding: 'utf8' as const, timeout: 20_000, env: { PATH: join(dir, 'empty-path'), D2BOX_HOOKS_PATH: process.env.D2BOX_HOOKS_PATH! } };
    const file = config('process.json', [{ library: FIXTURE, sandbox: { isolation: 'process' } }]);
    const check = spawnSync(process.execPath, [CLI, '-T', file], noTools);
    expect(check.status).toBe(1);
    expect(check.stdout + check.stderr).toMatch(/"isolation": "process" cannot run on this host \(missing: bwrap \(not found in PATH\).*refusing to run the library unconfined/);
    const report = spawnSync(process.execPath, [CLI, '-W'], noTools);
    expect(report.stdout).toMatch(/process: NOT available \(missing: bwrap/);
  });

  it('rejects unknown flags and a missing configuration with a usage error and exit 1', () => {
    const unknown = cli('-x');
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toMatch(/Usage error: .*'-x'/);
    expect(cli().stderr).toMatch(/configuration file name not specified/);
  });

  it('-t accepts the bundled example and rejects a bad configuration naming the problem', () => {
    expect(cli('-t', 'examples/kea-dhcp-ddns.conf').status).toBe(0);
    // The sandboxed example loads its library for real (-T) in a bubblewrap process.
    const sandboxed = cli('-T', 'examples/sandboxed-hook.conf');
    expect(sandboxed.status, sandboxed.stderr).toBe(0);
    expect(sandboxed.stdout + sandboxed.stderr).toMatch(/select-key-policy\/index\.js loaded in its sandboxed process/);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{ "DhcpDdns": { "port": "x" } }');
    const result = cli('-t', bad);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/Syntax check failed with: .*bad\.json:1:\d+.*port/);
  });

  it('-t checks hook library versions without loading them; -T loads them', () => {
    const marker = join(dir, 'marker-t');
    writeFileSync(marker, '');
    const file = config('t.json', [{ library: FIXTURE, parameters: { marker } }]);
    expect(cli('-t', file).status).toBe(0);
    expect(readFileSync(marker, 'utf8')).toBe('');
    expect(cli('-T', file).status).toBe(0);
    expect(readFileSync(marker, 'utf8')).toBe('load\nunload\n');
    const failing = config('t-fail.json', [{ library: FIXTURE, parameters: { marker, 'fail-load': true } }]);
    const result = cli('-T', failing);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain(`${FIXTURE}: load() returned 7`);
    const missing = cli('-t', config('t-missing.json', [{ library: join(dir, 'nope.mjs') }]));
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain('nope.mjs');
  });

  it('-c runs until SIGTERM: loads libraries, runs d2_srv_configured, reloads on SIGHUP, unloads on shutdown', async () => {
    const marker = join(dir, 'marker-c');
    writeFileSync(marker, '');
    // The daemon binds its NCR port for real: take free ones, never Kea's default.
    const [first, second] = [await freePort(), await freePort()];
    const file = config('c.json', [{ library: FIXTURE, parameters: { marker } }], first);
    const daemon = spawn(process.execPath, [CLI, '-c', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    daemon.stderr.on('data', (d) => (log += d));
    const exited = new Promise<number | null>((r) => daemon.on('exit', (code) => r(code)));
    const waitFor = async (re: RegExp) => {
      for (let i = 0; i < 200 && !re.test(log); i++) await new Promise((r) => setTimeout(r, 50));
      expect(log).toMatch(re);
    };
    try {
      await waitFor(/DCTL_CONFIG_COMPLETE/);
      expect(readFileSync(marker, 'utf8')).toBe(`load\nconfigured port=${first}\n`);
      config('c.json', [{ library: FIXTURE, parameters: { marker } }], second);
      daemon.kill('SIGHUP');
      await waitFor(/DCTL_CONFIG_COMPLETE[^]*DCTL_CONFIG_COMPLETE/);
      expect(readFileSync(marker, 'utf8')).toBe(`load\nconfigured port=${first}\nunload\nload\nconfigured port=${second}\n`);
      daemon.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(readFileSync(marker, 'utf8')).toMatch(new RegExp(`configured port=${second}\\nunload\\n$`));
    } finally {
      if (daemon.exitCode === null) daemon.kill('SIGKILL');
    }
  });
});
