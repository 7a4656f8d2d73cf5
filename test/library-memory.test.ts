/**
 * A leak outside the V8 heap is still the library's leak (issue 22). Buffers,
 * ArrayBuffers, typed arrays and WebAssembly memories live outside the heap that
 * max-heap-mb bounds; a library that keeps them counts them against
 * max-external-mb (by default its max-heap-mb), in both isolation modes, and
 * past it its worker is ended as an `oom` failure and replaced.
 *
 * Each case runs the real daemon (dist/src/cli.js) with a leaking library and a
 * healthy one after it in the select_key chain, against a real BIND 9 whose zones
 * accept only updates signed with d2.key. The daemon's configuration gives the
 * domains no key (it has the key, for a process-mode library to name): only the healthy library's select_key names it, so every NCR in
 * BIND proves that the healthy library answered that call. Meanwhile the test
 * reads the daemon's own resident memory from /proc/<pid>/status.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { HooksLoadError, HooksManager } from '../src/hooks/hooks-manager.js';
import type { HookLibraryConfigInput } from '../src/hooks/library-config.js';
import type { LibraryStatsSnapshot } from '../src/hooks/library-stats.js';
import { HELD_LIMITS } from '../src/hooks/protocol.js';
import { NcrSender } from '../src/ncr/ncr-sender.js';
import { Daemon, sleep } from './control-daemon.js';
import { configJson, ncr } from './fixtures/d2-harness.js';
import { digRecords, freePort, namesWithoutA, startBind9, type Bind9Server } from './support/bind9.js';

const HEALTHY = resolve('test/fixtures/basic.mjs');
const KEY = { name: 'd2.key', algorithm: 'HMAC-SHA256', secret: randomBytes(32).toString('base64') };
/** The limits every leaking library runs with: 64 MB of heap, and so 64 MB outside it. */
const MAX_HEAP_MB = 64;
const NCRS = 16;

interface Leak {
  name: string;
  file: string;
  /** Which check ends it in a thread: the worker's own report, or the host's watch of a silent loop. */
  threadCause: RegExp;
  parameters: Record<string, unknown>;
  sandbox?: Record<string, unknown>;
}

/**
 * Each leak, unchecked, would keep far more than the bounds asserted below: 16 MB
 * a call over the 2+ select_key calls of each of 16 NCRs is 512+ MB; the blocking
 * one keeps up to 640 MB in its first callout alone. Each stops at 1 GB, so that
 * a broken host cannot take the machine down. The callout deadline is far away
 * (touching 16 MB took up to 200 ms here with other jobs on the 2 cores): a
 * timeout must not be what ends them.
 */
const DEADLINE = { 'callout-timeout-ms': 10_000 };
/**
 * A leak between callouts is seen in the worker's own report; when several
 * callouts run back to back on its loop (each touching 16 MB took up to 200 ms
 * here), the host's watch of the silent loop may see it first. Both are right.
 */
const REPORTED = /oom: "?(\d+ MB outside the V8 heap .*past its limit of 64 MB \(max-external-mb\)|its event loop stopped answering while the daemon's memory grew)/;
/** In a process, the host reads the sandbox's resident memory itself, whatever the library does. */
const PROCESS_CAUSE = /its sandbox holds \d+ MB resident, past its limits/;
const LEAKS: Leak[] = [
  { name: 'Buffers', file: 'leak-buffers.mjs', threadCause: REPORTED, parameters: { 'mb-per-call': 16 }, sandbox: DEADLINE },
  { name: 'ArrayBuffers and typed arrays', file: 'leak-typed-arrays.mjs', threadCause: REPORTED, parameters: { 'mb-per-call': 16 }, sandbox: DEADLINE },
  { name: 'a growing WebAssembly memory', file: 'leak-wasm.mjs', threadCause: REPORTED, parameters: { 'mb-per-call': 16 }, sandbox: DEADLINE },
  {
    name: 'all of them inside one callout that blocks its event loop',
    file: 'leak-blocking.mjs',
    threadCause: /event loop stopped answering while the daemon's memory grew/,
    parameters: { 'mb-per-step': 16, 'ms-per-step': 20, 'steps-per-call': 40 },
    sandbox: DEADLINE,
  },
];

