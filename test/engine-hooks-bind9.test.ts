/**
 * Hook behaviours of the D2 engine end to end: the real daemon (`node dist/src/cli.js -c`)
 * with hook libraries, NCRs over UDP, updates to a real BIND 9, and every outcome
 * read back through dig, the daemon's log and its control socket, never through
 * d2box's objects.
 *
 *   - a select_key callout that sets DROP itself (no throw): the server is skipped, the next tried;
 *   - a select_key key the engine cannot use: D2BOX_SELECT_KEY_INVALID, the server skipped
 *     (Kea: a callout that cannot make its key throws, which is DROP, which skips the server);
 *   - a multi-threading-compatible library, in a thread and in a sandboxed process: its callouts overlap;
 *   - libraries unloaded and loaded again on config-set and on config-reload;
 *   - context_create and context_destroy around each NCR;
 *   - a thread-mode library running out of heap next to a healthy one: every NCR lands.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { LibraryStatsSnapshot } from '../src/hooks/library-stats.js';
import { NcrSender } from '../src/ncr/ncr-sender.js';
import { Daemon, sleep, tempDir, writeJson } from './control-daemon.js';
import { configJson, ncr, silentServer, type ConfigSpec } from './fixtures/d2-harness.js';
import { digRecords, freePort, startBind9, type Bind9Server } from './support/bind9.js';

const FWD = 'example.com';
const REV4 = '2.0.192.in-addr.arpa';
/** Only the key a select_key library hands out may update this zone. */
const HOOKZONE = 'hooked.test';
/** A zone whose only DNS server is the silent one. */
const DEADZONE = 'dead.test';

const SELECT_KEY = resolve('test/fixtures/d2-select-key.mjs');
const FAULTY = resolve('test/fixtures/faulty-callout.mjs');
const LIFECYCLE = resolve('test/fixtures/checklist-lifecycle.mjs');
const REQUEST_CONTEXT = resolve('test/fixtures/checklist-request-context.mjs');

const d2Secret = randomBytes(32).toString('base64');
const hookSecret = randomBytes(32).toString('base64');
const D2_KEY = { name: 'd2.key', algorithm: 'HMAC-SHA256', secret: d2Secret };
const HOOK_KEY = { name: 'hook.key', algorithm: 'HMAC-SHA256', secret: hookSecret };

/** Generous: two noisy cores are shared with other test runs; a library's worker or sandbox can take seconds to start. */
const SANDBOX = { 'callout-timeout-ms': 10_000, 'load-timeout-ms': 20_000 };

type HookEntry = NonNullable<ConfigSpec['hooks']>[number];

let bind: Bind9Server;
let dead: Awaited<ReturnType<typeof silentServer>>;
let tmp: ReturnType<typeof tempDir>;
const running: { daemon: Daemon; sender: NcrSender }[] = [];

beforeAll(async () => {
  tmp = tempDir('d2box-engine-hooks-');
  bind = await startBind9({
    keys: [
      { name: 'd2.key', algorithm: 'hmac-sha256', secret: d2Secret },
      { name: 'hook.key', algorithm: 'hmac-sha256', secret: hookSecret },
    ],
    zones: [
      { name: FWD, updateKeys: ['d2.key'] },
      { name: REV4, updateKeys: ['d2.key'] },
      { name: HOOKZONE, updateKeys: ['hook.key'] },
    ],
  });
  dead = await silentServer();
}, 60_000);

afterEach(async () => {
  for (const { daemon, sender } of running.splice(0)) {
    await sender.close();
    await daemon.stop();
  }
});

afterAll(async () => {
  await dead?.close();
  await bind?.stop();
  tmp?.cleanup();
});

const bindServer = () => `127.0.0.1:${bind.port}`;
const deadServer = () => `127.0.0.1:${dead.port}`;

let seq = 0;
const file = (name: string) => join(tmp.dir, `${++seq}-${name}`);

/** The daemon's configuration: example.com fails over from the silent server to BIND; dead.test has only the silent one. */
function daemonConfig(port: number, socket: string, hooks: HookEntry[]): object {
  const json = configJson({
    port,
    timeoutMs: 1000,
    // hook.key is configured but no domain names it: only a library hands it out (a sandboxed
    // library without see-secrets can only name configured keys).
    keys: [D2_KEY, HOOK_KEY],
    forward: [
      { name: `${FWD}.`, key: 'd2.key', servers: [{ port: dead.port }, { port: bind.port }] },
      { name: `${DEADZONE}.`, key: 'd2.key', servers: [{ port: dead.port }] },
      { name: `${HOOKZONE}.`, servers: [{ port: bind.port }] },
    ],
    reverse: [{ name: `${REV4}.`, key: 'd2.key', servers: [{ port: bind.port }] }],
    hooks,
  }) as { DhcpDdns: Record<string, unknown> };
  return { DhcpDdns: { ...json.DhcpDdns, 'control-socket': { 'socket-type': 'unix', 'socket-name': socket } } };
}

