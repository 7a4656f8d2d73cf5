/**
 * A hostile hook library, for real (issue 8): test/fixtures/hostile.mjs tries,
 * from load(), a plain timer, an IOService timer and select_key, to read the
 * daemon's configuration, a TSIG key file, /etc/shadow and the daemon's
 * /proc/<pid>/environ, to write outside its allowed paths, to start `sh` and a
 * worker thread, to send a datagram and reach a control socket on this host,
 * to signal the daemon, and to exhaust memory.
 *
 * For "isolation": "process" every attempt is denied AND the test checks on its
 * own side that the thing did not happen: files unchanged or absent, no marker
 * of a process or thread, nothing at the UDP listener or the unix socket, no
 * signal in this process (the "daemon" of the in-process tests), no secret in
 * anything the library reports. The same fixture in "thread" mode measures what
 * that mode does not contain, and a run inside bubblewrap without Node's
 * permission model measures the OS walls alone. The outcomes make the table in
 * docs/isolation.md: set D2BOX_SANDBOX_TABLE=<file> to have it written there.
 *
 * The daemon keeps serving throughout: a healthy library answers every select_key
 * while the hostile one dies of memory exhaustion, the event loop keeps ticking,
 * and the real daemon with the hostile library in process mode carries NCRs to a
 * real BIND 9 while the library attacks on every call and keeps running out of memory.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { HooksLoadError, HooksManager } from '../src/hooks/hooks-manager.js';
import { SandboxPolicySchema, type HookLibraryConfigInput } from '../src/hooks/library-config.js';
import type { LibraryStatsSnapshot } from '../src/hooks/library-stats.js';
import { sandboxCommand } from '../src/hooks/process-sandbox.js';
import { NextStep, type NextStepStatus } from '../src/hooks/protocol.js';
import { Logger, stderrSink, type LogRecord } from '../src/log/logger.js';
import { NcrSender } from '../src/ncr/ncr-sender.js';
import { CLI, Daemon, sleep } from './control-daemon.js';
import { configInput, configJson, ncr, type ConfigSpec } from './fixtures/d2-harness.js';
import { digRecords, freePort, namesWithoutA, startBind9 } from './support/bind9.js';
import { waitFor } from './support/wait.js';

const HOSTILE = resolve('test/fixtures/hostile.mjs');
const BASIC = resolve('test/fixtures/basic.mjs');

/** The daemon's TSIG key (in its configuration) and another one, in a BIND-style key file. */
const KEY_SECRET = randomBytes(32).toString('base64');
const FILE_SECRET = randomBytes(32).toString('base64');
const D2_KEY = { name: 'd2.key', algorithm: 'HMAC-SHA256', secret: KEY_SECRET };
const BASIC_KEY = { name: 'basic.key.', algorithm: 'HMAC-SHA512', secret: 'YmFzaWMta2V5' };
const SERVER_IP = '192.0.2.53';
const SPEC: ConfigSpec = {
  port: 53001,
  keys: [D2_KEY],
  forward: [{ name: 'example.com.', key: 'd2.key', servers: [{ port: 53 }] }],
};

const ATTACKS = [
  'read-config', 'read-key-file', 'read-shadow', 'read-environ', 'env', 'write-outside',
  'modify-config', 'spawn', 'worker', 'udp', 'control-socket', 'signal',
] as const;
type Attack = (typeof ATTACKS)[number];
const PLACES = ['load', 'timer', 'io-timer', 'callout'] as const;
type Place = (typeof PLACES)[number];

type Row = Attack | 'oom' | 'hang' | 'cpu' | 'fds';
const LABELS: Record<Row, string> = {
  'read-config': "read the daemon's configuration file (TSIG secret inside)",
  'read-key-file': 'read a TSIG key file',
  'read-shadow': 'read `/etc/shadow`',
  'read-environ': "read `/proc/<daemon pid>/environ`",
  env: "see the daemon's environment (`process.env`)",
  'write-outside': 'create a file outside `allow-write`',
  'modify-config': "append to the daemon's configuration file",
  spawn: 'run `sh` (`child_process`)',
  worker: 'start a worker thread',
  udp: 'send a UDP datagram to a listener on 127.0.0.1',
  'control-socket': 'connect to a unix control socket',
  signal: 'signal the daemon (`process.kill(pid, "SIGUSR2")`)',
  oom: 'exhaust memory (`max-heap-mb` 64)',
  hang: 'loop forever in a callout (`callout-timeout-ms` 500)',
  cpu: 'burn CPU past `max-cpu-seconds` 1 (`callout-timeout-ms` 15000)',
  fds: 'open files without end (`max-open-files` 64; in a thread, stopped at 200)',
};

interface Attempt {
  ok: boolean;
  code?: string;
  permission?: string;
  message?: string;
  data?: unknown;
  /** A worker thread that came online before it failed. */
  online?: boolean;
}
type Attempts = Record<Attack, Attempt>;
interface HostileReport {
  load?: Attempts;
  timer?: Attempts;
  'io-timer'?: Attempts;
  callout?: Attempts;
  seen?: {
    json_config?: { secrets: unknown[]; text: string };
    server_config?: { secrets: unknown[]; text: string };
    tsig_key?: Record<string, unknown> | null;
  };
  fds?: { opened: number; code?: string };
}

let tmp: string;
let configFile: string;
let configText: string;
let keyFile: string;
let outsideDir: string;
let allowedDir: string;
let controlPath: string;
let udp: dgram.Socket;
let udpPort: number;
let control: net.Server;
let datagrams: string[] = [];
let controlConnections = 0;
let controlData: string[] = [];
let signals = 0;
const onSignal = (): void => {
  signals++;
};
let logs: LogRecord[] = [];
const managers: HooksManager[] = [];
/** Table cells: attempt → column → text. */
const measured: Partial<Record<Row, Record<string, string>>> = {};