/**
 * The daemon's peak resident memory, by mode. In a thread the leak is in the
 * daemon: the bound is its own ~100 MB, the leaker's 64 + 64 MB, the host's
 * slack and what a blocked loop allocates before the host's watch sees it
 * (measured peaks: see docs/isolation.md). In a process the leak is elsewhere,
 * and the daemon stays near its idle size.
 */
const PEAK_RSS_BOUND_MB = { thread: 480, process: 300 } as const;
/** The daemon and its sandboxes together, in process mode (sampled every 20 ms, so an overshoot may be missed). */
const PEAK_TREE_BOUND_MB = 560;

let bind: Bind9Server;
let tmp: string;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'd2box-memory-'));
  bind = await startBind9({
    keys: [{ name: KEY.name, algorithm: 'hmac-sha256', secret: KEY.secret }],
    zones: [{ name: 'example.com', updateKeys: [KEY.name] }, { name: '2.0.192.in-addr.arpa', updateKeys: [KEY.name] }],
  });
}, 60_000);

afterAll(async () => {
  await bind?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

/** VmRSS and VmHWM (peak) of a process, in MB, from the kernel. */
/** Resident memory of a process and all its descendants (the daemon and its sandboxes), in MB. */
function treeResidentMb(pid: number): number {
  let total = 0;
  const queue = [pid];
  for (let visited = 0; queue.length > 0 && visited < 64; visited++) {
    const next = queue.shift()!;
    try {
      total += residentMb(next).rss || 0; // a process exiting has no VmRSS
      for (const child of readFileSync(`/proc/${next}/task/${next}/children`, 'utf8').split(' ')) if (child) queue.push(Number(child));
    } catch {
      /* gone meanwhile */
    }
  }
  return total;
}

function residentMb(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) / 1024;
  return { rss: field('VmRSS'), peak: field('VmHWM') };
}

let run = 0;

describe.each(['thread', 'process'] as const)('isolation "%s": a library that leaks outside the V8 heap', (isolation) => {
  it.each(LEAKS)('$name: ended as oom and restarted, the daemon stays bounded, the healthy library answers every call, every NCR lands', async (leak) => {
    run++;
    const socket = join(tmp, `d2box-${run}.sock`);
    const configFile = join(tmp, `d2box-${run}.json`);
    const port = await freePort();
    const base = configJson({
      port,
      timeoutMs: 2000,
      // Configured, so that a process-mode library (which sees no secrets) can name it; no domain uses it.
      keys: [KEY],
      forward: [{ name: 'example.com.', servers: [{ port: bind.port }] }],
      reverse: [{ name: '2.0.192.in-addr.arpa.', servers: [{ port: bind.port }] }],
    }) as { DhcpDdns: object };
    writeFileSync(configFile, JSON.stringify({
      DhcpDdns: {
        ...base.DhcpDdns,
        'control-socket': { 'socket-type': 'unix', 'socket-name': socket },
        'hooks-libraries': [
          {
            library: resolve('test/fixtures', leak.file),
            parameters: leak.parameters,
            sandbox: { isolation, 'max-heap-mb': MAX_HEAP_MB, 'on-failure': 'continue', 'max-restarts': 100, ...leak.sandbox },
          },
          { library: HEALTHY, parameters: { keys: { '127.0.0.1': KEY } }, sandbox: { isolation } },
        ],
      },
    }));
    const d = new Daemon(configFile, socket);
    const sender = new NcrSender({ serverAddress: '127.0.0.1', serverPort: port });
    let peakTree = 0;
    const sampler = setInterval(() => (peakTree = Math.max(peakTree, treeResidentMb(d.pid))), 20);
    try {
      await d.ready();
      const ncrs = Array.from({ length: NCRS }, (_, i) => ncr({ fqdn: `leak-${run}-${i}.example.com.`, ipAddress: `192.0.2.${10 + i}` }));
      for (const n of ncrs) {
        await sender.send(n);
        await sleep(150);
      }
      // Every NCR reaches BIND, checked with dig, never through d2box. Bounded: 60 × 250 ms.
      expect(await namesWithoutA(bind.port, ncrs.map((n) => n.fqdn))).toEqual([]);
      for (const n of ncrs) expect((await digRecords(bind.port, n.fqdn, 'A')).map((r) => r.data)).toEqual([n.ipAddress]);

      // The leaking library was ended as oom and restarted; the last replacement is serving.
      const statuses = async (): Promise<LibraryStatsSnapshot[]> => (await d.command('hooks-status')).arguments.libraries as LibraryStatsSnapshot[];
      let [leaky, healthy] = await statuses();
      // Only the A records were awaited: the last NCRs' reverse updates (and their select_key) may still be on their way.
      for (let i = 0; i < 100 && (leaky!.state !== 'ready' || healthy!.calls < NCRS * 2); i++) {
        await sleep(50);
        [leaky, healthy] = await statuses();
      }
      expect(leaky).toMatchObject({ isolation, state: 'ready', quarantineReason: null });
      expect(leaky!.failures.oom).toBeGreaterThanOrEqual(1);
      expect(leaky!.restarts).toBeGreaterThanOrEqual(1);
      const otherFailures = Object.entries(leaky!.failures).filter(([kind, n]) => kind !== 'oom' && n > 0);
      expect(otherFailures).toEqual([]);
      const restarts = (d.stderr() + d.stdout()).split('\n').filter((line) => line.includes('HOOKS_LIBRARY_RESTARTING'));
      expect(restarts.length).toBeGreaterThanOrEqual(1);
      for (const line of restarts) expect(line).toMatch(isolation === 'thread' ? leak.threadCause : PROCESS_CAUSE);

      // The healthy library answered every call: no failure, every round trip came back.
      expect(Object.values(healthy!.failures).every((n) => n === 0)).toBe(true);
      expect(healthy!.restarts).toBe(0);
      expect(healthy!.calls).toBeGreaterThanOrEqual(NCRS * 2);
      expect(healthy!.latencyUs.count).toBe(healthy!.calls);

      // The daemon itself stayed bounded: its peak resident memory, from the kernel.
      const { peak } = residentMb(d.pid);
      console.log(`[library-memory] ${isolation} ${leak.file}: daemon peak RSS ${peak.toFixed(0)} MB, with its sandboxes ${peakTree.toFixed(0)} MB (sampled), oom ${leaky!.failures.oom}, restarts ${leaky!.restarts}, calls ${leaky!.calls}`);
      expect(peak).toBeLessThan(PEAK_RSS_BOUND_MB[isolation]);
      // The leaking sandbox too: 64 + 64 + 64 MB at most, and the healthy one's ~50 MB beside the daemon's.
      if (isolation === 'process') expect(peakTree).toBeLessThan(PEAK_TREE_BOUND_MB);
      expect(d.child.exitCode).toBeNull();
    } finally {
      clearInterval(sampler);
      if (process.env.D2BOX_TEST_DEBUG) console.log(d.stderr() + d.stdout());
      await sender.close();
      await d.stop();
    }
  }, 90_000);
});

/** In-process hook hosts (HooksManager), for what needs no daemon. */
let hooks: HooksManager | undefined;
afterEach(async () => {
  await hooks?.unloadLibraries();
  hooks = undefined;
});

async function load(config: HookLibraryConfigInput): Promise<HooksManager> {
  hooks = new HooksManager();
  await hooks.loadLibraries([config]);
  return hooks;
}

async function selectKey(manager: HooksManager): Promise<{ failures: { failure: { kind: string; message: string } }[]; context: unknown }> {
  const h = await manager.createCalloutHandle();
  h.setArgument('current_server', { 'ip-address': '127.0.0.1', port: 53 });
  h.setArgument('tsig_key', null);
  const report = await manager.callCallouts('select_key', h);
  const context = h.getLibraryContext(1);
  await h.destroy();
  return { failures: report.failures as never, context };
}

describe.each(['thread', 'process'] as const)('isolation "%s": no false positive', (isolation) => {
  it('a library that holds 48 MB outside its heap (under its 64 MB) and blocks its loop for 1.5 s in one callout is never ended', async () => {
    // leak-blocking.mjs: 6 steps of 8 MB, 250 ms of busy work after each, then nothing more (max-total-mb 48).
    const manager = await load({
      library: resolve('test/fixtures/leak-blocking.mjs'),
      parameters: { 'mb-per-step': 8, 'ms-per-step': 250, 'steps-per-call': 6, 'max-total-mb': 48 },
      sandbox: { isolation, 'max-heap-mb': MAX_HEAP_MB, 'callout-timeout-ms': 10_000 },
    });
    for (let i = 0; i < 4; i++) {
      expect((await selectKey(manager)).failures).toEqual([]);
      // Room for the worker's reports (every 100 ms) and the host's samples to see it idle and holding.
      await sleep(300);
    }
    const [status] = manager.getLibraryStatistics();
    expect(status).toMatchObject({ state: 'ready', restarts: 0 });
    expect(Object.values(status!.failures).every((n) => n === 0)).toBe(true);
  }, 60_000);
});

describe.each(['thread', 'process'] as const)('isolation "%s": what a library makes the host hold is bounded', (isolation) => {
  const held = (mode: string): HookLibraryConfigInput => ({ library: resolve('test/fixtures/leak-held.mjs'), parameters: { mode }, sandbox: { isolation, 'on-failure': 'continue' } });

  it(`arguments over ${HELD_LIMITS.setBytes} bytes and a context over ${HELD_LIMITS.contextBytes} bytes are dropped as invalid-argument; a small context is kept`, async () => {
    let manager = await load(held('set'));
    let result = await selectKey(manager);
    expect(result.failures.map((f) => f.failure.kind)).toEqual(['invalid-argument']);
    // In a process the library's own channel refuses the frame before the host's bound sees it.
    expect(result.failures[0]!.failure.message).toMatch(/arguments it set exceed|over the frame limit/);
    await manager.unloadLibraries();

    manager = await load(held('context'));
    result = await selectKey(manager);
    expect(result.failures.map((f) => f.failure.kind)).toEqual(['invalid-argument']);
    expect(result.failures[0]!.failure.message).toMatch(/context exceeds/);
    expect(result.context).toBeUndefined();
    await manager.unloadLibraries();

    manager = await load(held('small'));
    result = await selectKey(manager);
    expect(result.failures).toEqual([]);
    expect(result.context).toEqual({ kept: 'fits' });
  }, 60_000);

  it(`an error message of 1 MB is kept cut to ${HELD_LIMITS.errorMessageChars} characters`, async () => {
    const manager = await load(held('error'));
    const result = await selectKey(manager);
    expect(result.failures.map((f) => f.failure.kind)).toEqual(['throw']);
    const [status] = manager.getLibraryStatistics();
    expect(status!.lastFailure!.message.length).toBeLessThanOrEqual(HELD_LIMITS.errorMessageChars + 1);
    expect(status!.lastFailure!.message.length).toBeGreaterThan(1000);
  }, 60_000);

  it(`more than ${HELD_LIMITS.registeredHooks} registered hook points: refused, the library does not load`, async () => {
    await expect(load(held('registrations'))).rejects.toThrow(HooksLoadError);
    await expect(load(held('registrations'))).rejects.toThrow(/registered|protocol/);
  }, 60_000);
});
