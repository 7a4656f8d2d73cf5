/**
 * `npm run bench:d2`: d2box next to Kea's own kea-dhcp-ddns (C++, Debian's
 * Kea 2.2.0), same machine, same run, same inputs (DESIGN.md, "Performance
 * targets"; issue 6).
 *
 * For each target — (a) `fast`: a UPDATE responder written for the benchmark
 * that answers NOERROR signed with TSIG, (b) `bind`: a real BIND 9 (named -n 1)
 * behind a counting UDP relay — and each daemon — d2box with a select_key
 * library in its worker (the sample select-key-policy, mapping the server to
 * the key), the same with the library in a sandboxed process ("isolation":
 * "process"; its processes' CPU and memory counted with the daemon's), d2box
 * with no library, d2box with the key held by a library in its worker (it signs and
 * verifies every update itself: bench/fixtures/held-key-select-key.mjs), Kea's kea-dhcp-ddns — configured alike
 * (one forward and one reverse domain, one HMAC-SHA256 TSIG key, 127.0.0.1 at
 * high ports, temp dirs), each run:
 *   start the daemon; warm up (W adds, then their W removes, unmeasured); N add NCRs, then the N
 *   removes, with the same window of NCRs in flight (bench/ncr-load.ts);
 *   completion seen only from outside (bench/update-responder.ts: the answer to
 *   each NCR's reverse UPDATE); CPU seconds (utime+stime of /proc/PID/stat over
 *   the measured part) and peak RSS (VmHWM); stop it by PID.
 * Daemons take turns within each round, so all see the same state of this
 * shared machine. The table gives the median of the runs (min, max) and the
 * ratio d2box / Kea per figure; the last line is
 * `ratio=<d2box with select_key NCR/s ÷ Kea NCR/s>` against the fast responder.
 *
 * Options: --quick (N=100, 1 run), --n N, --runs R, --window W (or none: send as
 * fast as possible), --warmup W,
 * --targets fast,bind, --daemons d2box+select_key,d2box+select_key/process,d2box+held_key,d2box,d2box+journal,d2box/main-loop-reader,kea, --severity S (both
 * daemons' root logger at S; default: each as configured out of the box, INFO). Environment:
 * D2BENCH_DUMP=FILE appends each completion (send time, latency) per phase;
 * D2BENCH_NODE_ARGS adds node options to the d2box daemon (e.g. --cpu-prof);
 * D2BENCH_D2BOX_CLI runs another build of d2box (a cli.js path); D2BENCH_KEEP
 * keeps the daemons' temp dirs (configuration, log).
 * --compare CLI (a cli.js of another build, e.g. the commit before a change, built
 * elsewhere) runs each d2box daemon a second time per round with that build, as
 * `<daemon>@compare`, taking turns with the others: on a noisy machine two
 * builds are only comparable side by side. --help prints this.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { startBind9, freePort, type Bind9Server } from '../test/support/bind9.js';
import { hrMs, runLoad, type CompletionSource, type LoadResult } from './ncr-load.js';
import type { ResponderCommand, ResponderMessage, ResponderOptions } from './update-responder.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url)); // dist/bench/ → the repository
const KEA_D2 = '/usr/sbin/kea-dhcp-ddns';
const FORWARD_ZONE = 'bench.example.';
const REVERSE_ZONE = '10.in-addr.arpa.';
const KEY = { name: 'bench.key', algorithm: 'HMAC-SHA256', secret: 'OGQ3ZjQzNDBiZTk1YjI2ZDY2NmE1ZTBmZjM1ZmY5MmQ=' };
const SELECT_KEY_LIB = join(ROOT, 'dist/sample-hooks/select-key-policy/index.js');
/** The same key, held by a library that signs and verifies every update itself (issue 13). */
const HELD_KEY_LIB = join(ROOT, 'bench/fixtures/held-key-select-key.mjs');

type DaemonKind = 'd2box+select_key' | 'd2box+select_key/process' | 'd2box+held_key' | 'd2box' | 'd2box+journal' | 'd2box/main-loop-reader' | 'kea';
type TargetKind = 'fast' | 'bind';
const ALL_DAEMONS: DaemonKind[] = ['d2box+select_key', 'd2box+select_key/process', 'd2box+held_key', 'd2box', 'd2box+journal', 'd2box/main-loop-reader', 'kea'];
const ALL_TARGETS: TargetKind[] = ['fast', 'bind'];

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    n: { type: 'string' },
    runs: { type: 'string' },
    window: { type: 'string' },
    warmup: { type: 'string' },
    targets: { type: 'string' },
    daemons: { type: 'string' },
    severity: { type: 'string' },
    compare: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});