interface Running {
  daemon: Daemon;
  sender: NcrSender;
  configFile: string;
  /** The configuration with other libraries, as config-set and the file take it. */
  config(hooks: HookEntry[]): object;
}

async function startDaemon(hooks: HookEntry[]): Promise<Running> {
  const port = await freePort();
  const socket = file('d2box.sock');
  const config = (h: HookEntry[]) => daemonConfig(port, socket, h);
  const configFile = writeJson(file('d2box.json'), config(hooks));
  const daemon = new Daemon(configFile, socket);
  const sender = new NcrSender({ serverAddress: '127.0.0.1', serverPort: port });
  running.push({ daemon, sender });
  await daemon.ready();
  return { daemon, sender, configFile, config };
}

const log = (d: Daemon) => d.stdout() + d.stderr();

/** Waits (bounded) until BIND serves `fqdn`'s A record; its addresses (empty if it never came). */
async function aRecords(fqdn: string, timeoutMs = 30_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 200 && Date.now() < deadline; i++) {
    const found = await digRecords(bind.port, fqdn, 'A');
    if (found.length > 0) return found.map((r) => r.data);
    await sleep(150);
  }
  return [];
}

/** Waits (bounded) until `count` NCRs have ended in the daemon, done or failed; its statistics then. */
async function ended(d: Daemon, count: number, timeoutMs = 30_000): Promise<Record<string, number>> {
  const deadline = Date.now() + timeoutMs;
  let s = await d.stats();
  for (let i = 0; i < 300 && Date.now() < deadline; i++) {
    if ((s['d2box.ncr-completed'] ?? 0) + (s['d2box.ncr-failed'] ?? 0) >= count) return s;
    await sleep(100);
    s = await d.stats();
  }
  throw new Error(`only ${(s['d2box.ncr-completed'] ?? 0) + (s['d2box.ncr-failed'] ?? 0)} of ${count} NCRs ended within ${timeoutMs} ms:\n${log(d)}`);
}

async function libraries(d: Daemon): Promise<LibraryStatsSnapshot[]> {
  const a = await d.command('hooks-status');
  expect(a.result).toBe(0);
  return a.arguments.libraries as LibraryStatsSnapshot[];
}

const failureTotal = (s: LibraryStatsSnapshot) => Object.values(s.failures).reduce((a, b) => a + b, 0);