beforeAll(async () => {
  // A hostile library that signals its "daemon" in thread mode signals this process.
  process.on('SIGUSR2', onSignal);
  Logger.setSink((record) => {
    if (logs.length < 50_000) logs.push(record);
  });
  tmp = mkdtempSync(join(tmpdir(), 'd2box-sandbox-'));
  configFile = join(tmp, 'kea-dhcp-ddns.conf');
  configText = JSON.stringify(configJson(SPEC), null, 2);
  keyFile = join(tmp, 'd2.key');
  outsideDir = join(tmp, 'outside');
  allowedDir = join(tmp, 'allowed');
  mkdirSync(outsideDir);
  mkdirSync(allowedDir);
  controlPath = join(tmp, 'control.sock');
  udp = dgram.createSocket('udp4');
  udp.on('message', (m) => datagrams.push(m.toString()));
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
  udpPort = udp.address().port;
  control = net.createServer((socket) => {
    controlConnections++;
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => controlData.push(d));
    socket.on('error', () => {});
    socket.end();
  });
  await new Promise<void>((r) => control.listen(controlPath, () => r()));
});

beforeEach(() => {
  // The world the library attacks, as it was.
  writeFileSync(configFile, configText);
  writeFileSync(keyFile, `key "d2.key" {\n\talgorithm hmac-sha256;\n\tsecret "${FILE_SECRET}";\n};\n`);
  for (const dir of [outsideDir, allowedDir]) for (const f of readdirSync(dir)) rmSync(join(dir, f), { force: true });
  datagrams = [];
  controlConnections = 0;
  controlData = [];
  signals = 0;
  logs = [];
});

afterAll(async () => {
  for (const hooks of managers.splice(0)) await hooks.unloadLibraries();
  process.off('SIGUSR2', onSignal);
  Logger.setSink(stderrSink);
  await new Promise<void>((r) => udp.close(() => r()));
  await new Promise<void>((r) => control.close(() => r()));
  rmSync(tmp, { recursive: true, force: true });
  const out = process.env.D2BOX_SANDBOX_TABLE;
  if (out) writeFileSync(out, table());
});

// ---------------------------------------------------------------------------
// helpers

function hostileParams(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    'config-file': configFile,
    'key-file': keyFile,
    'daemon-pid': process.pid,
    'outside-dir': outsideDir,
    'udp-port': udpPort,
    'control-socket': controlPath,
    'timer-ms': 20,
    ...over,
  };
}

type Sandbox = NonNullable<HookLibraryConfigInput['sandbox']>;

/** A HooksManager with the hostile library (and the healthy basic.mjs after it), configured. */
async function start(sandbox: Sandbox, opts: { params?: Record<string, unknown>; basic?: boolean } = {}): Promise<HooksManager> {
  const hooks = new HooksManager({ baseDir: process.cwd() });
  managers.push(hooks);
  const libraries: HookLibraryConfigInput[] = [{
    library: HOSTILE,
    parameters: hostileParams(opts.params),
    sandbox: { 'callout-timeout-ms': 10_000, 'max-heap-mb': 64, 'on-failure': 'continue', ...sandbox },
  }];
  if (opts.basic) libraries.push({ library: BASIC, parameters: { keys: { [SERVER_IP]: BASIC_KEY } } });
  await hooks.loadLibraries(libraries);
  const input = configInput(SPEC);
  expect(await hooks.configured(input.json, input.config)).toEqual({ accepted: true });
  return hooks;
}

async function stop(hooks: HooksManager): Promise<void> {
  managers.splice(managers.indexOf(hooks), 1);
  await hooks.unloadLibraries();
}

interface Decision {
  status: NextStepStatus;
  failures: { library: string; failure: { kind: string; message: string } }[];
  tsigKey: unknown;
  report: HostileReport | undefined;
}

/** One select_key call; `mode` (current_server.hostname) tells hostile.mjs what to do. */
async function selectKey(hooks: HooksManager, mode = 'report', tsigKey: unknown = null): Promise<Decision> {
  const h = await hooks.createCalloutHandle();
  h.setArgument('current_server', { 'ip-address': SERVER_IP, port: 53, hostname: mode });
  h.setArgument('tsig_key', tsigKey);
  const report = await hooks.callCallouts('select_key', h);
  const decision: Decision = {
    status: h.getStatus(),
    failures: report.failures as Decision['failures'],
    tsigKey: h.getArgument('tsig_key'),
    report: h.hasArgument('hostile_report') ? h.getArgument<HostileReport>('hostile_report') : undefined,
  };
  await h.destroy();
  return decision;
}

/** Waits until both timers have attacked, then attacks from select_key: every place's attempts. */
async function attackEverywhere(hooks: HooksManager): Promise<Record<Place, Attempts>> {
  let report: HostileReport | undefined;
  for (let i = 0; i < 200; i++) {
    report = (await selectKey(hooks)).report;
    if (report?.timer && report['io-timer']) break;
    await sleep(25);
  }
  expect(report?.timer, 'the plain timer attacked').toBeDefined();
  expect(report?.['io-timer'], 'the IOService timer attacked').toBeDefined();
  const attacked = (await selectKey(hooks, 'attack')).report!;
  return { load: attacked.load!, timer: attacked.timer!, 'io-timer': attacked['io-timer']!, callout: attacked.callout! };
}

function stats(hooks: HooksManager, library = HOSTILE): LibraryStatsSnapshot {
  const s = hooks.getLibraryStatistics().find((x) => x.library === library);
  if (!s) throw new Error(`no statistics for ${library}`);
  return s;
}

