/**
 * A service an operator can deploy: the `npm pack` tarball runs on a machine with no build
 * toolchain (unpacked next to the dependencies, its -t accepts the example configuration),
 * it carries what the daemon needs at run time and not the tests, and the systemd unit in
 * packaging/ passes `systemd-analyze verify` and keeps Debian's Kea unit's user and
 * directories, so the two can take turns on the same files.
 */
import { execFile } from 'node:child_process';
import { cpSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from './control-daemon.js';

const tmp = tempDir('d2box-install-');
afterAll(() => tmp.cleanup());

const DEBIAN_KEA_UNIT = '/lib/systemd/system/kea-dhcp-ddns-server.service';

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    // Bounded: packing and verifying take seconds; 60 s leaves room on a busy machine.
    execFile(cmd, args, { ...opts, timeout: 60_000, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** `Key=value` lines of a unit file, every value of a repeated key. */
function unitKeys(text: string): Map<string, string[]> {
  const keys = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) keys.set(m[1]!, [...(keys.get(m[1]!) ?? []), m[2]!]);
  }
  return keys;
}

describe('install layout', () => {
  it('the npm pack tarball holds the run-time files, not the tests, and runs without a build', async () => {
    // The build ran before the tests (dist/ is what the tests run); prepack would only repeat it.
    const packed = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp.dir]);
    expect(packed.code).toBe(0);
    const [info] = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
    const files = new Set(info!.files.map((f) => f.path));
    for (const needed of ['package.json', 'dist/src/cli.js', 'dist/src/hooks/protocol.js', 'dist/workers/hooks-api.js', 'packaging/d2box.service', 'docs/install.md', 'examples/kea-dhcp-ddns.conf']) {
      expect(files.has(needed), needed).toBe(true);
    }
    expect([...files].filter((f) => f.startsWith('test/') || f.startsWith('dist/test/') || f.startsWith('src/') || f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);

    const unpacked = join(tmp.dir, 'unpacked');
    const tar = await run('tar', ['-xzf', join(tmp.dir, info!.filename), '-C', tmp.dir]);
    expect(tar.code).toBe(0);
    cpSync(join(tmp.dir, 'package'), unpacked, { recursive: true });
    // What `npm install -g` would put beside it: the dependencies (already installed here).
    symlinkSync(resolve('node_modules'), join(unpacked, 'node_modules'));
    const conf = join(tmp.dir, 'd2.conf');
    writeFileSync(conf, readFileSync(join(unpacked, 'examples/kea-dhcp-ddns.conf')));
    const check = await run(process.execPath, [join(unpacked, 'dist/src/cli.js'), '-t', conf], { cwd: tmp.dir });
    expect(check.stderr).toBe('');
    expect(check.code).toBe(0);
    const version = await run(process.execPath, [join(unpacked, 'dist/src/cli.js'), '-v']);
    expect(version.stdout.trim()).toBe(JSON.parse(readFileSync('package.json', 'utf8')).version);
  });

  it("the systemd unit verifies and keeps Debian's Kea unit's user and directories", async () => {
    const unit = readFileSync('packaging/d2box.service', 'utf8');
    const ours = unitKeys(unit);
    const debian = unitKeys(readFileSync(DEBIAN_KEA_UNIT, 'utf8'));
    for (const key of ['User', 'ConfigurationDirectory', 'RuntimeDirectory', 'RuntimeDirectoryPreserve', 'LogsDirectory', 'LogsDirectoryMode', 'StateDirectory', 'AmbientCapabilities', 'WantedBy']) {
      expect(ours.get(key), key).toEqual(debian.get(key));
    }
    expect(ours.get('ExecStart')).toEqual(['/usr/local/bin/d2box -c /etc/kea/kea-dhcp-ddns.conf']);
    expect(ours.get('ExecReload')).toEqual(['/bin/kill -HUP $MAINPID']);
    expect(ours.get('Conflicts')).toEqual(['kea-dhcp-ddns-server.service']);

    // systemd-analyze checks that ExecStart's program exists: the one substitution is the
    // install path of `npm install -g` for this checkout's built CLI.
    const here = join(tmp.dir, 'd2box.service');
    writeFileSync(here, unit.replace('/usr/local/bin/d2box', `${process.execPath} ${resolve('dist/src/cli.js')}`));
    const verify = await run('systemd-analyze', ['verify', here]);
    expect(verify.stderr).toBe('');
    expect(verify.code).toBe(0);
  });
});
