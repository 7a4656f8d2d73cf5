/**
 * A new author's first hour, replayed: a select_key library in its own package
 * in a temporary folder outside the repository, built from the files of
 * docs/writing-hooks.md's quick start (package.json, tsconfig.json, src/ →
 * dist/ with tsc, a node:test test with d2box/host), with d2box linked into
 * its node_modules as `npm link d2box` does; then run by the daemon in both
 * isolation modes against BIND 9, fed the NCR datagram of docs/running.md
 * through socat as shown there, and asked over the control socket (socat,
 * half-closing) how often it chose.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { HooksManager } from 'd2box/host';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { libraryPackageRoot } from '../src/hooks/process-sandbox.js';
import { Daemon, sleep, socatRequest } from './control-daemon.js';
import { digRecords, freePort, startBind9 } from './support/bind9.js';

const run = promisify(execFile);
const D2BOX = process.cwd();
const TSC = resolve('node_modules/.bin/tsc');
const AUTHOR_KEY = { name: 'author.key', algorithm: 'HMAC-SHA256', secret: 'YXV0aG9yLWtleS1zZWNyZXQ=' };
// The key the configuration gives the domains; BIND does not know it, so an update gets
// through only when the library has named author.key and the daemon has signed with it.
const D2_KEY = { name: 'd2.key', algorithm: 'HMAC-SHA256', secret: 'ZDIta2V5LW5vdC1pbi1iaW5k' };

let tmp: string;
let pkg: string;

/** The files of the quick start: each fenced block right after a **`path`** line. */
function quickStartFiles(): Map<string, string> {
  const docs = readFileSync('docs/writing-hooks.md', 'utf8');
  const section = docs.slice(docs.indexOf('## Out of tree: a quick start'), docs.indexOf('## Framework functions'));
  const files = new Map<string, string>();
  for (const m of section.matchAll(/\*\*`([^`]+)`\*\*\n\n```\w*\n([\s\S]*?)```/g)) files.set(m[1]!, m[2]!);
  return files;
}

/** docs/running.md's NCR: its JSON text, framed as the docs' printf does (2-byte length, then the text). */
function documentedDatagram(): { json: string; frame: Buffer } {
  const docs = readFileSync('docs/running.md', 'utf8');
  const json = /^json='(.+)'$/m.exec(docs)![1]!;
  const body = Buffer.from(json);
  const prefix = /printf '\\(\d{3})\\(\d{3})%s'/.exec(docs)!;
  return { json, frame: Buffer.concat([Buffer.from([parseInt(prefix[1]!, 8), parseInt(prefix[2]!, 8)]), body]) };
}

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'd2box-author-'));
  pkg = join(tmp, 'my-select-key');
  for (const [path, text] of quickStartFiles()) {
    mkdirSync(dirname(join(pkg, path)), { recursive: true });
    writeFileSync(join(pkg, path), text);
  }
});

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('an author\'s library outside the repository', () => {
  it('the quick start has every file it names', () => {
    expect([...quickStartFiles().keys()].sort()).toEqual(['package.json', 'src/index.ts', 'test/index.test.mjs', 'tsconfig.json']);
    expect(JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8'))).toMatchObject({ type: 'module' });
  });

  it('without d2box in its package: a thread cannot load it, and the error names the fix; a process can', async () => {
    const bare = join(tmp, 'bare');
    mkdirSync(bare);
    writeFileSync(join(bare, 'package.json'), '{ "name": "bare", "type": "module" }');
    writeFileSync(join(bare, 'index.js'), "import { HOOKS_VERSION } from 'd2box/hooks';\nexport const version = () => HOOKS_VERSION;\n");
    const hooks = new HooksManager();
    try {
      const failure = hooks.loadLibraries([{ library: join(bare, 'index.js') }]);
      await expect(failure).rejects.toThrow(/Cannot find package 'd2box' imported from .*bare\/index\.js.*; hint: .*node_modules\/d2box.*npm link d2box.*"isolation": "process"/s);
      await hooks.loadLibraries([{ library: join(bare, 'index.js'), sandbox: { isolation: 'process' } }]);
      expect(hooks.getLibraryStatistics()[0]).toMatchObject({ isolation: 'process', state: 'ready' });
    } finally {
      await hooks.unloadLibraries();
    }
  });

  it('links d2box, builds with tsc and the quick start\'s tsconfig, and its own node:test test passes in both modes', async () => {
    // What `npm link d2box` leaves in the package.
    mkdirSync(join(pkg, 'node_modules'));
    symlinkSync(D2BOX, join(pkg, 'node_modules', 'd2box'), 'dir');
    const build = spawnSync(TSC, ['-p', join(pkg, 'tsconfig.json')], { encoding: 'utf8', timeout: 120_000 });
    expect(build.status, build.stdout + build.stderr).toBe(0);
    expect(existsSync(join(pkg, 'dist', 'index.js'))).toBe(true);
    const test = spawnSync(process.execPath, ['--test', 'test/'], { cwd: pkg, encoding: 'utf8', timeout: 120_000 });
    expect(test.status, test.stdout + test.stderr).toBe(0);
    expect(test.stdout).toMatch(/^# pass 2$/m);
    expect(test.stdout).toMatch(/^# fail 0$/m);
    expect(test.stdout).toContain('select_key names author.key for 192.0.2.1 (process)');
  });

  it('in a process, the sandbox shows the library\'s package: dist/ imports from the package\'s node_modules', async () => {
    expect(libraryPackageRoot(join(pkg, 'dist'))).toBe(pkg);
    expect(libraryPackageRoot(join(tmp))).toBe(tmp); // no package.json up to the home folder or /: the folder itself
    expect(libraryPackageRoot(resolve('dist/sample-hooks/select-key-policy'))).toBe(resolve('dist/sample-hooks/select-key-policy')); // d2box's own
    const dependency = join(pkg, 'node_modules', 'key-names');
    mkdirSync(dependency);
    writeFileSync(join(dependency, 'package.json'), '{ "name": "key-names", "type": "module", "exports": "./index.js" }');
    writeFileSync(join(dependency, 'index.js'), "export const keyName = (server) => server['ip-address'] === '192.0.2.1' ? 'author.key' : undefined;\n");
    writeFileSync(join(pkg, 'dist', 'with-dependency.js'), [
      "import { HOOKS_VERSION } from 'd2box/hooks';",
      "import { keyName } from 'key-names';",
      'export const version = () => HOOKS_VERSION;',
      "export function select_key(h) { const name = keyName(h.getArgument('current_server')); if (name) h.setArgument('tsig_key', { name }); return 0; }",
      '',
    ].join('\n'));
    for (const isolation of ['thread', 'process'] as const) {
      const hooks = new HooksManager();
      try {
        await hooks.loadLibraries([{ library: join(pkg, 'dist', 'with-dependency.js'), sandbox: { isolation } }]);
        expect(await hooks.configured({ DhcpDdns: { 'tsig-keys': [AUTHOR_KEY] } }, {})).toEqual({ accepted: true });
        const handle = await hooks.createCalloutHandle();
        handle.setArgument('current_server', { 'ip-address': '192.0.2.1', port: 53 }).setArgument('tsig_key', null);
        expect((await hooks.callCallouts('select_key', handle)).failures, isolation).toEqual([]);
        expect(handle.getArgument('tsig_key'), isolation).toEqual(AUTHOR_KEY);
      } finally {
        await hooks.unloadLibraries();
      }
    }
  });

  for (const isolation of ['thread', 'process'] as const) {
    it(`runs in the daemon (isolation "${isolation}"): the documented NCR, sent with socat, reaches BIND signed with the key it named`, async () => {
      const bind = await startBind9({
        keys: [{ name: AUTHOR_KEY.name, algorithm: 'hmac-sha256', secret: AUTHOR_KEY.secret }],
        zones: [{ name: 'example.com', updateKeys: [AUTHOR_KEY.name] }, { name: '2.0.192.in-addr.arpa', updateKeys: [AUTHOR_KEY.name] }],
      });
      const dir = mkdtempSync(join(tmp, `daemon-${isolation}-`));
      const socket = join(dir, 'ctrl');
      const port = await freePort();
      const config = join(dir, 'kea-dhcp-ddns.conf');
      const domain = (name: string) => ({ name, 'key-name': D2_KEY.name, 'dns-servers': [{ 'ip-address': '127.0.0.1', port: bind.port }] });
      writeFileSync(config, JSON.stringify({
        DhcpDdns: {
          'ip-address': '127.0.0.1',
          port,
          'dns-server-timeout': 2000,
          'control-socket': { 'socket-type': 'unix', 'socket-name': socket },
          'tsig-keys': [D2_KEY, AUTHOR_KEY],
          'forward-ddns': { 'ddns-domains': [domain('example.com.')] },
          'reverse-ddns': { 'ddns-domains': [domain('2.0.192.in-addr.arpa.')] },
          'hooks-libraries': [{
            library: join(pkg, 'dist', 'index.js'),
            parameters: { 'key-for': { '127.0.0.1': AUTHOR_KEY.name } },
            // A generous deadline: the machine is shared; this is about the key, not the time.
            sandbox: { isolation, 'callout-timeout-ms': 10_000 },
          }],
        },
      }, null, 2));
      const d = new Daemon(config, socket);
      try {
        await d.ready();
        const { json, frame } = documentedDatagram();
        expect(frame.readUInt16BE(0)).toBe(Buffer.byteLength(json)); // the docs' length bytes are right
        const datagram = join(dir, 'ncr.bin');
        writeFileSync(datagram, frame);
        await run('socat', ['-u', `OPEN:${datagram}`, `UDP-SENDTO:127.0.0.1:${port}`], { timeout: 10_000 });
        // Checked through dig, never through d2box; bounded (a shared machine may be slow).
        let forward = await digRecords(bind.port, 'host1.example.com', 'A');
        let reverse = await digRecords(bind.port, '10.2.0.192.in-addr.arpa', 'PTR');
        for (let i = 0; i < 80 && (forward.length === 0 || reverse.length === 0); i++) {
          await sleep(250);
          forward = await digRecords(bind.port, 'host1.example.com', 'A');
          reverse = await digRecords(bind.port, '10.2.0.192.in-addr.arpa', 'PTR');
        }
        expect(forward.map((r) => r.data), d.stderr()).toEqual(['192.0.2.10']);
        expect(reverse.map((r) => r.data)).toEqual(['host1.example.com.']);
        // The library's own command, as the quick start asks it: socat, which half-closes.
        const answer = JSON.parse(await socatRequest(socket, '{ "command": "my-choices-get" }'));
        expect(answer).toEqual({ result: 0, text: '2 keys chosen', arguments: { chosen: 2 } });
        const status = JSON.parse(await socatRequest(socket, '{ "command": "hooks-status" }'));
        expect(status.arguments.libraries[0]).toMatchObject({ isolation, state: 'ready', restarts: 0 });
        expect(d.stderr() + d.stdout()).not.toContain(AUTHOR_KEY.secret);
      } finally {
        await d.stop();
        await bind.stop();
      }
    }, 90_000);
  }
});