/** Whether the attempt's effect is there, seen from outside the library (never from its own word). */
function happened(attack: Attack, place: string, attempt: Attempt): boolean {
  switch (attack) {
    case 'read-config':
      return JSON.stringify(attempt).includes(KEY_SECRET);
    case 'read-key-file':
      return JSON.stringify(attempt).includes(FILE_SECRET);
    case 'read-shadow':
    case 'read-environ':
      return attempt.ok && /^[1-9]\d* bytes$/.test(String(attempt.data));
    case 'env':
      return daemonVariables(attempt).length > 0;
    case 'write-outside':
      return existsSync(join(outsideDir, `written-by-${place}`));
    case 'modify-config':
      return readFileSync(configFile, 'utf8').includes(`// hostile ${place}`);
    case 'spawn':
      return existsSync(join(outsideDir, `spawned-${place}`));
    case 'worker':
      return existsSync(join(outsideDir, `worker-${place}`));
    case 'udp':
      return datagrams.includes(`hostile ${place}`);
    case 'control-socket':
      return controlData.some((d) => d.includes(`"where":"${place}"`));
    case 'signal':
      // Not attributable to a place: a signal that arrived counts for every attempt that claims one.
      return attempt.ok && signals > 0;
  }
}

const EFFECT: Record<Attack, [string, string]> = {
  'read-config': ['secret read', 'nothing read'],
  'read-key-file': ['secret read', 'nothing read'],
  'read-shadow': ['read', 'nothing read'],
  'read-environ': ['read', 'nothing read'],
  env: ["the daemon's variables", 'empty'],
  'write-outside': ['file created', 'no file'],
  'modify-config': ['file changed', 'file unchanged'],
  spawn: ['`sh` ran (marker written)', 'no process (no marker)'],
  worker: ['thread ran (marker written)', 'no marker written'],
  udp: ['datagram arrived', 'nothing arrived'],
  'control-socket': ['connected', 'no connection'],
  signal: ['signal delivered', 'no signal'],
};

/** The daemon's environment variables among those the library saw (PWD is the library's own folder). */
function daemonVariables(attempt: Attempt): string[] {
  return String(attempt.data ?? '').split(' ').filter((name) => name && name !== 'PWD' && !name.startsWith('NODE_') && name in process.env);
}

/** What the library got, in a few words. */
function view(attack: Attack, a: Attempt): string {
  if (attack === 'env') {
    const names = String(a.data ?? '').split(' ').filter(Boolean);
    return names.length <= 3 ? `sees ${names.length ? names.map((n) => `\`${n}\``).join(', ') : 'nothing'}` : `sees ${names.length} variables`;
  }
  if (a.ok) return attack === 'udp' ? 'sent without error' : 'succeeded';
  return `${a.online ? 'thread started; inside it: ' : ''}${a.code}${a.permission ? ` (${a.permission})` : ''}`;
}

/** One table cell from the attempts of every place, checking they agree. */
function cell(attack: Attack, byPlace: Record<string, Attempt>): string {
  const places = Object.keys(byPlace);
  const views = new Set(places.map((p) => view(attack, byPlace[p]!)));
  const effects = places.filter((p) => happened(attack, p, byPlace[p]!)).length;
  const [yes, no] = EFFECT[attack];
  const effect = effects === 0 ? no : `${yes}${places.length > 1 ? ` (${effects}/${places.length})` : ''}`;
  return `${[...views].join(' / ')} → ${effect}`;
}

function record(column: string, byPlace: Record<string, Attempts>): void {
  for (const attack of ATTACKS) {
    const attempts = Object.fromEntries(Object.entries(byPlace).map(([p, a]) => [p, a[attack]]));
    (measured[attack] ??= {})[column] = cell(attack, attempts);
  }
}

const COLUMNS = ['thread', 'process', 'bwrap alone'] as const;

function table(): string {
  const lines = [
    `| attempt (from load, a timer, an IOService timer, select_key) | \`thread\` | \`process\` | bubblewrap + prlimit alone (permission model off) |`,
    '| --- | --- | --- | --- |',
  ];
  for (const attack of [...ATTACKS, 'oom', 'hang', 'cpu', 'fds'] as const) {
    const row = measured[attack] ?? {};
    lines.push(`| ${LABELS[attack]} | ${COLUMNS.map((c) => row[c] ?? '—').join(' | ')} |`);
  }
  return `${lines.join('\n')}\n`;
}

/** Everything the library reported, as text: no secret may be in it. */
/**
 * Seen from outside, once the attempts had time to land: the config file as it was,
 * nothing written outside, nothing at the listeners, no signal, and no secret in
 * what the library reported.
 */
async function expectNothingLanded(reported: unknown): Promise<void> {
  await sleep(200);
  expect(readFileSync(configFile, 'utf8')).toBe(configText);
  expect(outsideFiles()).toEqual([]);
  expect(datagrams).toEqual([]);
  expect(controlConnections).toBe(0);
  expect(signals).toBe(0);
  expectNoSecrets(reported);
}

function expectNoSecrets(value: unknown): void {
  const text = JSON.stringify(value);
  expect(text).not.toContain(KEY_SECRET);
  expect(text).not.toContain(FILE_SECRET);
  expect(text).not.toMatch(/root:[^:]*:\d+:/); // a line of /etc/shadow
}

/** PIDs of this host's processes with `arg` in their command line. */
function processesWith(arg: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').includes(arg)) pids.push(Number(entry));
    } catch {
      /* gone meanwhile */
    }
  }
  return pids;
}

/** Files the library left in the folder it may not write. */
const outsideFiles = (): string[] => readdirSync(outsideDir).sort();

