/**
 * A TSIG key a hook library holds: select_key hands it back as held, the daemon
 * builds each TSIG record and asks the library for the MAC (and to check the
 * answer's), in a worker thread and in the process sandbox, against a real BIND 9.
 * The secret is in a file only the library reads: it appears nowhere on the
 * daemon's side (config-get, statistics, hooks-status, its log). A library that
 * returns a wrong MAC gets BIND's BADSIG, counted as the key's update-error; one
 * whose sign throws fails the update, counted as the library's failure.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { LibraryStatsSnapshot } from '../src/hooks/library-stats.js';
import { NcrSender } from '../src/ncr/ncr-sender.js';
import { Daemon, sleep, tempDir, writeJson } from './control-daemon.js';
import { configJson, ncr } from './fixtures/d2-harness.js';
import { digRecords, freePort, startBind9, type Bind9Server } from './support/bind9.js';

const ZONE = 'held.test';
const LIBRARY = resolve('test/fixtures/held-key/library.mjs');
const SECRET_FILE = resolve('test/fixtures/held-key/secret.key');
const secret = randomBytes(32).toString('base64');
/** Generous: two shared, noisy cores; a sandboxed library can take seconds to start. */
const SANDBOX = { 'callout-timeout-ms': 10_000, 'load-timeout-ms': 20_000 };

let bind: Bind9Server;
let tmp: ReturnType<typeof tempDir>;
const running: { daemon: Daemon; sender: NcrSender }[] = [];
let seq = 0;

beforeAll(async () => {
  tmp = tempDir('d2box-held-key-');
  writeFileSync(SECRET_FILE, secret + '\n', { mode: 0o600 });
  bind = await startBind9({ keys: [{ name: 'held.key', algorithm: 'hmac-sha256', secret }], zones: [{ name: ZONE, updateKeys: ['held.key'] }] });
}, 60_000);

afterEach(async () => {
  for (const { daemon, sender } of running.splice(0)) {
    await sender.close();
    await daemon.stop();
  }
});

afterAll(async () => {
  await bind?.stop();
  rmSync(SECRET_FILE, { force: true });
  tmp?.cleanup();
});

async function startDaemon(isolation: 'thread' | 'process', mode: string, sandbox: Record<string, unknown> = {}, env?: Record<string, string>): Promise<{ daemon: Daemon; sender: NcrSender }> {
  const port = await freePort();
  const socket = join(tmp.dir, `${++seq}.sock`);
  const json = configJson({
    port,
    timeoutMs: 2000,
    // No configured key: the zone's only key is the library's.
    forward: [{ name: `${ZONE}.`, servers: [{ port: bind.port }] }],
    hooks: [{ library: LIBRARY, parameters: { mode }, sandbox: { ...SANDBOX, ...sandbox, isolation } }],
  }) as { DhcpDdns: Record<string, unknown> };
  const file = writeJson(join(tmp.dir, `${seq}.json`), { DhcpDdns: { ...json.DhcpDdns, 'control-socket': { 'socket-type': 'unix', 'socket-name': socket } } });
  const daemon = new Daemon(file, socket, env ? { env } : {});
  const sender = new NcrSender({ serverAddress: '127.0.0.1', serverPort: port });
  running.push({ daemon, sender });
  await daemon.ready();
  return { daemon, sender };
}

/** Waits (bounded) until `count` NCRs have ended in the daemon; its statistics then. */
async function ended(d: Daemon, count: number, timeoutMs = 30_000): Promise<Record<string, number>> {
  const deadline = Date.now() + timeoutMs;
  let s = await d.stats();
  for (let i = 0; i < 300 && Date.now() < deadline; i++) {
    if ((s['d2box.ncr-completed'] ?? 0) + (s['d2box.ncr-failed'] ?? 0) >= count) return s;
    await sleep(100);
    s = await d.stats();
  }
  throw new Error(`only ${(s['d2box.ncr-completed'] ?? 0) + (s['d2box.ncr-failed'] ?? 0)} of ${count} NCRs ended within ${timeoutMs} ms:\n${d.stdout()}${d.stderr()}`);
}

/** Signals the daemon to write a heap snapshot (bounded wait until it is whole); its text. */
async function heapSnapshot(d: Daemon, dir: string): Promise<string> {
  const { mkdirSync } = await import('node:fs');
  mkdirSync(dir, { recursive: true });
  process.kill(d.pid, 'SIGUSR2');
  // Generous: a snapshot of a loaded daemon takes seconds on two shared cores.
  for (let i = 0; i < 300; i++) {
    await sleep(100);
    const file = readdirSync(dir).find((f) => f.endsWith('.heapsnapshot'));
    if (!file) continue;
    const path = join(dir, file);
    const size = statSync(path).size;
    await sleep(200);
    if (size === 0 || statSync(path).size !== size) continue;
    const text = readFileSync(path, 'utf8');
    if (text.trimEnd().endsWith('}')) return text;
  }
  throw new Error(`no heap snapshot in ${dir} within 30 s`);
}