if (args.help) {
  // The options and environment, as the header of this file gives them.
  const src = readFileSync(fileURLToPath(import.meta.url), 'utf8');
  const doc = /\/\*\*([^]*?)\*\//.exec(src)?.[1] ?? '';
  console.log(doc.split('\n').map((l) => l.replace(/^ \* ?/, '')).join('\n').trim());
  process.exit(0);
}
if (args.compare !== undefined && !existsSync(args.compare)) throw new Error(`--compare: no such file ${args.compare}`);
const QUICK = args.quick === true;
const N = Number(args.n ?? (QUICK ? 100 : 5000));
const RUNS = Number(args.runs ?? (QUICK ? 1 : 3));
// `--window none`: no window at all, the load generator sends as fast as it can (a DHCP server's burst after an outage).
const WINDOW = args.window === 'none' ? Infinity : Number(args.window ?? 128);
const WARMUP = Number(args.warmup ?? (QUICK ? 50 : 1000));
const TARGETS = (args.targets?.split(',') ?? ALL_TARGETS) as TargetKind[];
const KINDS = (args.daemons?.split(',') ?? ALL_DAEMONS) as DaemonKind[];
/** Another build's cli.js: each d2box daemon also runs with it, as `<daemon>@compare`. */
const COMPARE_CLI = args.compare;
/** A daemon as run and reported: its kind, `@compare` when it runs the --compare build. */
type DaemonLabel = DaemonKind | `${DaemonKind}@compare`;
const DAEMONS: DaemonLabel[] = KINDS.flatMap((k): DaemonLabel[] => (COMPARE_CLI && k !== 'kea' ? [k, `${k}@compare`] : [k]));
const kindOf = (d: DaemonLabel): DaemonKind => d.split('@')[0] as DaemonKind;
/** Both daemons' `loggers` (root logger to stdout at this severity); by default none: each logs as it does out of the box (INFO). */
const SEVERITY = args.severity;
for (const [k, v] of Object.entries({ N, RUNS, WINDOW, WARMUP })) {
  if (!(Number.isInteger(v) || (k === 'WINDOW' && v === Infinity)) || v < (k === 'WARMUP' ? 0 : 1)) throw new Error(`bad ${k}: ${v}`);
}
if (TARGETS.some((t) => !ALL_TARGETS.includes(t))) throw new Error(`--targets: one of ${ALL_TARGETS.join(',')}`);
if (KINDS.some((d) => !ALL_DAEMONS.includes(d))) throw new Error(`--daemons: one of ${ALL_DAEMONS.join(',')}`);
/** An NCR that has not completed this long after it was sent is lost. */
const LOST_AFTER_MS = 10_000;
const CLK_TCK = 100;

// ---------------------------------------------------------------- observer (responder / relay)

class Observer implements CompletionSource {
  private handler: ((idx: number[], t: number[]) => void) | undefined;
  private seq = 0;
  private readonly waiting = new Map<number, (m: Extract<ResponderMessage, { type: 'counts' }>) => void>();
  private constructor(
    private readonly worker: Worker,
    readonly port: number,
  ) {
    worker.on('message', (m: ResponderMessage) => {
      if (m.type === 'done') this.handler?.(m.idx, m.t);
      else if (m.type === 'counts') {
        this.waiting.get(m.seq)?.(m);
        this.waiting.delete(m.seq);
      }
    });
  }

  static async start(opts: ResponderOptions): Promise<Observer> {
    const worker = new Worker(new URL('./update-responder.js', import.meta.url), { workerData: opts });
    const port = await new Promise<number>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('update responder did not start')), 10_000);
      worker.once('error', (e) => {
        clearTimeout(t);
        reject(e);
      });
      worker.on('message', (m: ResponderMessage) => {
        if (m.type === 'ready') {
          clearTimeout(t);
          resolve(m.port);
        }
      });
    });
    return new Observer(worker, port);
  }

  onDone(handler: ((idx: number[], t: number[]) => void) | undefined): void {
    this.handler = handler;
  }

  counts(reset = false): Promise<Extract<ResponderMessage, { type: 'counts' }>> {
    const seq = ++this.seq;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('update responder does not answer')), 5_000);
      this.waiting.set(seq, (m) => {
        clearTimeout(t);
        resolve(m);
      });
      this.worker.postMessage({ type: 'counts', seq, reset } satisfies ResponderCommand);
    });
  }

  async stop(): Promise<void> {
    this.worker.postMessage({ type: 'stop' } satisfies ResponderCommand);
    const t = setTimeout(() => void this.worker.terminate(), 2_000);
    await new Promise<void>((r) => this.worker.once('exit', () => r()));
    clearTimeout(t);
  }
}