// ---------------------------------------------------------------------------

describe('isolation "process": a hostile library', () => {
  it('every attempt from load, a timer, an IOService timer and select_key is denied, and none of them happened', async () => {
    const hooks = await start({ isolation: 'process' });
    const byPlace = await attackEverywhere(hooks);
    record('process', byPlace);
    for (const place of PLACES) {
      const a = byPlace[place];
      const denied = { ok: false, code: 'ERR_ACCESS_DENIED' };
      expect(a['read-config'], place).toMatchObject({ ...denied, permission: 'FileSystemRead' });
      expect(a['read-key-file'], place).toMatchObject({ ...denied, permission: 'FileSystemRead' });
      expect(a['read-shadow'], place).toMatchObject({ ...denied, permission: 'FileSystemRead' });
      expect(a['read-environ'], place).toMatchObject({ ...denied, permission: 'FileSystemRead' });
      expect(daemonVariables(a.env), place).toEqual([]);
      expect(a['write-outside'], place).toMatchObject({ ...denied, permission: 'FileSystemWrite' });
      expect(a['modify-config'], place).toMatchObject({ ...denied, permission: 'FileSystemWrite' });
      expect(a.spawn, place).toMatchObject({ ...denied, permission: 'ChildProcess' });
      expect(a.worker, place).toMatchObject({ ...denied, permission: 'WorkerThreads' });
      // Node's permission model does not cover the network or signals: the namespaces do.
      expect(a.udp, place).toMatchObject({ ok: true, data: 'sent' }); // into the sandbox's own loopback
      expect(a['control-socket'], place).toMatchObject({ ok: false, code: 'ENOENT' }); // not in its file system
      expect(a.signal, place).toMatchObject({ ok: false, code: 'ESRCH' }); // not in its PID namespace
      for (const attack of ATTACKS) expect(happened(attack, place, a[attack]), `${attack} from ${place}`).toBe(false);
    }
    await expectNothingLanded(byPlace);
    expect(stats(hooks)).toMatchObject({ isolation: 'process', state: 'ready', restarts: 0 });
    await stop(hooks);
  });

  it('memory exhaustion ends as an "oom" failure and one restart; a healthy library answers every call meanwhile; the loop keeps ticking', async () => {
    const hooks = await start({ isolation: 'process' }, { basic: true, params: { 'attack-in-load': false } });
    let last = performance.now();
    let maxGap = 0;
    const ticker = setInterval(() => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
    }, 5);
    try {
      const before = await selectKey(hooks);
      expect(before.tsigKey).toEqual(BASIC_KEY);
      const oom = selectKey(hooks, 'oom');
      // Calls while the library fills its heap, dies and comes back: the healthy one answers each.
      const others = Array.from({ length: 30 }, (_, i) => sleep(i * 20).then(() => selectKey(hooks)));
      const [dead, ...rest] = await Promise.all([oom, ...others]);
      expect(dead.failures).toEqual([{ library: HOSTILE, failure: expect.objectContaining({ kind: 'oom' }) }]);
      expect(dead.status).toBe(NextStep.CONTINUE); // on-failure continue
      expect(dead.tsigKey).toEqual(BASIC_KEY);
      for (const r of rest) {
        expect(r.tsigKey).toEqual(BASIC_KEY);
        expect(r.status).toBe(NextStep.CONTINUE);
        for (const f of r.failures) expect(f).toMatchObject({ library: HOSTILE, failure: { kind: 'oom' } });
      }
      await waitFor('the replacement to be ready', () => stats(hooks).state === 'ready');
      const s = stats(hooks);
      expect(s).toMatchObject({ isolation: 'process', restarts: 1, state: 'ready' });
      expect(s.failures.oom).toBeGreaterThanOrEqual(1);
      expect(Object.entries(s.failures).filter(([k, n]) => n > 0 && k !== 'oom')).toEqual([]);
      expect(s.lastFailure?.message).toMatch(/heap limit/);
      expect(stats(hooks, BASIC)).toMatchObject({ isolation: 'thread', restarts: 0, state: 'ready' });
      expect(Object.values(stats(hooks, BASIC).failures).every((n) => n === 0)).toBe(true);
      const after = await selectKey(hooks);
      expect(after.failures).toEqual([]);
      expect(after.tsigKey).toEqual(BASIC_KEY);
      // The main loop never stalled while the library's process died and a new one started. The bound
      // is generous on purpose (two busy cores stall now and then for hundreds of ms): what it catches is
      // a host that waits synchronously for its sandbox, which takes seconds (up to load-timeout-ms).
      expect(maxGap).toBeLessThan(5000);
      (measured.oom ??= {}).process = `\`oom\` failure, process replaced (restarts ${s.restarts}); main loop's longest gap ${Math.round(maxGap)} ms`;
    } finally {
      clearInterval(ticker);
    }
    await stop(hooks);
  });

  it('a callout that never ends: timed out, the whole sandbox killed (no process left behind), replaced', async () => {
    // A heap size no other test uses marks this library's sandbox processes in /proc.
    const flag = '--max-old-space-size=67';
    const hooks = await start({ isolation: 'process', 'callout-timeout-ms': 500, 'max-heap-mb': 67 }, { params: { 'attack-in-load': false } });
    const first = processesWith(flag);
    expect(first.length).toBeGreaterThan(0);
    const d = await selectKey(hooks, 'spin');
    expect(d.failures).toEqual([{ library: HOSTILE, failure: expect.objectContaining({ kind: 'timeout' }) }]);
    await waitFor('the replacement to be ready', () => stats(hooks).state === 'ready');
    await waitFor('the spinning sandbox to be gone', () => first.every((pid) => !processesWith(flag).includes(pid)), 5000);
    expect((await selectKey(hooks)).failures).toEqual([]);
    const s = stats(hooks);
    expect(s).toMatchObject({ restarts: 1, timeouts: 1 });
    (measured.hang ??= {}).process = `\`timeout\`, sandbox killed (no process left), replaced (restarts ${s.restarts})`;
    await stop(hooks);
    await waitFor('no sandbox process left after unload', () => processesWith(flag).length === 0, 5000);
  });

  it('burning CPU past max-cpu-seconds: the kernel ends the sandbox long before the callout deadline; replaced', async () => {
    const hooks = await start({ isolation: 'process', 'max-cpu-seconds': 1, 'callout-timeout-ms': 15_000 }, { params: { 'attack-in-load': false } });
    const started = performance.now();
    const d = await selectKey(hooks, 'spin');
    const ms = Math.round(performance.now() - started);
    // No wall-clock bound: the kind says it. The callout deadline (15 s) would have made it a
    // 'timeout'; anything else means the kernel's CPU limit ended the sandbox first.
    expect(d.failures).toHaveLength(1);
    const failure = d.failures[0]!.failure;
    expect(failure.kind).not.toBe('timeout');
    await waitFor('the replacement to be ready', () => stats(hooks).state === 'ready');
    expect((await selectKey(hooks)).failures).toEqual([]);
    expect(stats(hooks).restarts).toBe(1);
    (measured.cpu ??= {}).process = `ended after ${ms} ms, replaced; counted as \`${failure.kind}\` ("${failure.message}")`;
    await stop(hooks);
  });

  // bwrap reports a command killed by a signal as exit code 128 + signal; prlimit's soft
  // limit sends SIGXCPU, which the host must name as the CPU limit, not as an exit.
  it('the failure of a library killed at max-cpu-seconds names the CPU limit, not an exit of the library', async () => {
    const hooks = await start({ isolation: 'process', 'max-cpu-seconds': 1, 'callout-timeout-ms': 15_000 }, { params: { 'attack-in-load': false } });
    try {
      const d = await selectKey(hooks, 'spin');
      expect(d.failures[0]?.failure.kind).toBe('cpu-limit');
      expect(d.failures[0]?.failure.message).toMatch(/CPU time|max-cpu-seconds/);
    } finally {
      await stop(hooks);
    }
  });

  it('opening files without end stops at max-open-files (EMFILE); the library stays in service', async () => {
    const hooks = await start({ isolation: 'process', 'max-open-files': 64 }, { params: { 'attack-in-load': false } });
    const d = await selectKey(hooks, 'fds');
    expect(d.failures).toEqual([]);
    const fds = d.report!.fds!;
    expect(fds.code).toBe('EMFILE');
    expect(fds.opened).toBeLessThan(64);
    expect((await selectKey(hooks)).failures).toEqual([]);
    expect(stats(hooks)).toMatchObject({ restarts: 0, state: 'ready' });
    (measured.fds ??= {}).process = `EMFILE after ${fds.opened} → the library's own limit; it stays in service`;
    await stop(hooks);
  });

  it('"allow-write": [dir] lets it write there and nowhere else', async () => {
    const hooks = await start({ isolation: 'process', 'allow-write': [allowedDir] }, { params: { 'allowed-dir': allowedDir } });
    const byPlace = await attackEverywhere(hooks);
    for (const place of PLACES) {
      expect(byPlace[place]['write-allowed' as Attack], place).toEqual({ ok: true });
      expect(readFileSync(join(allowedDir, `written-by-${place}`), 'utf8')).toBe(`hostile ${place}`);
      expect(byPlace[place]['write-outside'], place).toMatchObject({ ok: false, code: 'ERR_ACCESS_DENIED', permission: 'FileSystemWrite' });
      expect(byPlace[place]['modify-config'], place).toMatchObject({ ok: false, code: 'ERR_ACCESS_DENIED' });
      // Reading back what it may write does not open the rest of the file system.
      expect(byPlace[place]['read-config'], place).toMatchObject({ ok: false, code: 'ERR_ACCESS_DENIED' });
    }
    expect(readdirSync(allowedDir).sort()).toEqual(PLACES.map((p) => `written-by-${p}`).sort());
    expect(outsideFiles()).toEqual([]);
    expect(readFileSync(configFile, 'utf8')).toBe(configText);
    await stop(hooks);
  });

  it('the OS walls alone hold too: the same attempts inside bubblewrap + prlimit with Node\'s permission model taken out', async () => {
    const command = sandboxCommand(HOSTILE, SandboxPolicySchema.parse({ isolation: 'process' }));
    // The sandbox's node command line, minus the permission flags and the worker: a plain script instead.
    const at = command.args.lastIndexOf(process.execPath);
    expect(command.args.slice(at + 1)).toContain('--experimental-permission');
    const script = `import { probe } from ${JSON.stringify(pathToFileURL(HOSTILE).href)};\n`
      + `process.stdout.write(JSON.stringify(await probe(${JSON.stringify(hostileParams())}, 'bwrap-alone')));`;
    // The channel is d2box's own socket on fd 3, never Node's IPC channel: nothing makes node look for one.
    expect(command.args.some((arg) => arg.startsWith('NODE_CHANNEL_'))).toBe(false);
    const outer = command.args.slice(0, at + 1);
    const args = [...outer, '--input-type=module', '-e', script];
    const out = await new Promise<string>((resolvePromise, reject) => {
      execFile(command.file, args, { env: command.env, timeout: 20_000, encoding: 'utf8' }, (err, stdout, stderr) => {
        if (err) reject(new Error(`${err.message}\n${stderr}`));
        else resolvePromise(stdout);
      });
    });
    const attempts = JSON.parse(out) as Attempts;
    record('bwrap alone', { 'bwrap-alone': attempts });
    for (const attack of ['read-config', 'read-key-file', 'read-shadow', 'read-environ', 'write-outside', 'modify-config', 'spawn', 'control-socket'] as const) {
      expect(attempts[attack], attack).toMatchObject({ ok: false, code: 'ENOENT' }); // not in its mount/PID namespaces
    }
    expect(daemonVariables(attempts.env)).toEqual([]);
    expect(attempts.signal).toMatchObject({ ok: false, code: 'ESRCH' });
    for (const attack of ATTACKS) expect(happened(attack, 'bwrap-alone', attempts[attack]), attack).toBe(false);
    await expectNothingLanded(attempts);
  });
});