/** The most callouts running at once, from the "select_key ran <start> <end>" lines the library logged. */
function mostAtOnce(text: string): { callouts: number; mostAtOnce: number } {
  const intervals = [...text.matchAll(/select_key ran (\d+) (\d+)/g)].map((m) => [Number(m[1]), Number(m[2])] as const);
  // Ends sort before starts at the same instant: touching intervals do not overlap.
  const events = intervals.flatMap(([start, end]) => [[start, 1], [end, -1]] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let most = 0;
  for (const [, step] of events) most = Math.max(most, (now += step));
  return { callouts: intervals.length, mostAtOnce: most };
}

describe('select_key next steps and keys, through the daemon to BIND', () => {
  it('a callout that sets DROP itself: that server is skipped unsent, the next one gets the update; with none left the NCR fails', async () => {
    const { daemon, sender } = await startDaemon([{ library: SELECT_KEY, parameters: { drop: [deadServer()] }, sandbox: SANDBOX }]);
    const before = dead.received();
    const landing = ncr({ fqdn: `drop-${seq}.${FWD}.`, ipAddress: '192.0.2.10' });
    const stranded = ncr({ fqdn: `drop-${seq}.${DEADZONE}.`, ipAddress: '192.0.2.11', reverseChange: false });
    await sender.send(landing);
    await sender.send(stranded);
    const s = await ended(daemon, 2);
    expect(await aRecords(landing.fqdn)).toEqual([landing.ipAddress]);
    expect(s).toMatchObject({ 'd2box.ncr-completed': 1, 'd2box.ncr-failed': 1, 'd2box.ncr-failed.no-more-servers': 1 });
    // Dropped means never sent: the silent server saw nothing from either NCR.
    expect(dead.received() - before).toBe(0);
    const skipped = log(daemon).match(new RegExp(`D2BOX_SERVER_SKIPPED.*127\\.0\\.0\\.1 port:${dead.port} \\(status 2\\)`, 'g')) ?? [];
    expect(skipped).toHaveLength(2);
    // The callout returned 0 having set DROP: nothing failed, nothing was turned into DROP by the host.
    const [status] = await libraries(daemon);
    expect(failureTotal(status!)).toBe(0);
    expect(status!.nonZeroReturns).toBe(0);
  });

  it('a key the engine cannot use: D2BOX_SELECT_KEY_INVALID, that server skipped unsent, the next tried; with none left the NCR fails', async () => {
    // Within select_key's schema (so the host passes it), but no HMAC-SHA256 MAC has 1024 bits.
    const unusable = { ...HOOK_KEY, name: 'unusable.key', 'digest-bits': 1024 };
    const { daemon, sender } = await startDaemon([{ library: SELECT_KEY, parameters: { keys: { [deadServer()]: unusable } }, sandbox: SANDBOX }]);
    const before = dead.received();
    const landing = ncr({ fqdn: `badkey-${seq}.${FWD}.`, ipAddress: '192.0.2.12' });
    const stranded = ncr({ fqdn: `badkey-${seq}.${DEADZONE}.`, ipAddress: '192.0.2.13', reverseChange: false });
    await sender.send(landing);
    await sender.send(stranded);
    const s = await ended(daemon, 2);
    expect(await aRecords(landing.fqdn)).toEqual([landing.ipAddress]);
    expect(s).toMatchObject({ 'd2box.ncr-completed': 1, 'd2box.ncr-failed': 1, 'd2box.ncr-failed.no-more-servers': 1 });
    expect(dead.received() - before).toBe(0);
    const invalid = log(daemon).match(new RegExp(`D2BOX_SELECT_KEY_INVALID.*unusable key for 127\\.0\\.0\\.1 port:${dead.port}: .*digest-bits.*server skipped`, 'g')) ?? [];
    expect(invalid).toHaveLength(2);
    // The library did nothing wrong by the hooks contract: the engine refused the key.
    expect(failureTotal((await libraries(daemon))[0]!)).toBe(0);
  });
});

describe('a multi-threading-compatible library in the daemon', () => {
  for (const isolation of ['thread', 'process'] as const) {
    it(`in a ${isolation}: several of its callouts run at once, and every NCR lands signed with its key`, async () => {
      const parameters = { keys: { [bindServer()]: HOOK_KEY }, hold: { 'in-flight': 4, ms: 10_000 } };
      const { daemon, sender } = await startDaemon([{ library: SELECT_KEY, parameters, sandbox: { ...SANDBOX, isolation } }]);
      const [status] = await libraries(daemon);
      expect(status).toMatchObject({ isolation, multiThreadingCompatible: true, state: 'ready' });
      // Four NCRs at once: each callout waits (10 s at most) until four are in flight.
      const ncrs = [0, 1, 2, 3].map((i) => ncr({ fqdn: `mt-${isolation}-${i}.${HOOKZONE}.`, ipAddress: `192.0.2.${20 + i}`, reverseChange: false }));
      for (const n of ncrs) await sender.send(n);
      expect(await ended(daemon, 4)).toMatchObject({ 'd2box.ncr-completed': 4 });
      // Only hook.key may update hooked.test: landing there proves the library's key signed.
      for (const n of ncrs) expect(await aRecords(n.fqdn)).toEqual([n.ipAddress]);
      // Counted here, from when each callout ran: one at a time would give 1.
      await daemon.waitLog(/(select_key ran[^\n]*\n[^]*){4}/);
      expect(mostAtOnce(log(daemon))).toEqual({ callouts: 4, mostAtOnce: 4 });
    });
  }
});

describe('libraries across reconfiguration, in the daemon', () => {
  it('config-set and config-reload unload the old libraries (in reverse order) before loading the new ones, which then serve', async () => {
    const lifecycle = file('lifecycle.log');
    const traces = [file('trace-1.log'), file('trace-2.log'), file('trace-3.log')];
    const hooks = (tag: string, trace: string): HookEntry[] => [
      { library: LIFECYCLE, parameters: { file: lifecycle, tag }, sandbox: SANDBOX },
      { library: SELECT_KEY, parameters: { keys: { [bindServer()]: HOOK_KEY }, trace }, sandbox: SANDBOX },
    ];
    const { daemon, sender, configFile, config } = await startDaemon(hooks('first', traces[0]!));
    const lines = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean) : []);
    const serve = async (label: string, done: number) => {
      const n = ncr({ fqdn: `${label}-${seq}.${HOOKZONE}.`, ipAddress: '192.0.2.30', reverseChange: false });
      await sender.send(n);
      expect(await ended(daemon, done)).toMatchObject({ 'd2box.ncr-completed': done });
      expect(await aRecords(n.fqdn)).toEqual([n.ipAddress]);
    };
    await serve('first', 1);
    expect(lines(lifecycle)).toEqual(['load first']);

    expect(await daemon.command('config-set', config(hooks('second', traces[1]!)))).toMatchObject({ result: 0 });
    expect(lines(lifecycle)).toEqual(['load first', 'unload first', 'load second']);
    await serve('second', 2);

    writeJson(configFile, config(hooks('third', traces[2]!)));
    expect(await daemon.command('config-reload')).toMatchObject({ result: 0 });
    expect(lines(lifecycle)).toEqual(['load first', 'unload first', 'load second', 'unload second', 'load third']);
    await serve('third', 3);

    // Each NCR went through the select_key library loaded with that configuration's parameters (its trace file), and only that one.
    expect(traces.map((t) => lines(t).length)).toEqual([1, 1, 1]);
    // Reverse order on unload: the select_key library (second in the list) before the lifecycle one.
    const order = [...log(daemon).matchAll(/HOOKS_LIBRARY_(UNLOADED|LOADED)\S* hook library (\S+)/g)].map((m) => `${m[1]} ${m[2] === LIFECYCLE ? 'lifecycle' : 'select_key'}`);
    const round = ['UNLOADED select_key', 'UNLOADED lifecycle', 'LOADED lifecycle', 'LOADED select_key'];
    expect(order).toEqual(['LOADED lifecycle', 'LOADED select_key', ...round, ...round]);
  });
});

