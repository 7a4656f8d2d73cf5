/**
 * Attacks beyond issue 18's list (item 7), each by a hostile library:
 *
 * - a process library that writes V8's "JavaScript heap out of memory" text to its
 *   stderr and aborts, with its heap nearly empty (test/fixtures/hostile-extra-oom-claim.mjs):
 *   its death must count as a `crash` with the text quoted, not as `oom`, while a real
 *   heap exhaustion (faulty-callout.mjs 'oom') still counts as `oom`.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { HooksManager, type ChainReport } from '../src/hooks/hooks-manager.js';
import type { HookLibraryConfigInput } from '../src/hooks/library-config.js';
import { Logger, stderrSink, type LogRecord } from '../src/log/logger.js';

const OOM_CLAIM = 'test/fixtures/hostile-extra-oom-claim.mjs';
const FAULTY = 'test/fixtures/faulty-callout.mjs';
const SYMLINKS = 'test/fixtures/hostile-extra-symlinks.mjs';
const CONFIGURED_ERROR = 'test/fixtures/hostile-extra-configured-error.mjs';
const COMMANDS = 'test/fixtures/hostile-extra-commands.mjs';

let hooks: HooksManager;
let tmp: string;
let logs: LogRecord[] = [];

beforeAll(() => {
  Logger.setSink((record) => {
    if (logs.length < 20_000) logs.push(record);
  });
});
afterAll(() => {
  Logger.setSink(stderrSink);
});
beforeEach(() => {
  hooks = new HooksManager({ baseDir: process.cwd() });
  tmp = mkdtempSync(join(tmpdir(), 'd2box-hostile-extra-'));
  logs = [];
});
afterEach(async () => {
  await hooks.unloadLibraries();
  rmSync(tmp, { recursive: true, force: true });
});

function inProcess(library: string, sandbox: NonNullable<HookLibraryConfigInput['sandbox']> = {}): HookLibraryConfigInput {
  // callout-timeout-ms: generous, so a busy shared machine never turns the death into a timeout.
  return { library, parameters: {}, sandbox: { isolation: 'process', 'see-secrets': true, 'allow-write': [tmp], 'callout-timeout-ms': 20_000, ...sandbox } };
}

async function selectKey(hostname: string): Promise<ChainReport> {
  const h = await hooks.createCalloutHandle();
  h.setArgument('current_server', { 'ip-address': '192.0.2.53', port: 53, hostname });
  h.setArgument('tsig_key', null);
  const report = await hooks.callCallouts('select_key', h);
  await h.destroy();
  return report;
}

function failures(library: string): Record<string, number> {
  const s = hooks.getLibraryStatistics().find((x) => x.library === library)!;
  return Object.fromEntries(Object.entries(s.failures).filter(([, n]) => n > 0));
}

describe('a process library that claims its own death was heap exhaustion', () => {
  it('writes V8\'s out-of-memory text and aborts: a "crash", the text quoted, not "oom"', async () => {
    await hooks.loadLibraries([inProcess(OOM_CLAIM, { 'max-heap-mb': 32 })]);
    const report = await selectKey('die');
    const failure = report.failures[0]!.failure;
    expect(failure).toMatchObject({ kind: 'crash' });
    expect(failure.message).toMatch(/wrote of running out of heap, but the host saw its sandbox hold at most \d+ MB/);
    expect(failure.message).toContain('Fatal javascript OOM in Reached heap limit');
    expect(failures(OOM_CLAIM)).toEqual({ crash: 1 });
    console.log(`figure: forged oom: ${failure.message.slice(0, 160)}`);
  });

  it('a real heap exhaustion in a process still counts as "oom"', async () => {
    await hooks.loadLibraries([inProcess(FAULTY, { 'max-heap-mb': 32 })]);
    const report = await selectKey('oom');
    expect(report.failures[0]!.failure).toMatchObject({ kind: 'oom' });
    expect(failures(FAULTY)).toEqual({ oom: 1 });
    console.log(`figure: real oom: ${report.failures[0]!.failure.message}`);
  });
});

describe("a process library's package folder holding symlinks to host files", () => {
  it('reads nothing through them: their targets are not in its sandbox', async () => {
    const pkg = join(tmp, 'pkg');
    const out = join(tmp, 'out');
    const hostDir = join(tmp, 'host-only');
    mkdirSync(pkg);
    mkdirSync(out);
    mkdirSync(hostDir);
    writeFileSync(join(hostDir, 'secret.txt'), 'HOST-SECRET');
    writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'symlinker', type: 'module' }));
    copyFileSync(SYMLINKS, join(pkg, 'index.mjs'));
    // Absolute and relative links to a host file, a host folder, /etc/shadow and the daemon's /proc entry.
    symlinkSync(join(hostDir, 'secret.txt'), join(pkg, 'abs-file'));
    symlinkSync('../host-only/secret.txt', join(pkg, 'rel-file'));
    symlinkSync(hostDir, join(pkg, 'abs-dir'));
    symlinkSync('/etc/shadow', join(pkg, 'shadow'));
    symlinkSync(`/proc/${process.pid}/environ`, join(pkg, 'daemon-environ'));
    // For the thread, so its import of 'd2box/hooks' resolves; in the sandbox this link dangles and
    // the sandbox's own /node_modules/d2box serves.
    mkdirSync(join(pkg, 'node_modules'));
    symlinkSync(process.cwd(), join(pkg, 'node_modules', 'd2box'));
    const links = ['abs-file', 'rel-file', 'abs-dir', 'shadow', 'daemon-environ'];
    type Outcome = Record<string, { read?: string; listed?: string[]; error?: string }>;
    async function tryLinks(isolation: 'thread' | 'process'): Promise<Outcome> {
      const file = join(out, `${isolation}.json`);
      await hooks.loadLibraries([{ library: join(pkg, 'index.mjs'), parameters: { links, out: file }, sandbox: { isolation, 'allow-write': isolation === 'process' ? [out] : [] } }]);
      await hooks.unloadLibraries();
      return JSON.parse(readFileSync(file, 'utf8')) as Outcome;
    }
    // The control: in a thread (nothing contains a thread) the links lead out, so the attack is real.
    const inThread = await tryLinks('thread');
    expect(inThread['abs-file']!.read).toBe('HOST-SECRET');
    expect(inThread['rel-file']!.read).toBe('HOST-SECRET');
    expect(inThread['abs-dir']!.listed).toEqual(['secret.txt']);
    const outcome = await tryLinks('process');
    console.log(`figure: symlinks: ${JSON.stringify(outcome)}`);
    for (const link of links) {
      expect(outcome[link], link).toHaveProperty('error');
      expect(outcome[link]!.read, link).toBeUndefined();
      expect(outcome[link]!.listed, link).toBeUndefined();
    }
  });
});

describe.each(['thread', 'process'] as const)("d2_srv_configured's error text from a library (%s)", (isolation) => {
  it('past the argument bounds (1 MB; in a process, the channel frame): the library fails as "invalid-argument", the configuration is refused', async () => {
    await hooks.loadLibraries([{ library: CONFIGURED_ERROR, parameters: { size: 4 * 1024 * 1024 }, sandbox: { isolation, 'callout-timeout-ms': 20_000 } }]);
    const result = await hooks.configured({ DhcpDdns: {} }, {});
    expect(result).toEqual({ accepted: false, error: expect.stringMatching(/failed \(invalid-argument\): /) });
  });

  it('200 KB with newlines and escapes, within the bound: refused, the answer on one line and cut to 1024 chars', async () => {
    const size = 200 * 1024; // under both bounds: 1 MB of arguments (thread), 256 Ki chars a string (process channel)
    await hooks.loadLibraries([{ library: CONFIGURED_ERROR, parameters: { size }, sandbox: { isolation, 'callout-timeout-ms': 20_000 } }]);
    const result = await hooks.configured({ DhcpDdns: {} }, {});
    expect(result.accepted).toBe(false);
    const error = (result as { error: string }).error;
    expect(error.length).toBeLessThan(2048);
    expect(error).not.toMatch(/[\n\r\u001b]/);
    expect(error).toMatch(/more chars\)$/);
    console.log(`figure: configured error (${isolation}): ${error.length} chars: ${error.slice(0, 140)}`);
  });
});

describe.each(['thread', 'process'] as const)('control commands a library registers (%s)', (isolation) => {
  beforeEach(async () => {
    await hooks.loadLibraries([{ library: COMMANDS, parameters: {}, sandbox: { isolation, 'callout-timeout-ms': 20_000 } }]);
  });

  it('a response of the wrong shape or type: result 1 naming the library, not what it set', async () => {
    for (const command of ['odd-shape', 'bad-result']) {
      const answer = await hooks.callCommandHandlers(command);
      expect(answer.result, command).toBe(1);
      expect(answer.text, command).toMatch(/failed in hook library .*invalid-argument/);
      expect(answer.text, command).not.toContain('forged');
    }
  });

  it('an answer of 4 MB: result 1, refused at the argument bound', async () => {
    const answer = await hooks.callCommandHandlers('huge');
    expect(answer.result).toBe(1);
    expect(answer.text).toMatch(/invalid-argument/);
    expect(JSON.stringify(answer).length).toBeLessThan(4096);
  });

  it("a built-in's name ('shutdown'): registered and routed to the library, as Kea allows (not contained)", async () => {
    expect(hooks.commandHandlersPresent('shutdown')).toBe(true);
    expect(await hooks.callCommandHandlers('shutdown')).toMatchObject({ result: 0, text: 'taken over by a library' });
  });
});