describe('isolation "process": TSIG secrets', () => {
  const quiet = { 'attack-in-load': false };

  it('by default the library sees json_config, server_config and select_key\'s tsig_key without `secret`', async () => {
    const hooks = await start({ isolation: 'process' }, { params: quiet });
    const r = await selectKey(hooks, 'report', D2_KEY);
    const seen = r.report!.seen!;
    expect(seen.json_config!.secrets).toEqual([]);
    expect(seen.server_config!.secrets).toEqual([]);
    expect(seen.json_config!.text).toContain('"d2.key"'); // the key is there, by name
    expect(seen.tsig_key).toEqual({ name: 'd2.key', algorithm: 'HMAC-SHA256' });
    expectNoSecrets(r.report);
    // The host's handle keeps the whole key.
    expect(r.tsigKey).toEqual(D2_KEY);
    await stop(hooks);
  });

  it('with "see-secrets": true it sees them', async () => {
    const hooks = await start({ isolation: 'process', 'see-secrets': true }, { params: quiet });
    const r = await selectKey(hooks, 'report', D2_KEY);
    const seen = r.report!.seen!;
    expect(seen.json_config!.secrets).toEqual([KEY_SECRET]);
    expect(seen.server_config!.secrets).toContain(KEY_SECRET);
    expect(seen.tsig_key).toEqual(D2_KEY);
    await stop(hooks);
  });

  it('a key returned by name is restored from the configuration; one with a made-up secret gets the configured one; an unknown name is refused', async () => {
    const hooks = await start({ isolation: 'process', 'on-failure': 'drop' }, { params: quiet });
    const byName = await selectKey(hooks, `key:${JSON.stringify({ name: 'D2.KEY.' })}`);
    expect(byName.failures).toEqual([]);
    expect(byName.tsigKey).toEqual(D2_KEY);
    const ownSecret = await selectKey(hooks, `key:${JSON.stringify({ name: 'd2.key', algorithm: 'HMAC-SHA256', secret: 'QUJDREVGR0g=' })}`);
    expect(ownSecret.failures).toEqual([]);
    expect(ownSecret.tsigKey).toEqual(D2_KEY);
    const none = await selectKey(hooks, `key:null`, D2_KEY);
    expect(none.failures).toEqual([]);
    expect(none.tsigKey).toBeNull();

    const unknown = await selectKey(hooks, `key:${JSON.stringify({ name: 'stolen.key', algorithm: 'HMAC-SHA256', secret: 'QUJDREVGR0g=' })}`, D2_KEY);
    expect(unknown.failures).toEqual([{ library: HOSTILE, failure: expect.objectContaining({ kind: 'invalid-argument', message: expect.stringMatching(/not a key of the configuration/) }) }]);
    expect(unknown.status).toBe(NextStep.DROP);
    expect(unknown.tsigKey).toEqual(D2_KEY); // unchanged
    const s = stats(hooks);
    expect(s.failures['invalid-argument']).toBe(1);
    expect(s).toMatchObject({ restarts: 0, state: 'ready' });
    await stop(hooks);
  });
});

