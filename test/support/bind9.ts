/**
 * Test helper: a throw-away BIND 9 (`named -g`) on 127.0.0.1 at a free high
 * port, with its own temp directory, dynamic zones and TSIG keys.
 *
 *   const bind = await startBind9({ keys: [...], zones: [...] });
 *   ... bind.port ...
 *   await bind.stop();            // in afterAll: SIGTERM to its PID, SIGKILL if it lingers
 *
 * `digRecords` / `readZone` read what BIND serves, through `dig`, never through
 * d2box's own code.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stopChild, wrapCommand } from './child-process.js';
import { TestLog } from './test-logs.js';

export interface Bind9Key {
  name: string;
  /** BIND spelling: hmac-md5, hmac-sha1 ... hmac-sha512, optionally truncated: hmac-sha256-128. */
  algorithm: string;
  /** Base64. */
  secret: string;
}

export interface Bind9Zone {
  /** Zone name without the trailing dot, e.g. "example.com" or "2.0.192.in-addr.arpa". */
  name: string;
  /** Names of the keys allowed to update it (`allow-update { key k; ... }`). */
  updateKeys: string[];
  /** Extra zone-file lines after SOA and NS. */
  records?: string[];
}

export interface Bind9Options {
  keys: Bind9Key[];
  zones: Bind9Zone[];
  /**
   * Command prefix that named and the readiness dig run under, e.g.
   * `['ip', 'netns', 'exec', 'ns1']` to serve 127.0.0.1 of that network namespace
   * (then pass the same prefix to digRecords/readZone). It must exec the program.
   */
  wrap?: string[];
}

export interface Bind9Server {
  readonly port: number;
  readonly pid: number;
  readonly dir: string;
  /** Everything named wrote to stderr so far (its log, with -g). */
  log(): string;
  stop(): Promise<void>;
  /** A DNS outage: named stopped (SIGTERM, by PID), its zones and journals kept. */
  halt(): Promise<void>;
  /** named started again on the same port and files, once it answers for every zone (`pid` is then the new one). */
  resume(): Promise<void>;
}

export interface DigRecord {
  name: string;
  ttl: number;
  class: string;
  type: string;
  data: string;
}

const STARTUP_ATTEMPTS = 3;

function run(cmd: string, args: string[], timeoutMs = 10_000, wrap?: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const [file, argv] = wrapCommand(wrap, cmd, args);
  return new Promise((resolve) => {
    execFile(file, argv, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException & { code?: unknown }).code === 'number' ? Number((err as { code?: unknown }).code) : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** A port free on 127.0.0.1 for both TCP and UDP (named listens on both). */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = net.createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const p = (srv.address() as net.AddressInfo).port;
        srv.close(() => resolve(p));
      });
    });
    const udpOk = await new Promise<boolean>((resolve) => {
      const s = dgram.createSocket('udp4');
      s.once('error', () => { s.close(); resolve(false); });
      s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (udpOk && port >= 1024) return port;
  }
  throw new Error('no free port found');
}

function namedConf(dir: string, port: number, opts: Bind9Options): string {
  const keys = opts.keys.map((k) => `key "${k.name}" { algorithm ${k.algorithm}; secret "${k.secret}"; };`).join('\n');
  const zones = opts.zones
    .map((z) => {
      const allow = z.updateKeys.length ? z.updateKeys.map((k) => `key "${k}";`).join(' ') : 'none;';
      return `zone "${z.name}" { type primary; file "${join(dir, `${z.name}.db`)}"; allow-update { ${allow} }; };`;
    })
    .join('\n');
  return `options {
  directory "${dir}";
  pid-file "${join(dir, 'named.pid')}";
  session-keyfile "${join(dir, 'session.key')}";
  managed-keys-directory "${dir}";
  listen-on port ${port} { 127.0.0.1; };
  listen-on-v6 { none; };
  recursion no;
  dnssec-validation no;
  notify no;
  allow-query { 127.0.0.1; };
  allow-transfer { 127.0.0.1; };
};
controls { };
${keys}
${zones}
`;
}

function zoneFile(z: Bind9Zone): string {
  return [
    '$TTL 300',
    `@ IN SOA ns.${z.name}. admin.${z.name}. 1 3600 900 604800 300`,
    `@ IN NS ns.${z.name}.`,
    `ns IN A 127.0.0.1`,
    ...(z.records ?? []),
    '',
  ].join('\n');
}


