/**
 * Kea 3.x's path hardening (CVE-2025-32801, -32802, -32803) on the real
 * daemon: whoever can send config-set or config-write must not be able to run
 * a module of their choosing, write files or create sockets and log files
 * outside the directories the operator chose. Each daemon here gets narrow
 * directories (vitest.config.ts sets wide ones for the other tests).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { HOOKS_VERSION } from '../src/hooks/protocol.js';
import { freePort } from './support/bind9.js';
import { CLI, Daemon, sleep, tempDir, writeJson } from './control-daemon.js';

const tmp = tempDir('d2box-paths-');
afterAll(() => tmp.cleanup());
const daemons: Daemon[] = [];
afterEach(async () => {
  for (const d of daemons.splice(0)) await d.stop();
});

const hooksDir = join(tmp.dir, 'hooks');
const socketDir = join(tmp.dir, 'run');
const logDir = join(tmp.dir, 'log');
const configDir = join(tmp.dir, 'etc');
const elsewhere = join(tmp.dir, 'elsewhere');
const env = { D2BOX_HOOKS_PATH: hooksDir, D2BOX_CONTROL_SOCKET_DIR: socketDir, D2BOX_LOG_FILE_DIR: logDir };
const marker = join(elsewhere, 'top-level-code-ran');

beforeAll(() => {
  for (const d of [hooksDir, socketDir, logDir, configDir, elsewhere]) mkdirSync(d);
  // Its top-level code is what an attacker wants run: it must never run.
  writeFileSync(join(elsewhere, 'evil.mjs'), `import { writeFileSync } from 'node:fs';\nwriteFileSync(${JSON.stringify(marker)}, 'ran');\nexport const version = () => ${HOOKS_VERSION};\n`);
  writeFileSync(join(hooksDir, 'good.mjs'), `export const version = () => ${HOOKS_VERSION};\nexport const load = () => 0;\n`);
  writeFileSync(join(hooksDir, 'old-framework.mjs'), 'export const version = () => 1;\n');
});

function d2(port: number, over: Record<string, unknown> = {}) {
  return {
    DhcpDdns: {
      'ip-address': '127.0.0.1',
      port,
      'control-socket': { 'socket-type': 'unix', 'socket-name': join(socketDir, 'd2.sock') },
      ...over,
    },
  };
}

let n = 0;
async function start(): Promise<{ d: Daemon; file: string; port: number }> {
  const port = await freePort();
  const file = writeJson(join(configDir, `d2-${++n}.json`), d2(port));
  const d = new Daemon(file, join(socketDir, 'd2.sock'), { env });
  daemons.push(d);
  await d.ready();
  return { d, file, port };
}

describe('path hardening (Kea 3.x)', () => {
  it('refuses a hook library outside the hooks directory before any of its code runs, naming the directory', async () => {
    const { d, port } = await start();
    const refused = await d.command('config-set', d2(port, { 'hooks-libraries': [{ library: join(elsewhere, 'evil.mjs') }] }));
    expect(refused.result).toBe(1);
    expect(refused.text).toContain(`supported path is '${hooksDir}'`);
    expect(refused.text).toMatch(/hook libraries are loaded only from the hooks directory; set D2BOX_HOOKS_PATH/);
    // A relative path that climbs out, and a symbolic link inside the directory that points out, are refused alike.
    const climbing = await d.command('config-set', d2(port, { 'hooks-libraries': [{ library: join(hooksDir, '..', 'elsewhere', 'evil.mjs') }] }));
    expect(climbing.text).toContain(`supported path is '${hooksDir}'`);
    spawnSync('ln', ['-s', join(elsewhere, 'evil.mjs'), join(hooksDir, 'link.mjs')]);
    const linked = await d.command('config-set', d2(port, { 'hooks-libraries': [{ library: join(hooksDir, 'link.mjs') }] }));
    expect(linked.text).toContain(`supported path is '${hooksDir}'`);
    expect((await d.command('config-test', d2(port, { 'hooks-libraries': [{ library: join(elsewhere, 'evil.mjs') }] }))).result).toBe(1);
    expect(existsSync(marker)).toBe(false);
    // The directory's own library loads, by path or by bare name (looked up in the hooks directory, as Kea does).
    expect(await d.command('config-set', d2(port, { 'hooks-libraries': [{ library: 'good.mjs' }] }))).toMatchObject({ result: 0 });
    expect((await d.command('config-get')).arguments.DhcpDdns['hooks-libraries'][0].library).toBe(join(hooksDir, 'good.mjs'));
    expect((await d.command('hooks-status')).arguments.libraries).toHaveLength(1);
    // -t and -T judge the same way.
    const file = writeJson(join(configDir, 'evil.json'), d2(port, { 'hooks-libraries': [{ library: join(elsewhere, 'evil.mjs') }] }));
    for (const flag of ['-t', '-T']) {
      const check = spawnSync(process.execPath, [CLI, flag, file], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, ...env } });
      expect(check.status).toBe(1);
      expect(check.stderr).toContain(`supported path is '${hooksDir}'`);
    }
    expect(existsSync(marker)).toBe(false);
  });

  it('config-write writes only next to the configuration file; elsewhere nothing is written', async () => {
    const { d, file } = await start();
    const target = join(elsewhere, 'written.json');
    const refused = await d.command('config-write', { filename: target });
    expect(refused).toEqual({ result: 1, text: `not allowed to write config into ${target}: file ${target} must be in the same directory as the config file (${file}): config-write writes only into the directory the configuration was read from` });
    expect(existsSync(target)).toBe(false);
    const climbing = await d.command('config-write', { filename: join(configDir, '..', 'elsewhere', 'x.json') });
    expect(climbing.result).toBe(1);
    expect(readdirSync(elsewhere)).toEqual(['evil.mjs']);
    // A bare name goes next to the configuration file, as in Kea.
    const bare = await d.command('config-write', { filename: 'backup.json' });
    expect(bare).toMatchObject({ result: 0, arguments: { filename: join(configDir, 'backup.json') } });
    // Written under the daemon's umask: no group write, nothing for others.
    expect(statSync(join(configDir, 'backup.json')).mode & 0o027).toBe(0);
  });

  it('a refused config-set creates no log file, whether the log path or something else is what is wrong', async () => {
    const { d, port } = await start();
    const outside = join(elsewhere, 'd2.log');
    const logger = (output: string) => ({ loggers: [{ name: 'kea-dhcp-ddns', severity: 'INFO', output_options: [{ output }] }] });
    const refused = await d.command('config-set', d2(port, logger(outside)));
    expect(refused.result).toBe(1);
    expect(refused.text).toMatch(new RegExp(`invalid path in \`output\`: .*supported path is '${logDir}' \\(log files are written only in the log directory; set D2BOX_LOG_FILE_DIR`));
    expect(existsSync(outside)).toBe(false);
    // A log file in the log directory, in a configuration refused for its library: no file either.
    const inside = join(logDir, 'refused.log');
    const badLibrary = await d.command('config-set', d2(port, { ...logger(inside), 'hooks-libraries': [{ library: join(hooksDir, 'old-framework.mjs') }] }));
    expect(badLibrary.result).toBe(1);
    expect(existsSync(inside)).toBe(false);
    // The same log file in a configuration that is accepted is created, without group write or access for others.
    expect(await d.command('config-set', d2(port, logger('accepted.log')))).toMatchObject({ result: 0 });
    // The file is opened with the first line written to it, which may come a moment after the answer (bounded).
    for (let i = 0; i < 200 && !existsSync(join(logDir, 'accepted.log')); i++) await sleep(25);
    expect(statSync(join(logDir, 'accepted.log')).mode & 0o027).toBe(0);
  });

  it('creates unix control sockets only in the socket directory', async () => {
    const { d, port } = await start();
    const outside = join(elsewhere, 'ctl.sock');
    const refused = await d.command('config-set', d2(port, { 'control-socket': { 'socket-type': 'unix', 'socket-name': outside } }));
    expect(refused.result).toBe(1);
    expect(refused.text).toContain(`'socket-name' is invalid: invalid path specified: '${elsewhere}', supported path is '${socketDir}' (unix control sockets are created only in the control socket directory; set D2BOX_CONTROL_SOCKET_DIR`);
    expect(existsSync(outside)).toBe(false);
    expect((await d.command('status-get')).result).toBe(0);
    // At start, too: the daemon exits 1 and creates nothing.
    const file = writeJson(join(configDir, 'outside.json'), d2(await freePort(), { 'control-socket': { 'socket-type': 'unix', 'socket-name': outside } }));
    const bad = new Daemon(file, outside, { env });
    daemons.push(bad);
    expect(await bad.exited).toBe(1);
    expect(existsSync(outside)).toBe(false);
  });
});