// ---------------------------------------------------------------- daemons

function d2Config(ncrPort: number, dnsPort: number, daemon: DaemonKind): unknown {
  const server = [{ 'ip-address': '127.0.0.1', port: dnsPort }];
  const d2: Record<string, unknown> = {
    'ip-address': '127.0.0.1',
    port: ncrPort,
    'dns-server-timeout': 500,
    'ncr-protocol': 'UDP',
    'ncr-format': 'JSON',
    'tsig-keys': [KEY],
    'forward-ddns': { 'ddns-domains': [{ name: FORWARD_ZONE, 'key-name': KEY.name, 'dns-servers': server }] },
    'reverse-ddns': { 'ddns-domains': [{ name: REVERSE_ZONE, 'key-name': KEY.name, 'dns-servers': server }] },
  };
  if (SEVERITY) d2['loggers'] = [{ name: 'kea-dhcp-ddns', output_options: [{ output: 'stdout' }], severity: SEVERITY }];
  if (daemon === 'd2box+select_key' || daemon === 'd2box+select_key/process') {
    const library: Record<string, unknown> = { library: SELECT_KEY_LIB, parameters: { 'by-server': { [`127.0.0.1:${dnsPort}`]: KEY.name } } };
    // The same library in a bubblewrap-sandboxed child process (secrets redacted, as by default there).
    if (daemon === 'd2box+select_key/process') library['sandbox'] = { isolation: 'process' };
    d2['hooks-libraries'] = [library];
  }
  if (daemon === 'd2box+held_key') {
    d2['hooks-libraries'] = [{ library: HELD_KEY_LIB, parameters: { 'key-name': KEY.name, secret: KEY.secret } }];
  }
  // What the crash-safe queue costs: every NCR written and synced before it is queued (D2BOX_JOURNAL_DIR is the daemon's temp dir).
  if (daemon === 'd2box+journal') d2['d2box-journal-file'] = 'ncr.journal';
  // The NCR socket read on the main loop instead of its own thread (what a burst costs without the thread).
  if (daemon === 'd2box/main-loop-reader') d2['d2box-ncr-reader-thread'] = false;
  return { DhcpDdns: d2 };
}

interface Daemon {
  pid: number;
  dir: string;
  child: ChildProcess;
  logFile: string;
}

/** Daemons running now: stopped by PID if the benchmark itself is interrupted. */
const live = new Set<Daemon>();
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    for (const d of live) {
      try {
        process.kill(d.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      rmSync(d.dir, { recursive: true, force: true });
    }
    process.exit(130);
  });
}

/** Datagrams the kernel dropped at a 127.0.0.1 UDP socket (last column of /proc/net/udp): NCRs that never reached the daemon. */
function udpDrops(port: number): number {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')} `;
  try {
    for (const line of readFileSync('/proc/net/udp', 'utf8').split('\n')) {
      const cols = line.trim().split(/\s+/);
      if (cols[1]?.endsWith(hex.trim())) return Number(cols[cols.length - 1]);
    }
  } catch {
    /* not Linux */
  }
  return NaN;
}

function udpPortBound(port: number): boolean {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')} `;
  try {
    return readFileSync('/proc/net/udp', 'utf8').includes(hex);
  } catch {
    return false;
  }
}

