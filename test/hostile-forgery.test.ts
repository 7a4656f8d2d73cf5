/**
 * A hook library that lies, seen from outside the daemon (issue 18, items 2, 4, 5):
 * the real daemon (dist/src/cli.js) with a hostile library, in a worker thread and in
 * a sandboxed process, carrying NCRs to a real BIND 9 while the library
 *
 * - forges the daemon's log (test/fixtures/hostile-forge-logs.mjs): newlines, ANSI
 *   escapes, C1 controls, line separators and whole made-up daemon lines in its console
 *   output and in the name, message and stack of what it throws, a command name with a
 *   newline, and thousands of empty log messages per call on its raw channel. The
 *   daemon's log file must hold only lines of the daemon's own format, none with a raw
 *   control character, the made-up lines only inside lines marked as the library's,
 *   and the warnings about the flood must stay few;
 * - lies about itself (test/fixtures/hostile-forge-stats.mjs): answers its own callout
 *   ids first with failure kinds only the host can see ('cpu-limit', 'timeout'),
 *   rewrites its results to claim one, claims 9e15 dropped log lines, 9e15 non-zero
 *   returns, 9e15 callouts and a round trip of 1e15 µs, and (in a process) sends itself SIGXCPU, the
 *   kernel's signal at max-cpu-seconds. hooks-status must show only what happened: each
 *   lie ends the library as a 'protocol' failure, the signal as a 'crash'.
 *
 * Each run ends with the library hung, in a callout (while it floods) or in unload()
 * (spinning), and SIGTERM or the `shutdown` command: the daemon must exit at its
 * shutdown deadline, and no process of the sandbox may outlive it.
 *
 * Routes the fixtures forge through (hostile-forge-channel.mjs): in a thread, the
 * callout MessagePort itself (taken from a patched MessagePort.prototype.postMessage);
 * in a process, its channel (frames written on descriptor 3); in both, the results the worker
 * runtime queues (a patched Array.prototype.push), whatever the transport.
 */
import { appendFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LibraryStatsSnapshot } from '../src/hooks/library-stats.js';
import { NcrSender } from '../src/ncr/ncr-sender.js';
import { Daemon, sleep, tempDir } from './control-daemon.js';
import { configJson, ncr } from './fixtures/d2-harness.js';
import { digRecords, freePort, startBind9, type Bind9Server } from './support/bind9.js';

const FORGE_LOGS = resolve('test/fixtures/hostile-forge-logs.mjs');
const FORGE_STATS = resolve('test/fixtures/hostile-forge-stats.mjs');
const KEY = { name: 'd2.key', algorithm: 'HMAC-SHA256', secret: 'ZmFrZS1idXQtdmFsaWQtdHNpZy1zZWNyZXQtZm9yLXRlc3Rz' };
/** The daemon's shutdown deadline in these runs (D2BOX_SHUTDOWN_DEADLINE_MS): short, so a forced exit is quick to see. */
const DEADLINE_MS = 3000;
/**
 * How long after SIGTERM (or `shutdown`) the test waits for the daemon to be gone: the
 * deadline plus 20 s. Generous on purpose: two cores shared with other test runs, and a
 * forced exit kills a process tree and writes the log synchronously; what is asserted is
 * that the exit comes at all, by the deadline's path, not how fast.
 */
const EXIT_BOUND_MS = DEADLINE_MS + 20_000;
const LOG_LINES_PER_SECOND = 50;

const tmp = tempDir('d2box-forgery-');

/** D2BOX_FORGERY_FIGURES=file appends what each run measured there (one JSON line per run), for docs/isolation.md. */
function figures(row: Record<string, unknown>): void {
  const file = process.env['D2BOX_FORGERY_FIGURES'];
  if (file) appendFileSync(file, JSON.stringify(row) + '\n');
}
let bind: Bind9Server;

beforeAll(async () => {
  bind = await startBind9({
    keys: [{ name: KEY.name, algorithm: 'hmac-sha256', secret: KEY.secret }],
    zones: [{ name: 'example.com', updateKeys: [KEY.name] }, { name: '2.0.192.in-addr.arpa', updateKeys: [KEY.name] }],
  });
}, 60_000);

afterAll(async () => {
  await bind?.stop();
  tmp.cleanup();
});

interface Run {
  d: Daemon;
  logFile: string;
  stateDir: string;
  startedAt: number;
  sender: NcrSender;
}