describe('isolation "thread": the same library, measured', () => {
  it('contains faults, not intent: reads, writes, processes, threads, datagrams, connections and signals all go through', async () => {
    const hooks = await start({ isolation: 'thread' });
    const byPlace = await attackEverywhere(hooks);
    await waitFor('every datagram and connection to land', () => datagrams.length >= PLACES.length && controlData.length >= PLACES.length && signals >= PLACES.length, 5000);
    record('thread', byPlace);
    const root = process.getuid?.() === 0;
    for (const place of PLACES) {
      const a = byPlace[place];
      for (const attack of ATTACKS) {
        if (attack === 'read-shadow' && !root) continue; // readable by root only
        expect(a[attack], `${attack} from ${place}`).toMatchObject({ ok: true });
        expect(happened(attack, place, a[attack]), `${attack} from ${place}`).toBe(true);
      }
    }
    expect(outsideFiles()).toEqual(PLACES.flatMap((p) => [`spawned-${p}`, `worker-${p}`, `written-by-${p}`]).sort());
    expect(readFileSync(configFile, 'utf8')).not.toBe(configText);
    expect(controlConnections).toBe(PLACES.length);
    expect(signals).toBe(PLACES.length);
    // A thread sees the secrets by default (see-secrets defaults to true in a thread).
    expect(JSON.stringify(byPlace)).toContain(KEY_SECRET);

    // Memory exhaustion is contained in a thread as well: its own heap limit.
    const dead = await selectKey(hooks, 'oom');
    expect(dead.failures).toEqual([{ library: HOSTILE, failure: expect.objectContaining({ kind: 'oom' }) }]);
    await waitFor('the replacement thread to be ready', () => stats(hooks).state === 'ready');
    const s = stats(hooks);
    expect(s).toMatchObject({ isolation: 'thread', restarts: 1 });
    expect(s.failures.oom).toBe(1);
    (measured.oom ??= {}).thread = `\`oom\` failure, thread replaced (restarts ${s.restarts})`;
    await stop(hooks);
  });

  it('a callout that never ends: timed out, the thread terminated and replaced; no CPU or open-file limit of its own', async () => {
    const hooks = await start({ isolation: 'thread', 'callout-timeout-ms': 500 }, { params: { 'attack-in-load': false, 'fd-cap': 200 } });
    const d = await selectKey(hooks, 'spin');
    expect(d.failures).toEqual([{ library: HOSTILE, failure: expect.objectContaining({ kind: 'timeout' }) }]);
    await waitFor('the replacement thread to be ready', () => stats(hooks).state === 'ready');
    expect((await selectKey(hooks)).failures).toEqual([]);
    expect(stats(hooks)).toMatchObject({ restarts: 1, timeouts: 1 });
    (measured.hang ??= {}).thread = `\`timeout\`, thread terminated, replaced (restarts ${stats(hooks).restarts})`;
    (measured.cpu ??= {}).thread = 'no CPU limit (`max-cpu-seconds` is process mode only): only `callout-timeout-ms` ends it';
    const fds = (await selectKey(hooks, 'fds')).report!.fds!;
    expect(fds).toEqual({ opened: 200 }); // from the daemon's own descriptor table
    (measured.fds ??= {}).thread = 'all 200 opened → from the daemon\'s own descriptor table and limit';
    await stop(hooks);
  });
});