async function startDaemon(label: DaemonLabel, dnsPort: number): Promise<Daemon & { ncrPort: number }> {
  const daemon = kindOf(label);
  const dir = mkdtempSync(join(tmpdir(), `d2bench-${daemon.replace(/\W/g, '')}-`));
  const ncrPort = await freePort();
  const conf = join(dir, 'd2.json');
  writeFileSync(conf, JSON.stringify(d2Config(ncrPort, dnsPort, daemon), null, 2));
  const logFile = join(dir, 'daemon.log');
  const out = openSync(logFile, 'w');
  let child: ChildProcess;
  if (daemon === 'kea') {
    child = spawn(KEA_D2, ['-c', conf], {
      cwd: dir,
      stdio: ['ignore', out, out],
      env: { ...process.env, KEA_PIDFILE_DIR: dir, KEA_LOCKFILE_DIR: dir },
    });
  } else {
    const extra = (process.env['D2BENCH_NODE_ARGS'] ?? '').split(' ').filter(Boolean);
    const cli = label.endsWith('@compare') ? COMPARE_CLI! : (process.env['D2BENCH_D2BOX_CLI'] ?? join(ROOT, 'dist/src/cli.js'));
    // Another build (--compare) loads this build's sample library: its hooks directory must allow it.
    const hooksPath = [process.env['D2BOX_HOOKS_PATH'], join(ROOT, 'dist/sample-hooks'), join(ROOT, 'bench/fixtures')].filter(Boolean).join(':');
    child = spawn(process.execPath, [...extra, cli, '-c', conf], { cwd: dir, stdio: ['ignore', out, out], env: { ...process.env, D2BOX_HOOKS_PATH: hooksPath, D2BOX_JOURNAL_DIR: dir } });
  }
  closeSync(out);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${daemon} did not start`);
  const d = { pid, dir, child, logFile, ncrPort };
  live.add(d);
  const deadline = Date.now() + 15_000;
  for (let i = 0; i < 300 && Date.now() < deadline; i++) {
    if (child.exitCode !== null) break;
    if (udpPortBound(ncrPort)) return d;
    await sleep(50);
  }
  const log = readFileSync(logFile, 'utf8');
  await stopDaemon(d);
  throw new Error(`${daemon} did not bind its NCR port ${ncrPort}:\n${log.slice(-2000)}`);
}

async function stopDaemon(d: Daemon): Promise<void> {
  const exited = (ms: number) =>
    new Promise<boolean>((resolve) => {
      if (d.child.exitCode !== null || d.child.signalCode !== null) return resolve(true);
      const t = setTimeout(() => resolve(false), ms);
      d.child.once('exit', () => {
        clearTimeout(t);
        resolve(true);
      });
    });
  try {
    process.kill(d.pid, 'SIGTERM');
  } catch {
    /* gone */
  }
  if (!(await exited(8_000))) {
    try {
      process.kill(d.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    await exited(2_000);
  }
  live.delete(d);
  if (!process.env['D2BENCH_KEEP']) rmSync(d.dir, { recursive: true, force: true });
}

/**
 * The daemon and every process below it: a process-mode hook library runs in
 * a child (prlimit → bwrap → node), whose CPU and memory are the daemon's cost.
 */
function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // gone meanwhile
    }
  }
  const tree = [pid];
  for (let i = 0; i < tree.length && i < 1000; i++) tree.push(...(children.get(tree[i]!) ?? []));
  return tree;
}

/** utime + stime of a process (all its threads) and the processes below it, seconds. */
function cpuSeconds(pid: number): number {
  let ticks = 0;
  for (const p of processTree(pid)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]); // fields 14 and 15
    } catch {
      // gone meanwhile
    }
  }
  return ticks / CLK_TCK;
}

/** Peak RSS (VmHWM) of the process, plus that of each process below it (an upper bound of their joint peak). */
function peakRssMb(pid: number): number {
  let kb = 0;
  for (const p of processTree(pid)) {
    try {
      const m = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) kb += Number(m[1]);
    } catch {
      // gone meanwhile
    }
  }
  return kb > 0 ? kb / 1024 : NaN;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- one run

interface RunResult {
  target: TargetKind;
  daemon: DaemonLabel;
  run: number;
  ncrs: number;
  completed: number;
  lost: number;
  ncrPerSec: number;
  p50: number;
  p99: number;
  cpu: number;
  rssMb: number;
  zones: Record<string, number>;
  rcodes: Record<string, number>;
  /** NCR datagrams dropped by the kernel at the daemon's socket (receive buffer full). */
  drops: number;
  error?: string;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

let indexBase = 1;
function takeIndexes(count: number): number {
  const first = indexBase;
  indexBase += count;
  if (indexBase >= 1 << 24) throw new Error('out of NCR indexes (10.0.0.0/8)');
  return first;
}

async function oneRun(target: TargetKind, daemon: DaemonLabel, run: number, obs: Observer): Promise<RunResult> {
  const base: RunResult = { target, daemon, run, ncrs: 2 * N, completed: 0, lost: 2 * N, ncrPerSec: 0, p50: NaN, p99: NaN, cpu: NaN, rssMb: NaN, zones: {}, rcodes: {}, drops: NaN };
  const d = await startDaemon(daemon, obs.port);
  try {
    const load = (first: number, count: number, changeType: 0 | 1, deadlineMs: number): Promise<LoadResult> =>
      runLoad({ port: d.ncrPort, first, count, changeType, forwardZone: FORWARD_ZONE, window: WINDOW, lostAfterMs: LOST_AFTER_MS, deadlineMs }, obs);
    if (WARMUP > 0) {
      // Both kinds of transaction, so that neither phase below starts on cold code.
      const first = takeIndexes(WARMUP);
      const w = await load(first, WARMUP, 0, 30_000);
      if (w.completed === 0) throw new Error(`warm-up: none of ${WARMUP} NCRs completed`);
      await load(first, WARMUP, 1, 30_000);
    }
    await sleep(100);
    await obs.counts(true);
    const drops0 = udpDrops(d.ncrPort);
    const cpu0 = cpuSeconds(d.pid);
    const first = takeIndexes(N);
    const deadline = Math.max(60_000, N * 20);
    const adds = await load(first, N, 0, deadline);
    const removes = await load(first, N, 1, deadline);
    const cpu1 = cpuSeconds(d.pid);
    const rss = peakRssMb(d.pid);
    const drops = udpDrops(d.ncrPort) - drops0;
    await sleep(50);
    const counts = await obs.counts(true);
    const lat = [...adds.latencies, ...removes.latencies].sort((a, b) => a - b);
    const completed = adds.completed + removes.completed;
    // Each phase from its first send to its last completion (not the wait for lost NCRs in between).
    const span = Math.max(0, adds.endMs - adds.startMs) + Math.max(0, removes.endMs - removes.startMs);
    return {
      ...base,
      completed,
      lost: adds.lost.length + removes.lost.length,
      ncrPerSec: completed / (span / 1000),
      p50: percentile(lat, 50),
      p99: percentile(lat, 99),
      cpu: cpu1 - cpu0,
      rssMb: rss,
      zones: counts.zones,
      rcodes: counts.rcodes,
      drops,
    };
  } catch (e) {
    return { ...base, error: (e as Error).message };
  } finally {
    await stopDaemon(d);
  }
}

// ---------------------------------------------------------------- table

const median = (xs: number[]): number => {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const fmt = (x: number, digits = 0): string => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');

interface Summary {
  ncrPerSec: number;
  min: number;
  max: number;
  p50: number;
  p99: number;
  cpu: number;
  rssMb: number;
  ncrs: number;
  completed: number;
  lost: number;
}

function summarize(rs: RunResult[]): Summary {
  const rates = rs.map((r) => r.ncrPerSec);
  return {
    ncrPerSec: median(rates),
    min: Math.min(...rates),
    max: Math.max(...rates),
    p50: median(rs.map((r) => r.p50)),
    p99: median(rs.map((r) => r.p99)),
    cpu: median(rs.map((r) => r.cpu)),
    rssMb: Math.max(...rs.map((r) => r.rssMb)),
    ncrs: rs.reduce((a, r) => a + r.ncrs, 0),
    completed: rs.reduce((a, r) => a + r.completed, 0),
    lost: rs.reduce((a, r) => a + r.lost, 0),
  };
}

function printTable(target: TargetKind, results: RunResult[]): Map<DaemonLabel, Summary> {
  const sums = new Map<DaemonLabel, Summary>();
  for (const d of DAEMONS) sums.set(d, summarize(results.filter((r) => r.target === target && r.daemon === d)));
  const title = target === 'fast' ? 'fast signing UPDATE responder' : 'BIND 9 (named -n 1) behind the counting relay';
  console.log(`\n## ${title}: ${N} adds + ${N} removes per run, window ${WINDOW}, ${RUNS} run(s)`);
  console.log('| daemon | NCR/s median | min | max | p50 ms | p99 ms | CPU s | peak RSS MB | NCRs | completed | lost |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const [d, s] of sums) {
    console.log(`| ${d} | ${fmt(s.ncrPerSec)} | ${fmt(s.min)} | ${fmt(s.max)} | ${fmt(s.p50, 1)} | ${fmt(s.p99, 1)} | ${fmt(s.cpu, 2)} | ${fmt(s.rssMb, 1)} | ${s.ncrs} | ${s.completed} | ${s.lost} |`);
  }
  const kea = sums.get('kea');
  if (kea) {
    for (const [d, s] of sums) {
      if (d === 'kea') continue;
      const r = (a: number, b: number) => fmt(a / b, 2);
      console.log(
        `| ratio ${d}/kea | ${r(s.ncrPerSec, kea.ncrPerSec)} | ${r(s.min, kea.min)} | ${r(s.max, kea.max)} | ${r(s.p50, kea.p50)} | ${r(s.p99, kea.p99)} | ${r(s.cpu, kea.cpu)} | ${r(s.rssMb, kea.rssMb)} | | | |`,
      );
    }
  }
  return sums;
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  if (DAEMONS.includes('kea') && !existsSync(KEA_D2)) throw new Error(`${KEA_D2} is missing (Debian's kea-dhcp-ddns-server; scripts/setup.sh)`);
  if (KINDS.some((k) => k.startsWith('d2box+select_key')) && !existsSync(SELECT_KEY_LIB)) throw new Error(`${SELECT_KEY_LIB} is missing: npm run build`);
  const kea = (() => {
    try {
      return execFileSync(KEA_D2, ['-v'], { encoding: 'utf8' }).trim();
    } catch {
      return 'n/a';
    }
  })();
  console.log(`# d2box vs Kea kea-dhcp-ddns ${kea} — node ${process.version}, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')} at start`);
  const results: RunResult[] = [];
  const summaries = new Map<TargetKind, Map<DaemonLabel, Summary>>();
  for (const target of TARGETS) {
    let bind: Bind9Server | undefined;
    let obs: Observer | undefined;
    try {
      if (target === 'bind') {
        bind = await startBind9({
          keys: [{ name: KEY.name, algorithm: 'hmac-sha256', secret: KEY.secret }],
          zones: [
            { name: FORWARD_ZONE.slice(0, -1), updateKeys: [KEY.name] },
            { name: REVERSE_ZONE.slice(0, -1), updateKeys: [KEY.name] },
          ],
        });
      }
      const o: ResponderOptions = { mode: target === 'fast' ? 'respond' : 'proxy', reverseZone: REVERSE_ZONE, key: KEY };
      if (bind) o.upstreamPort = bind.port;
      obs = await Observer.start(o);
      for (let run = 1; run <= RUNS; run++) {
        for (const daemon of DAEMONS) {
          const t0 = hrMs();
          const r = await oneRun(target, daemon, run, obs);
          results.push(r);
          const zones = Object.entries(r.zones).map(([z, c]) => `${z}=${c}`).join(' ');
          const rc = Object.entries(r.rcodes).map(([z, c]) => `${z}=${c}`).join(' ');
          console.log(
            `run ${target} ${daemon} #${run}: ${r.ncrs} NCRs, completed ${r.completed}, lost ${r.lost}; ${fmt(r.ncrPerSec)} NCR/s, p50 ${fmt(r.p50, 1)} ms, p99 ${fmt(r.p99, 1)} ms, ` +
              `CPU ${fmt(r.cpu, 2)} s, peak RSS ${fmt(r.rssMb, 1)} MB; kernel drops at the NCR socket ${fmt(r.drops)}; UPDATEs ${zones || 'none'}; answers ${rc || 'none'} (${fmt((hrMs() - t0) / 1000, 1)} s)` +
              (r.error ? `; ERROR ${r.error}` : ''),
          );
        }
      }
    } finally {
      await obs?.stop();
      await bind?.stop();
    }
    summaries.set(target, new Map());
  }
  console.log(`\nload average ${loadavg().map((x) => x.toFixed(2)).join(' ')} at end (2 cores shared with other work: figures are noisy)`);
  for (const target of TARGETS) summaries.set(target, printTable(target, results));
  const fast = summaries.get('fast');
  const a = fast?.get('d2box+select_key')?.ncrPerSec ?? NaN;
  const b = fast?.get('kea')?.ncrPerSec ?? NaN;
  console.log(`\nratio=${fmt(a / b, 3)}`);
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
