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
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LibraryStatsSnapshot } from '../src/hooks/library-stats.js';
import { NcrSender } from '../src/ncr/ncr-sender.js';
import { Daemon, sleep } from './control-daemon.js';
import { configJson, ncr } from './fixtures/d2-harness.js';
import { digRecords, freePort, startBind9, type Bind9Server } from './support/bind9.js';

const HEALTHY = resolve('test/fixtures/basic.mjs');
const KEY = { name: 'd2.key', algorithm: 'HMAC-SHA256', secret: randomBytes(32).toString('base64') };
/** The limits every leaking library runs with: 64 MB of heap, and so 64 MB outside it. */
const MAX_HEAP_MB = 64;
const NCRS = 16;

interface Leak {
  name: string;
  file: string;
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
const LEAKS: Leak[] = [
  { name: 'Buffers', file: 'leak-buffers.mjs', parameters: { 'mb-per-call': 16 }, sandbox: DEADLINE },
  { name: 'ArrayBuffers and typed arrays', file: 'leak-typed-arrays.mjs', parameters: { 'mb-per-call': 16 }, sandbox: DEADLINE },
  { name: 'a growing WebAssembly memory', file: 'leak-wasm.mjs', parameters: { 'mb-per-call': 16 }, sandbox: DEADLINE },
  {
    name: 'all of them inside one callout that blocks its event loop',
    file: 'leak-blocking.mjs',
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
    let peakSeen = 0;
    const sampler = setInterval(() => {
      try {
        peakSeen = Math.max(peakSeen, residentMb(d.pid).rss);
      } catch {
        /* not started or gone */
      }
    }, 20);
    try {
      await d.ready();
      const ncrs = Array.from({ length: NCRS }, (_, i) => ncr({ fqdn: `leak-${run}-${i}.example.com.`, ipAddress: `192.0.2.${10 + i}` }));
      for (const n of ncrs) {
        await sender.send(n);
        await sleep(150);
      }
      // Every NCR reaches BIND, checked with dig, never through d2box. Bounded: 60 × 250 ms.
      const missing = async (): Promise<string[]> => {
        const out: string[] = [];
        for (const n of ncrs) if ((await digRecords(bind.port, n.fqdn, 'A')).length === 0) out.push(n.fqdn);
        return out;
      };
      let left = await missing();
      for (let i = 0; i < 60 && left.length > 0; i++) {
        await sleep(250);
        left = await missing();
      }
      expect(left).toEqual([]);
      for (const n of ncrs) expect((await digRecords(bind.port, n.fqdn, 'A')).map((r) => r.data)).toEqual([n.ipAddress]);

      // The leaking library was ended as oom and restarted; the last replacement is serving.
      const statuses = async (): Promise<LibraryStatsSnapshot[]> => (await d.command('hooks-status')).arguments.libraries as LibraryStatsSnapshot[];
      let [leaky, healthy] = await statuses();
      for (let i = 0; i < 100 && leaky!.state !== 'ready'; i++) {
        await sleep(50);
        [leaky, healthy] = await statuses();
      }
      expect(leaky).toMatchObject({ isolation, state: 'ready', quarantineReason: null });
      expect(leaky!.failures.oom).toBeGreaterThanOrEqual(1);
      expect(leaky!.restarts).toBeGreaterThanOrEqual(1);
      const otherFailures = Object.entries(leaky!.failures).filter(([kind, n]) => kind !== 'oom' && n > 0);
      expect(otherFailures).toEqual([]);
      expect(d.stderr() + d.stdout()).toMatch(/HOOKS_LIBRARY_RESTARTING.*worker lost \(oom: .*(max-external-mb|max-heap-mb)/);

      // The healthy library answered every call: no failure, every round trip came back.
      expect(Object.values(healthy!.failures).every((n) => n === 0)).toBe(true);
      expect(healthy!.restarts).toBe(0);
      expect(healthy!.calls).toBeGreaterThanOrEqual(NCRS * 2);
      expect(healthy!.latencyUs.count).toBe(healthy!.calls);

      // The daemon itself stayed bounded: its peak resident memory, from the kernel.
      const { peak } = residentMb(d.pid);
      console.log(`[library-memory] ${isolation} ${leak.file}: daemon peak RSS ${peak.toFixed(0)} MB (sampled ${peakSeen.toFixed(0)} MB), oom ${leaky!.failures.oom}, restarts ${leaky!.restarts}, calls ${leaky!.calls}`);
      expect(peak).toBeLessThan(PEAK_RSS_BOUND_MB[isolation]);
      expect(d.child.exitCode).toBeNull();
    } finally {
      clearInterval(sampler);
      if (process.env.D2BOX_TEST_DEBUG) console.log(d.stderr() + d.stdout());
      await sender.close();
      await d.stop();
    }
  }, 90_000);
});