async function startOnce(opts: Bind9Options): Promise<Bind9Server> {
  const dir = mkdtempSync(join(tmpdir(), 'd2box-bind9-'));
  const port = await freePort();
  const conf = join(dir, 'named.conf');
  writeFileSync(conf, namedConf(dir, port, opts));
  for (const z of opts.zones) writeFileSync(join(dir, `${z.name}.db`), zoneFile(z));

  const check = await run('named-checkconf', [conf]);
  if (check.code !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`named-checkconf failed: ${check.stdout}${check.stderr}`);
  }

  const child = spawn(...wrapCommand(opts.wrap, 'named', ['-g', '-n', '1', '-c', conf]), { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const testLog = new TestLog(`named port ${port} (pid ${child.pid})`);
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => {
    if (log.length < 1_000_000) log += d;
    testLog.write(d);
  });
  const pid = child.pid;
  if (pid === undefined) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error('named did not start');
  }

  // The named running now: halt() and resume() replace it.
  let current = { child, pid };
  const halt = () => stopChild(current.child, current.pid);
  const resume = async () => {
    await halt();
    const again = spawn(...wrapCommand(opts.wrap, 'named', ['-g', '-n', '1', '-c', conf]), { stdio: ['ignore', 'ignore', 'pipe'] });
    again.stderr!.setEncoding('utf8');
    again.stderr!.on('data', (d: string) => {
      if (log.length < 1_000_000) log += d;
    });
    if (again.pid === undefined) throw new Error('named did not start again');
    current = { child: again, pid: again.pid };
    if (!(await answersEveryZone(again, port, opts))) throw new Error(`named did not come back on port ${port}:\n${log.slice(-3000)}`);
  };
  const stop = async () => {
    await halt();
    rmSync(dir, { recursive: true, force: true });
  };

  if (!(await answersEveryZone(child, port, opts))) {
    const text = log;
    await stop();
    throw new Error(`named did not come up on port ${port}:\n${text.slice(-3000)}`);
  }
  return { port, get pid() { return current.pid; }, dir, log: () => log, stop, halt, resume };
}

/** Waits until named answers for every zone: bounded attempts, each bounded in time. */
async function answersEveryZone(child: ChildProcess, port: number, opts: Bind9Options): Promise<boolean> {
  const deadline = Date.now() + 20_000;
  let ready = false;
  for (let i = 0; i < 100 && Date.now() < deadline && child.exitCode === null; i++) {
    let all = true;
    for (const z of opts.zones) {
      const r = await run('dig', ['@127.0.0.1', '-p', String(port), '+time=1', '+tries=1', '+short', z.name, 'SOA'], 3_000, opts.wrap);
      if (r.code !== 0 || !r.stdout.trim()) { all = false; break; }
    }
    if (all) { ready = true; break; }
    await new Promise((r) => setTimeout(r, 100));
  }
  return ready;
}

/** Starts named; retries with another port if the chosen one was taken meanwhile. */
export async function startBind9(opts: Bind9Options): Promise<Bind9Server> {
  let last: unknown;
  for (let i = 0; i < STARTUP_ATTEMPTS; i++) {
    try {
      return await startOnce(opts);
    } catch (e) {
      last = e;
    }
  }
  throw last;
}

function parseDigLines(out: string): DigRecord[] {
  const recs: DigRecord[] = [];
  for (const line of out.split('\n')) {
    if (!line.trim() || line.startsWith(';')) continue;
    const m = /^(\S+)\s+(\d+)\s+(\S+)\s+(\S+)\s*(.*)$/.exec(line.trim());
    if (m) recs.push({ name: m[1]!.toLowerCase(), ttl: Number(m[2]), class: m[3]!, type: m[4]!, data: m[5]!.trim() });
  }
  return recs;
}

/** Records of one name and type as BIND answers them (`dig +noall +answer`); `wrap` as in Bind9Options. */
export async function digRecords(port: number, name: string, type: string, wrap?: readonly string[]): Promise<DigRecord[]> {
  const r = await run('dig', ['@127.0.0.1', '-p', String(port), '+time=2', '+tries=1', '+noall', '+answer', name, type], 10_000, wrap);
  if (r.code !== 0) throw new Error(`dig failed (${r.code}): ${r.stderr}${r.stdout}`);
  return parseDigLines(r.stdout).filter((x) => x.type === type.toUpperCase());
}

/**
 * The names among `fqdns` that still have no A record in the zone, after waiting for them
 * (bounded: 60 × 250 ms, generous for a busy machine). Checked with dig, never through d2box.
 */
export async function namesWithoutA(port: number, fqdns: readonly string[]): Promise<string[]> {
  const missing = async (): Promise<string[]> => {
    const out: string[] = [];
    for (const fqdn of fqdns) if ((await digRecords(port, fqdn, 'A')).length === 0) out.push(fqdn);
    return out;
  };
  let left = await missing();
  for (let i = 0; i < 60 && left.length > 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    left = await missing();
  }
  return left;
}

/** Every record of a zone, by AXFR through dig (SOA lines dropped); `wrap` as in Bind9Options. */
export async function readZone(port: number, zone: string, wrap?: readonly string[]): Promise<DigRecord[]> {
  const r = await run('dig', ['@127.0.0.1', '-p', String(port), '+time=2', '+tries=1', '+noall', '+answer', zone, 'AXFR'], 10_000, wrap);
  if (r.code !== 0 || /Transfer failed|connection refused/i.test(r.stdout)) throw new Error(`AXFR of ${zone} failed: ${r.stderr}${r.stdout}`);
  return parseDigLines(r.stdout).filter((x) => x.type !== 'SOA');
}