let runs = 0;
async function startDaemon(mode: 'thread' | 'process', library: string, parameters: Record<string, unknown>): Promise<Run> {
  const dir = join(tmp.dir, `run-${++runs}`);
  const stateDir = join(dir, 'state');
  mkdirSync(stateDir, { recursive: true });
  const logFile = join(dir, 'd2box.log');
  const socket = join(dir, 'd2box.sock');
  const port = await freePort();
  const base = (configJson({
    port,
    timeoutMs: 2000,
    keys: [KEY],
    forward: [{ name: 'example.com.', key: KEY.name, servers: [{ port: bind.port }] }],
    reverse: [{ name: '2.0.192.in-addr.arpa.', key: KEY.name, servers: [{ port: bind.port }] }],
  }) as { DhcpDdns: object }).DhcpDdns;
  const configFile = join(dir, 'd2box.json');
  writeFileSync(configFile, JSON.stringify({
    DhcpDdns: {
      ...base,
      'control-socket': { 'socket-type': 'unix', 'socket-name': socket },
      loggers: [{ name: 'kea-dhcp-ddns', severity: 'INFO', output_options: [{ output: logFile, flush: true }] }],
      'hooks-libraries': [{
        library,
        parameters: { 'state-dir': stateDir, ...parameters },
        sandbox: {
          isolation: mode,
          'on-failure': 'continue',
          'log-lines-per-second': LOG_LINES_PER_SECOND,
          // Only the daemon's shutdown deadline may end a hung library here, not these.
          'callout-timeout-ms': 60_000,
          'load-timeout-ms': 60_000,
          'max-restarts': 200,
          ...(mode === 'process' ? { 'allow-write': [stateDir] } : {}),
        },
      }],
    },
  }, null, 2));
  const d = new Daemon(configFile, socket, { env: { D2BOX_SHUTDOWN_DEADLINE_MS: String(DEADLINE_MS) } });
  const startedAt = performance.now();
  await d.ready();
  return { d, logFile, stateDir, startedAt, sender: new NcrSender({ serverAddress: '127.0.0.1', serverPort: port }) };
}

/** Sends `count` NCRs, asking status-get after each; then waits (bounded) until BIND serves every one (A and PTR), checked with dig. */
async function carryNcrs(run: Run, prefix: string, count: number): Promise<void> {
  const ncrs = Array.from({ length: count }, (_, i) => ncr({ fqdn: `${prefix}-${i}.example.com.`, ipAddress: `192.0.2.${10 + (runs * 16 + i) % 240}` }));
  for (const n of ncrs) {
    await run.sender.send(n);
    expect(await run.d.command('status-get')).toMatchObject({ result: 0 });
    await sleep(50);
  }
  const missing = async (): Promise<string[]> => {
    const out: string[] = [];
    for (const n of ncrs) {
      if ((await digRecords(bind.port, n.fqdn, 'A')).length === 0) out.push(n.fqdn);
      const ptr = `${n.ipAddress.split('.').reverse().join('.')}.in-addr.arpa.`;
      if ((await digRecords(bind.port, ptr, 'PTR')).length === 0) out.push(ptr);
    }
    return out;
  };
  let left = await missing();
  for (let i = 0; i < 80 && left.length > 0; i++) {
    await sleep(250);
    left = await missing();
  }
  expect(left).toEqual([]);
}

async function libraryStatus(run: Run): Promise<LibraryStatsSnapshot> {
  const answer = await run.d.command('hooks-status');
  expect(answer.result).toBe(0);
  return answer.arguments.libraries[0] as LibraryStatsSnapshot;
}

async function waitReady(run: Run): Promise<LibraryStatsSnapshot> {
  let status = await libraryStatus(run);
  for (let i = 0; i < 200 && status.state !== 'ready'; i++) {
    await sleep(50);
    status = await libraryStatus(run);
  }
  expect(status.state).toBe('ready');
  return status;
}

/** The daemon's own log line: its default pattern, its PID, one of its logger names, a message id. */
const linePrefix = (pid: number) =>
  new RegExp(`^\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{3} (DEBUG|INFO |WARN |ERROR|FATAL) \\[kea-dhcp-ddns(\\.[a-z0-9-]+)?/${pid}\\.${pid}\\] ([A-Z][A-Z0-9_]*) `);
/** Anything that could end a line or steer a terminal, raw (the separators between lines excepted). */
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029]/;