describe('per-request context in the daemon', () => {
  it('context_create and context_destroy run once around each NCR, and its select_key calls see the context between them', async () => {
    const history = file('context.log');
    const { daemon, sender } = await startDaemon([{ library: REQUEST_CONTEXT, parameters: { file: history }, sandbox: SANDBOX }]);
    const ncrs = [0, 1, 2].map((i) => ncr({ fqdn: `ctx-${i}-${seq}.${FWD}.`, ipAddress: `192.0.2.${40 + i}` }));
    for (const n of ncrs) await sender.send(n);
    // The forward update fails over from the silent server (1 s) to BIND, then the reverse goes to BIND.
    expect(await ended(daemon, 3)).toMatchObject({ 'd2box.ncr-completed': 3 });
    for (const n of ncrs) expect(await aRecords(n.fqdn)).toEqual([n.ipAddress]);
    const read = () => (existsSync(history) ? readFileSync(history, 'utf8').split('\n').filter(Boolean) : []);
    // context_destroy runs as the NCR ends; give it a moment (bounded) to reach the file.
    for (let i = 0; i < 100 && read().length < 4; i++) await sleep(50);
    const requests = read().map((line) => JSON.parse(line) as { request: number; history: string[] }).sort((a, b) => a.request - b.request);
    const oneNcr = ['context_create', `select_key ${dead.port}`, `select_key ${bind.port}`, `select_key ${bind.port}`, 'context_destroy'];
    // Request 1 is the configuration's handle (d2_srv_configured, no callout of this library there).
    expect(requests).toEqual([
      { request: 1, history: ['context_create', 'context_destroy'] },
      { request: 2, history: oneNcr },
      { request: 3, history: oneNcr },
      { request: 4, history: oneNcr },
    ]);
  });
});

describe('a thread-mode library running out of heap next to a healthy library', () => {
  it('every NCR lands with the healthy library’s key; the other is replaced after each OOM and counted', async () => {
    const { daemon, sender } = await startDaemon([
      // Runs out of its 32 MB heap on every call; 'continue' leaves the status as it was.
      { library: FAULTY, parameters: { mode: 'oom' }, sandbox: { ...SANDBOX, 'max-heap-mb': 32, 'on-failure': 'continue', 'max-restarts': 50 } },
      { library: SELECT_KEY, parameters: { keys: { [bindServer()]: HOOK_KEY } }, sandbox: SANDBOX },
    ]);
    const ncrs = [0, 1, 2].map((i) => ncr({ fqdn: `oom-${i}-${seq}.${HOOKZONE}.`, ipAddress: `192.0.2.${50 + i}`, reverseChange: false }));
    for (const n of ncrs) await sender.send(n);
    expect(await ended(daemon, 3, 60_000)).toMatchObject({ 'd2box.ncr-completed': 3 });
    for (const n of ncrs) expect(await aRecords(n.fqdn)).toEqual([n.ipAddress]);
    const [faulty, healthy] = await libraries(daemon);
    expect(faulty).toMatchObject({ library: FAULTY, isolation: 'thread' });
    expect(faulty!.failures.oom).toBeGreaterThanOrEqual(1);
    expect(faulty!.restarts).toBeGreaterThanOrEqual(1);
    expect(healthy).toMatchObject({ library: SELECT_KEY, state: 'ready', restarts: 0 });
    expect(failureTotal(healthy!)).toBe(0);
    expect(daemon.child.exitCode).toBeNull();
    expect(await daemon.command('status-get')).toMatchObject({ result: 0 });
  });
});