describe('where the sandbox cannot be built', () => {
  it('the daemon refuses a process-mode library, naming what is missing, and never runs it unconfined', async () => {
    // A PATH with prlimit and ldd but no bwrap.
    const bin = join(tmp, 'bin-without-bwrap');
    mkdirSync(bin, { recursive: true });
    for (const tool of ['prlimit', 'ldd']) symlinkSync(`/usr/bin/${tool}`, join(bin, tool));
    const file = join(tmp, 'refused.json');
    writeFileSync(file, JSON.stringify({
      DhcpDdns: {
        ...(configJson({ ...SPEC, port: await freePort() }) as { DhcpDdns: object }).DhcpDdns,
        'hooks-libraries': [{ library: HOSTILE, parameters: hostileParams(), sandbox: { isolation: 'process' } }],
      },
    }));
    const run = (args: string[]) => new Promise<{ code: number | null; out: string }>((resolvePromise) => {
      execFile(process.execPath, [CLI, ...args], { env: { ...process.env, PATH: bin }, timeout: 20_000, encoding: 'utf8' }, (err, stdout, stderr) => {
        resolvePromise({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, out: stdout + stderr });
      });
    });
    const report = await run(['-W']);
    expect(report.out).toMatch(/process: NOT available \(missing: bwrap \(not found in PATH\)\)/);
    const check = await run(['-T', file]);
    expect(check.code).toBe(1);
    expect(check.out).toMatch(/"isolation": "process" cannot run on this host \(missing: bwrap \(not found in PATH\)\); refusing to run the library unconfined/);
    const daemon = await run(['-c', file]);
    expect(daemon.code).toBe(1);
    expect(daemon.out).toMatch(/missing: bwrap \(not found in PATH\)/);
    // Nothing of the library ran: its load() would have attacked.
    await sleep(200);
    expect(datagrams).toEqual([]);
    expect(outsideFiles()).toEqual([]);
    expect(controlConnections).toBe(0);
  });
});