/** Every line of the log: the daemon's format, no raw control character. The lines, with their ids. */
function checkLogLines(text: string, pid: number): { id: string; line: string }[] {
  expect(text.endsWith('\n')).toBe(true);
  const prefix = linePrefix(pid);
  return text.slice(0, -1).split('\n').map((line) => {
    const m = prefix.exec(line);
    expect(m, `a log line not in the daemon's format: ${JSON.stringify(line.slice(0, 300))}`).not.toBeNull();
    expect(RAW_CONTROL.test(line), `a raw control character in: ${JSON.stringify(line.slice(0, 300))}`).toBe(false);
    return { id: m![3]!, line };
  });
}

/** PIDs of the processes that descend from `root` (through /proc/<pid>/stat's parent field). */
function descendants(root: number): number[] {
  const parent = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      parent.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      /* gone meanwhile */
    }
  }
  const out: number[] = [];
  const walk = (pid: number) => {
    for (const [child, ppid] of parent) if (ppid === pid) {
      out.push(child);
      walk(child);
    }
  };
  walk(root);
  return out;
}

/** Live (not zombie) processes whose command line mentions `text`, or that are in `pids`. */
function alive(text: string, pids: number[] = []): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const state = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (/\) Z /.test(state)) continue;
      if (pids.includes(Number(entry)) || readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) found.push(Number(entry));
    } catch {
      /* gone meanwhile */
    }
  }
  return found;
}

/** Ends the daemon by `how`, bounded; then checks it exited through the deadline and left no process behind. */
async function shutdownAtDeadline(run: Run, mode: 'thread' | 'process', how: 'SIGTERM' | 'shutdown'): Promise<number> {
  const tree = descendants(run.d.pid);
  // In a process, the sandbox is there to be checked (bwrap's command line names the state folder it may write).
  if (mode === 'process') expect(alive(run.stateDir).length).toBeGreaterThan(0);
  const t0 = performance.now();
  if (how === 'SIGTERM') run.d.child.kill('SIGTERM');
  else expect(await run.d.command('shutdown')).toMatchObject({ result: 0 });
  const code = await Promise.race([run.d.exited, sleep(EXIT_BOUND_MS).then(() => 'still running' as const)]);
  if (code === 'still running') run.d.child.kill('SIGKILL');
  expect(code).toBe(1);
  const exitMs = performance.now() - t0;
  expect(exitMs).toBeGreaterThanOrEqual(DEADLINE_MS - 100);
  const log = readFileSync(run.logFile, 'utf8');
  expect(log).toMatch(/D2BOX_SHUTDOWN_FORCED DHCP-DDNS shutdown did not finish in 3000 ms .*stopped by force: hook libraries /);
  // --die-with-parent and the kill at the deadline: nothing of the sandbox outlives the daemon.
  let left = alive(run.stateDir, tree);
  for (let i = 0; i < 100 && left.length > 0; i++) {
    await sleep(50);
    left = alive(run.stateDir, tree);
  }
  expect(left).toEqual([]);
  return Math.round(exitMs);
}