async function library(d: Daemon): Promise<LibraryStatsSnapshot> {
  const a = await d.command('hooks-status');
  return (a.arguments.libraries as LibraryStatsSnapshot[])[0]!;
}

for (const isolation of ['thread', 'process'] as const) {
  describe(`a key the library holds, ${isolation} mode, against BIND 9`, () => {
    it('signs and verifies every update: they land, and the secret appears nowhere on the daemon\'s side', async () => {
      // A heap snapshot of the daemon's main thread on SIGUSR2, written to its own folder.
      const snapshots = join(tmp.dir, `heap-${isolation}`);
      const { daemon, sender } = await startDaemon(isolation, 'right', {}, { NODE_OPTIONS: `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${snapshots}` });
      const requests = [1, 2, 3].map((i) => ncr({ fqdn: `h${i}-${isolation}.${ZONE}.`, ipAddress: `192.0.2.${20 + i}`, reverseChange: false }));
      for (const r of requests) await sender.send(r);
      const s = await ended(daemon, requests.length);
      expect(s['d2box.ncr-completed']).toBe(requests.length);
      for (const r of requests) expect((await digRecords(bind.port, r.fqdn, 'A')).map((x) => x.data)).toEqual([r.ipAddress]);
      // Each update (a check and an add, at least) was signed by the library, and each answer checked by it.
      expect(s['update-signed']).toBeGreaterThanOrEqual(requests.length);
      expect(s['key[held.key.].update-success']).toBe(s['update-signed']);
      expect(s['held-key-signed']).toBe(s['update-signed']);
      expect(s['held-key-verified']).toBe(s['update-signed']);
      expect(s['update-error'] ?? 0).toBe(0);
      // Nowhere on the daemon's side: the secret in base64, or its hex.
      const hex = Buffer.from(secret, 'base64').toString('hex');
      const seen = [
        JSON.stringify(await daemon.command('config-get')),
        JSON.stringify(await daemon.command('statistic-get-all')),
        JSON.stringify(await daemon.command('hooks-status')),
        daemon.stdout(),
        daemon.stderr(),
      ].join('\n');
      expect(seen).not.toContain(secret);
      expect(seen).not.toContain(hex);
      // Nor in the main thread's heap, where the key's name is (the snapshot is real and searchable).
      const heap = await heapSnapshot(daemon, snapshots);
      expect(heap).toContain('held.key');
      expect(heap).not.toContain(secret);
      expect(heap).not.toContain(hex);
    });

    it('a wrong MAC gets BIND\'s BADSIG: the update fails and the key\'s update-error counts it', async () => {
      const { daemon, sender } = await startDaemon(isolation, 'wrong-mac');
      const request = ncr({ fqdn: `bad-${isolation}.${ZONE}.`, ipAddress: '192.0.2.30', reverseChange: false });
      await sender.send(request);
      const s = await ended(daemon, 1);
      expect(s['d2box.ncr-failed']).toBe(1);
      expect(s['key[held.key.].update-error']).toBeGreaterThanOrEqual(1);
      expect(s['key[held.key.].update-success'] ?? 0).toBe(0);
      expect(await digRecords(bind.port, request.fqdn, 'A')).toEqual([]);
      expect(daemon.stdout() + daemon.stderr()).toMatch(/BADSIG/);
    });

    it('a sign that throws is the library\'s failure: nothing is sent, the NCR fails', async () => {
      const { daemon, sender } = await startDaemon(isolation, 'throw');
      const request = ncr({ fqdn: `throw-${isolation}.${ZONE}.`, ipAddress: '192.0.2.31', reverseChange: false });
      await sender.send(request);
      const s = await ended(daemon, 1);
      expect(s['d2box.ncr-failed']).toBe(1);
      expect(s['update-sent'] ?? 0).toBe(0);
      const lib = await library(daemon);
      expect(lib.failures.throw).toBeGreaterThanOrEqual(1);
      expect(lib.lastFailure?.message).toMatch(/no signing with held\.key\. today/);
    });

    it('a sign past the callout deadline is the library\'s timeout: nothing is sent, the NCR fails', async () => {
      // The library answers after 5 s; a deadline of 1 s (short for this test only, far from the 5 s).
      const { daemon, sender } = await startDaemon(isolation, 'slow', { 'callout-timeout-ms': 1000 });
      const request = ncr({ fqdn: `slow-${isolation}.${ZONE}.`, ipAddress: '192.0.2.32', reverseChange: false });
      await sender.send(request);
      const s = await ended(daemon, 1);
      expect(s['d2box.ncr-failed']).toBe(1);
      expect(s['update-sent'] ?? 0).toBe(0);
      const lib = await library(daemon);
      expect(lib.failures.timeout).toBeGreaterThanOrEqual(1);
      expect(lib.lastFailure?.message).toMatch(/did not sign with key held\.key\. within 1000 ms/);
    });
  });
}