describe('the daemon against BIND 9, with the hostile library in process mode', () => {
  it('carries every NCR to BIND while the library attacks on every call and runs out of memory; hooks-status counts it', async () => {
    const bind = await startBind9({
      keys: [{ name: 'd2.key', algorithm: 'hmac-sha256', secret: KEY_SECRET }],
      zones: [{ name: 'example.com', updateKeys: ['d2.key'] }, { name: '2.0.192.in-addr.arpa', updateKeys: ['d2.key'] }],
    });
    const socket = join(tmp, 'd2box.sock');
    const daemonConfig = join(tmp, 'd2box.json');
    const port = await freePort();
    const writeConfig = (daemonPid?: number): string => {
      const text = JSON.stringify({
        DhcpDdns: {
          ...(configJson({
            port,
            timeoutMs: 2000,
            keys: [D2_KEY],
            forward: [{ name: 'example.com.', key: 'd2.key', servers: [{ port: bind.port }] }],
            reverse: [{ name: '2.0.192.in-addr.arpa.', key: 'd2.key', servers: [{ port: bind.port }] }],
          }) as { DhcpDdns: object }).DhcpDdns,
          'control-socket': { 'socket-type': 'unix', 'socket-name': socket },
          'hooks-libraries': [{
            library: HOSTILE,
            // Its own configuration file, its own PID: the real daemon's.
            parameters: hostileParams({ 'config-file': daemonConfig, 'daemon-pid': daemonPid ?? 999_999, 'select-key-mode': 'attack', 'oom-after': 5 }),
            sandbox: { isolation: 'process', 'on-failure': 'continue', 'max-heap-mb': 64, 'max-restarts': 50, 'callout-timeout-ms': 10_000 },
          }],
        },
      }, null, 2);
      writeFileSync(daemonConfig, text);
      return text;
    };
    writeConfig();
    const d = new Daemon(daemonConfig, socket);
    const sender = new NcrSender({ serverAddress: '127.0.0.1', serverPort: port });
    try {
      await d.ready();
      // Now that its PID is known, the library gets it: config-reload loads it again.
      const daemonText = writeConfig(d.pid);
      expect(await d.command('config-reload')).toMatchObject({ result: 0 });

      let maxStatusMs = 0;
      const ncrs = Array.from({ length: 12 }, (_, i) => ncr({ fqdn: `hostile-${i}.example.com.`, ipAddress: `192.0.2.${20 + i}` }));
      for (const n of ncrs) {
        await sender.send(n);
        const t0 = performance.now();
        expect(await d.command('status-get')).toMatchObject({ result: 0 });
        maxStatusMs = Math.max(maxStatusMs, performance.now() - t0);
        await sleep(100);
      }
      // Every NCR reaches BIND (checked through dig, never through d2box).
      expect(await namesWithoutA(bind.port, ncrs.map((n) => n.fqdn))).toEqual([]);
      for (const n of ncrs) expect((await digRecords(bind.port, n.fqdn, 'A')).map((r) => r.data)).toEqual([n.ipAddress]);

      let status = (await d.command('hooks-status')).arguments.libraries[0] as LibraryStatsSnapshot;
      for (let i = 0; i < 100 && status.state !== 'ready'; i++) {
        await sleep(50);
        status = (await d.command('hooks-status')).arguments.libraries[0] as LibraryStatsSnapshot;
      }
      expect(status).toMatchObject({ library: HOSTILE, isolation: 'process', state: 'ready', quarantineReason: null });
      expect(status.failures.oom).toBeGreaterThanOrEqual(2);
      expect(status.restarts).toBeGreaterThanOrEqual(2);
      expect(status.calls).toBeGreaterThanOrEqual(ncrs.length * 2);

      // The daemon is alive and answering, its files untouched, nothing reached this host's listeners.
      expect(d.child.exitCode).toBeNull();
      // Every status-get above was answered; the bound only catches a daemon stalled for many seconds
      // (generous: a status-get on two busy cores with a sandbox restarting can take a second or two).
      expect(maxStatusMs).toBeLessThan(10_000);
      expect(readFileSync(daemonConfig, 'utf8')).toBe(daemonText);
      expect(outsideFiles()).toEqual([]);
      expect(datagrams).toEqual([]);
      expect(controlConnections).toBe(0);
      expect(d.stderr() + d.stdout()).not.toContain(KEY_SECRET);
    } finally {
      await sender.close();
      await d.stop();
      await bind.stop();
    }
  }, 60_000);
});

describe('isolation "process": a library that writes to its channel itself', () => {
  it('forged log lines past the worker\'s limiter are cut by the host at twice the policy rate, and counted', async () => {
    const hooks = await start({ isolation: 'process', 'log-lines-per-second': 50 }, { params: { 'attack-in-load': false } });
    const before = logs.filter((r) => r.text.includes('forged line')).length;
    const d = await selectKey(hooks, 'forge-logs');
    expect(d.failures).toEqual([]);
    await waitFor('the forged lines to be handled', () => stats(hooks).logLinesSuppressed > 0);
    const written = logs.filter((r) => r.text.includes('forged line')).length - before;
    expect(written).toBeGreaterThan(0);
    expect(written).toBeLessThanOrEqual(2 * 50 + 5);
    expect(stats(hooks).logLinesSuppressed).toBeGreaterThanOrEqual(5000 - written);
    await stop(hooks);
  });
});

describe('policy keys that apply to one mode only', () => {
  it('"allow-write" on a thread is refused with an error naming it: a thread can write anywhere the daemon can', async () => {
    const hooks = new HooksManager({ baseDir: process.cwd() });
    const err = await hooks.loadLibraries([{ library: BASIC, sandbox: { isolation: 'thread', 'allow-write': [allowedDir] } }]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HooksLoadError);
    expect((err as Error).message).toMatch(/hooks-libraries\[0\]\.\[sandbox\]\.\[allow-write\]: "allow-write" applies to "isolation": "process" only/);
  });

  it('"allow-write" paths must be absolute and exist', async () => {
    for (const [path, why] of [['relative/dir', /must be absolute/], [join(allowedDir, 'no-such-dir'), /does not exist/]] as const) {
      const hooks = new HooksManager({ baseDir: process.cwd() });
      const err = await hooks.loadLibraries([{ library: BASIC, sandbox: { isolation: 'process', 'allow-write': [path] } }]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(HooksLoadError);
      expect((err as Error).message).toMatch(why);
    }
  });
});

describe('isolation "process": a library that lives outside d2box', () => {
  it('imports d2box/hooks (shown at /node_modules/d2box in the sandbox) and answers select_key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'd2box-outside-lib-'));
    try {
      const library = join(dir, 'outside.mjs');
      writeFileSync(library, [
        "import { HOOKS_VERSION, NextStep } from 'd2box/hooks';",
        'export const version = () => HOOKS_VERSION;',
        "export function select_key(h) { h.setArgument('tsig_key', { name: 'd2.key' }); h.setStatus(NextStep.CONTINUE); return 0; }",
      ].join('\n'));
      const hooks = new HooksManager({ baseDir: process.cwd() });
      managers.push(hooks);
      await hooks.loadLibraries([{ library, sandbox: { isolation: 'process' } }]);
      const input = configInput(SPEC);
      expect(await hooks.configured(input.json, input.config)).toEqual({ accepted: true });
      const h = await hooks.createCalloutHandle();
      h.setArgument('current_server', { 'ip-address': SERVER_IP, port: 53 }).setArgument('tsig_key', null);
      const report = await hooks.callCallouts('select_key', h);
      expect(report.failures).toEqual([]);
      // Named only; the host restored the configured key, secret included.
      expect(h.getArgument('tsig_key')).toMatchObject({ name: 'd2.key', secret: expect.any(String) });
      await h.destroy();
      await stop(hooks);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