describe.each(['thread', 'process'] as const)('isolation "%s": a library that forges', (mode) => {
  it('log lines: everything it writes is escaped and marked as its own, the flood warnings stay few; NCRs reach BIND; SIGTERM wins over a callout hung while it floods', async () => {
    const run = await startDaemon(mode, FORGE_LOGS, { flood: 3000 });
    try {
      await waitReady(run);
      await carryNcrs(run, `forge-logs-${mode}`, 8);
      // A PTR left by an earlier test at the same address can pass the dig check before the last
      // reverse update's select_key has run: wait for it (bounded, 10 s).
      // In a process, a flood this dense can also trip the channel's frame-rate or main-loop-share
      // bound, which ends the library as `protocol` (issue 18's containment; a thread has no such
      // bound): the callout in flight then fails that way instead of throwing.
      const expectedKinds = mode === 'process' ? ['throw', 'reject', 'protocol'] : ['throw', 'reject'];
      const failed = (st: LibraryStatsSnapshot) => expectedKinds.reduce((sum, kind) => sum + (st.failures[kind as keyof typeof st.failures] ?? 0), 0);
      let status = await libraryStatus(run);
      for (let i = 0; i < 40 && failed(status) < 16; i++) {
        await sleep(250);
        status = await libraryStatus(run);
      }
      // Each select_key threw or rejected (on-failure "continue": the NCRs went on), nothing else.
      expect(failed(status)).toBeGreaterThanOrEqual(16);
      expect(Object.entries(status.failures).filter(([kind, n]) => n > 0 && !expectedKinds.includes(kind))).toEqual([]);
      // The raw flood arrived: 1500 lines dropped by the worker's own count, 1500 empty lines, per call.
      expect(status.logLinesSuppressed).toBeGreaterThanOrEqual(16 * 1500);
      await sleep(1500); // the last summary of dropped lines is due within a second

      const elapsedS = (performance.now() - run.startedAt) / 1000;
      const lines = checkLogLines(readFileSync(run.logFile, 'utf8'), run.d.pid);
      const forged = lines.filter((l) => l.line.includes('DHCP_DDNS_FORGED'));
      // The made-up lines are in the log, each inside a line the daemon marks as the library's.
      for (const marker of ['CONSOLE', 'STDOUT', 'THROW', 'NAME', 'COMMAND']) expect(forged.some((l) => l.line.includes(`DHCP_DDNS_FORGED_${marker}`)), marker).toBe(true);
      expect([...new Set(forged.map((l) => l.id))].sort()).toEqual(
        expect.arrayContaining(['HOOKS_CALLOUT_FAILED', 'HOOKS_LIBRARY_LOADED', 'HOOKS_LIBRARY_LOG']),
      );
      for (const l of forged) expect(l.id).toMatch(/^HOOKS_/);
      expect(lines.find((l) => l.line.includes('screen cleared'))?.line).toContain('\\x1b[2J\\x1b[H\\x1b[31mscreen cleared\\x1b[0m \\x9b31m C1 CSI \\u{2028} line separator \\r carriage return');
      // 3000 empty messages a call, 8 NCRs: the warnings about them come at most one each a
      // second, the library's own lines at most twice its rate (plus a burst of as many).
      const count = (id: string) => lines.filter((l) => l.id === id).length;
      expect(count('HOOKS_LOG_FLOOD') + count('HOOKS_LOG_SUPPRESSED')).toBeLessThanOrEqual(2 * (Math.ceil(elapsedS) + 2));
      expect(count('HOOKS_LIBRARY_LOG')).toBeLessThanOrEqual(2 * LOG_LINES_PER_SECOND * (Math.ceil(elapsedS) + 1));
      expect(count('HOOKS_CALLOUT_FAILED')).toBeLessThanOrEqual(20 * (Math.ceil(elapsedS) + 1));
      expect(count('HOOKS_LOG_FLOOD')).toBeGreaterThan(0);
      // Nothing of the library's reaches the daemon's own stdout or stderr.
      expect(run.d.stdout() + run.d.stderr()).not.toContain('DHCP_DDNS_FORGED');

      // Now it hangs in a callout (a promise that never settles) and floods from a timer.
      writeFileSync(join(run.stateDir, 'hang-now'), '');
      const callsBefore = status.calls;
      await run.sender.send(ncr({ fqdn: `forge-logs-${mode}-hung.example.com.`, ipAddress: '192.0.2.250' }));
      for (let i = 0; i < 200 && (await libraryStatus(run)).calls === callsBefore; i++) await sleep(25);
      // While it floods, the daemon answers and tells of the flood once a second at most.
      const floodWarnings = () => checkLogLines(readFileSync(run.logFile, 'utf8'), run.d.pid).filter((l) => l.id === 'HOOKS_LOG_FLOOD').length;
      const warningsBefore = floodWarnings();
      const hungAt = performance.now();
      for (let i = 0; i < 10; i++) {
        expect(await run.d.command('status-get')).toMatchObject({ result: 0 });
        await sleep(200);
      }
      const warningsDuring = floodWarnings() - warningsBefore;
      expect(warningsDuring).toBeGreaterThan(0);
      expect(warningsDuring).toBeLessThanOrEqual(Math.ceil((performance.now() - hungAt) / 1000) + 1);
      const exitMs = await shutdownAtDeadline(run, mode, 'SIGTERM');
      const all = checkLogLines(readFileSync(run.logFile, 'utf8'), run.d.pid);
      figures({
        test: 'forge-logs', mode, calls: status.calls, elapsedS: Math.round(elapsedS * 10) / 10, logLinesSuppressed: status.logLinesSuppressed,
        floodWarnings: count('HOOKS_LOG_FLOOD'), suppressedWarnings: count('HOOKS_LOG_SUPPRESSED'), libraryLines: count('HOOKS_LIBRARY_LOG'),
        calloutFailed: count('HOOKS_CALLOUT_FAILED'), forgedLinesInLog: forged.length, linesNotTheDaemons: 0, warningsDuringHang: warningsDuring,
        hangS: Math.round((performance.now() - hungAt) / 100) / 10, exitMs, lines: all.length,
      });
    } finally {
      await run.sender.close();
      await run.d.stop();
    }
  }, 120_000);

  it('failures and counts: only what the host saw counts (each lie is a "protocol" failure, a SIGXCPU it sent itself a crash); NCRs reach BIND; `shutdown` wins over a hung unload()', async () => {
    const run = await startDaemon(mode, FORGE_STATS, { 'signal-itself': mode === 'process' });
    try {
      await waitReady(run);
      await carryNcrs(run, `forge-stats-${mode}`, 10);
      // 20 select_key calls: every variant ran at least twice.
      expect(Number(readFileSync(join(run.stateDir, 'turn'), 'utf8'))).toBeGreaterThanOrEqual(16);
      const status = await waitReady(run);
      expect(status.failures['cpu-limit']).toBe(0);
      expect(status.failures.timeout).toBe(0);
      expect(status.timeouts).toBe(0);
      // In a process it also killed itself with SIGXCPU: a crash, not a CPU limit it never reached.
      if (mode === 'process') expect(status.failures.crash).toBeGreaterThanOrEqual(2);
      expect(Object.entries(status.failures).filter(([kind, n]) => n > 0 && kind !== 'protocol' && (mode === 'thread' || kind !== 'crash'))).toEqual([]);
      // Six lying variants in eight, each caught: the library's process or thread replaced each time.
      expect(status.failures.protocol).toBeGreaterThanOrEqual(12);
      expect(status.restarts).toBeGreaterThanOrEqual(12);
      expect(status.logLinesSuppressed).toBeLessThan(1_000_000);
      expect(status.nonZeroReturns).toBe(0);
      // Latency is the host's own measure of the round trip, not the library's 1e15 µs.
      expect(status.latencyUs.max).toBeLessThan(60_000_000);
      const stats = await run.d.stats();
      expect(stats[`hook-library[${FORGE_STATS}].failures`]).toBe(status.failures.protocol + status.failures.crash);
      expect(stats[`hook-library[${FORGE_STATS}].non-zero-returns`]).toBe(0);

      const lines = checkLogLines(readFileSync(run.logFile, 'utf8'), run.d.pid);
      expect(lines.filter((l) => l.id === 'HOOKS_LIBRARY_RESTARTING').every((l) => /worker lost \((protocol|crash): /.test(l.line))).toBe(true);

      await waitReady(run);
      const exitMs = await shutdownAtDeadline(run, mode, 'shutdown');
      checkLogLines(readFileSync(run.logFile, 'utf8'), run.d.pid);
      figures({
        test: 'forge-stats', mode, calls: status.calls, failures: Object.fromEntries(Object.entries(status.failures).filter(([, n]) => n > 0)),
        restarts: status.restarts, logLinesSuppressed: status.logLinesSuppressed, nonZeroReturns: status.nonZeroReturns, latencyMaxUs: status.latencyUs.max, exitMs,
      });
    } finally {
      await run.sender.close();
      await run.d.stop();
    }
  }, 120_000);
});

describe('isolation "process": the daemon killed outright', () => {
  it('SIGKILL gives the daemon no say: bubblewrap\'s --die-with-parent ends the sandbox with it, even one spinning in a callout', async () => {
    const run = await startDaemon('process', FORGE_LOGS, { flood: 10 });
    try {
      const before = await waitReady(run);
      // Spinning, the library's process never notices its channel closing: only the kernel can end it.
      writeFileSync(join(run.stateDir, 'spin-now'), '');
      await run.sender.send(ncr({ fqdn: 'forge-spin.example.com.', ipAddress: '192.0.2.251' }));
      for (let i = 0; i < 200 && (await libraryStatus(run)).calls === before.calls; i++) await sleep(25);
      await sleep(300);
      const tree = descendants(run.d.pid);
      expect(alive(run.stateDir).length).toBeGreaterThan(0);
      run.d.child.kill('SIGKILL');
      await run.d.exited;
      // Bounded wait: the kernel delivers the parent-death signal, then the namespace's init dies.
      let left = alive(run.stateDir, tree);
      for (let i = 0; i < 100 && left.length > 0; i++) {
        await sleep(50);
        left = alive(run.stateDir, tree);
      }
      expect(left).toEqual([]);
    } finally {
      await run.sender.close();
      await run.d.stop();
    }
  }, 60_000);
});
