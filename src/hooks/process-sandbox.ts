/**
 * The command line that starts one hook library's child process inside the
 * operating system's walls ("isolation": "process"). The OS is the boundary —
 * Node's permission model is only a second layer (Node's own documentation says
 * it does not hold against malicious code):
 *
 *   prlimit (CPU seconds, open files, address space)
 *     bwrap: new mount, PID, IPC, UTS, user, cgroup and network namespaces (only
 *            `lo`), --die-with-parent, --new-session, a cleared environment; the
 *            file system holds only the Node binary and its shared libraries, the
 *            worker runtime, the author API (`d2box/hooks`, at /node_modules/d2box),
 *            the library's package (libraryPackageRoot; all read-only), a fresh
 *            /proc and /dev, an empty /tmp, and the policy's `allow-write` paths
 *       node --experimental-permission: reads allowed only where bwrap shows
 *            files, writes only to `allow-write`; no child processes, no workers
 *         workers/process-worker.js
 *
 * Nothing here runs a library unconfined: when something is missing, the
 * library is refused with what is missing (processSandboxSupport()).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, realpathSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SandboxPolicy } from './library-config.js';

/** The package root: two levels above this file, in src/ (tsx) and in dist/src/ alike. */
const PACKAGE_ROOT = (() => {
  const here = dirname(fileURLToPath(import.meta.url));
  const up = resolvePath(here, '..', '..');
  return up.endsWith('/dist') ? dirname(up) : up;
})();
const DIST = join(PACKAGE_ROOT, 'dist');

/** The child's entry point: always the built JavaScript, since the sandbox holds no TypeScript loader. */
export const PROCESS_WORKER_FILE = join(DIST, 'workers', 'process-worker.js');

/** What the worker runtime imports, relative to the package root; nothing else of d2box is visible. */
const RUNTIME_PATHS = ['package.json', 'dist/workers', 'dist/src/hooks/protocol.js', 'dist/src/hooks/ipc-ports.js', 'dist/src/hooks/channel-frames.js', 'node_modules/comlink'];

/**
 * `d2box/hooks` for any library, wherever its folder: d2box's package is also
 * shown at /node_modules/d2box (its package.json and the author API only), where
 * Node's resolution ends up when the library's own folders hold no d2box.
 */
const AUTHOR_API_PATHS = ['package.json', 'dist/workers', 'dist/src/hooks/protocol.js'];
const AUTHOR_API_ROOT = '/node_modules/d2box';

export interface SandboxSupport {
  ok: boolean;
  /** What can run it, or what is missing. */
  detail: string;
}

let cachedSupport: SandboxSupport | undefined;

/** Whether this host can start a process-mode library; the answer is cached per process. */
export function processSandboxSupport(): SandboxSupport {
  cachedSupport ??= probeSupport();
  return cachedSupport;
}

function probeSupport(): SandboxSupport {
  const missing: string[] = [];
  for (const tool of ['bwrap', 'prlimit', 'ldd']) if (!findExecutable(tool)) missing.push(`${tool} (not found in PATH)`);
  if (!existsSync(PROCESS_WORKER_FILE)) missing.push(`${PROCESS_WORKER_FILE} (build d2box: npm run build)`);
  for (const path of RUNTIME_PATHS) if (!existsSync(join(PACKAGE_ROOT, path))) missing.push(join(PACKAGE_ROOT, path));
  if (missing.length > 0) return { ok: false, detail: `missing: ${missing.join(', ')}` };
  try {
    // The namespaces bwrap needs, tried for real: some containers forbid them.
    execFileSync(findExecutable('bwrap')!, ['--unshare-all', '--die-with-parent', ...nodeBinds().flatMap(([s, d]) => ['--ro-bind', s, d]), process.execPath, '-e', '0'], {
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 10_000,
      env: {},
    });
  } catch (err) {
    const stderr = String((err as { stderr?: Buffer }).stderr ?? '').trim();
    return { ok: false, detail: `bwrap cannot create its namespaces here: ${stderr || (err as Error).message}` };
  }
  return { ok: true, detail: `bwrap ${bwrapVersion()} with new mount, PID, IPC, UTS, user and network namespaces` };
}

function bwrapVersion(): string {
  try {
    return execFileSync(findExecutable('bwrap')!, ['--version'], { encoding: 'utf8', timeout: 5000 }).trim().replace(/^bubblewrap\s*/, '');
  } catch {
    return '(unknown version)';
  }
}

function findExecutable(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    const candidate = join(dir, name);
    try {
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      /* not there */
    }
  }
  return undefined;
}

let cachedNodeBinds: [string, string][] | undefined;

/** The Node binary and the shared libraries `ldd` says it loads, as [source, destination] pairs. */
function nodeBinds(): [string, string][] {
  if (cachedNodeBinds) return cachedNodeBinds;
  const binds: [string, string][] = [[realpathSync(process.execPath), process.execPath]];
  const out = execFileSync('ldd', [process.execPath], { encoding: 'utf8', timeout: 10_000 });
  for (const line of out.split('\n')) {
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
    const match = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (match) binds.push([realpathSync(match[1]!), match[1]!]);
  }
  cachedNodeBinds = binds;
  return binds;
}

/**
 * The library's package: the nearest folder at or above its file's with a package.json, so
 * a src/ → dist/ layout keeps its package.json and node_modules; the file's own folder when
 * there is none, or when that package is d2box itself (its samples and test libraries keep
 * their folder). Never the file system root or the daemon user's home, which a stray
 * package.json would otherwise show whole.
 */
export function libraryPackageRoot(libraryDir: string): string {
  const stops = new Set(['/', homedir(), PACKAGE_ROOT]);
  let dir = libraryDir;
  for (let depth = 0; depth < 64 && !stops.has(dir); depth++) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return libraryDir;
}

export interface SandboxCommand {
  file: string;
  args: string[];
  /** The environment prlimit and bwrap start with; bwrap clears it for the child. */
  env: Record<string, string>;
}

/**
 * The command that starts `libraryPath`'s child. Throws, saying what is missing,
 * when the sandbox cannot be built here.
 */
export function sandboxCommand(libraryPath: string, policy: SandboxPolicy): SandboxCommand {
  const support = processSandboxSupport();
  if (!support.ok) throw new Error(`"isolation": "process" cannot run on this host (${support.detail}); refusing to run the library unconfined`);
  const libraryDir = dirname(realpathSync(libraryPath));
  const libraryRoot = libraryPackageRoot(libraryDir);
  const readable: string[] = [];
  const bwrap: string[] = [
    '--unshare-all', // user, IPC, PID, network (only lo), UTS, cgroup
    '--die-with-parent',
    '--new-session',
    // No NODE_CHANNEL_FD: the channel on descriptor CHANNEL_FD is d2box's own
    // (channel-frames.ts), and Node must not read it as its IPC channel.
    '--clearenv',
    '--proc', '/proc',
    '--dev', '/dev',
    '--tmpfs', '/tmp',
    // First, so that d2box's own paths bound below stay on top when d2box is installed in the library's package.
    '--ro-bind', libraryRoot, libraryRoot,
  ];
  readable.push(libraryRoot);
  for (const [source, dest] of nodeBinds()) bwrap.push('--ro-bind', source, dest);
  for (const path of RUNTIME_PATHS) {
    const full = join(PACKAGE_ROOT, path);
    bwrap.push('--ro-bind', realpathSync(full), full);
    readable.push(full);
  }
  for (const path of AUTHOR_API_PATHS) bwrap.push('--ro-bind', realpathSync(join(PACKAGE_ROOT, path)), join(AUTHOR_API_ROOT, path));
  readable.push(AUTHOR_API_ROOT);
  const writable: string[] = [];
  for (const path of policy['allow-write']) {
    if (!isAbsolute(path)) throw new Error(`"allow-write" path ${JSON.stringify(path)} must be absolute`);
    if (!existsSync(path)) throw new Error(`"allow-write" path ${path} does not exist`);
    bwrap.push('--bind', path, path);
    writable.push(path);
    // What a library writes it may read back.
    readable.push(path);
  }
  bwrap.push('--chdir', libraryDir);
  const node = [
    '--experimental-permission',
    ...readable.map((p) => `--allow-fs-read=${p}`),
    ...writable.map((p) => `--allow-fs-write=${p}`),
    '--disable-warning=ExperimentalWarning',
    `--max-old-space-size=${policy['max-heap-mb']}`,
    PROCESS_WORKER_FILE,
  ];
  const limits = [
    // SIGXCPU at the soft limit, which the host reports as the CPU limit; SIGKILL a second later.
    `--cpu=${policy['max-cpu-seconds']}:${policy['max-cpu-seconds'] + 1}`,
    `--nofile=${policy['max-open-files']}`,
    // V8 reserves address space well beyond its heap; the cap is there against runaway
    // native allocation, the heap cap against a runaway JavaScript heap.
    `--as=${(policy['max-heap-mb'] + 2048) * 1024 * 1024}`,
  ];
  return {
    file: findExecutable('prlimit')!,
    args: [...limits, '--', findExecutable('bwrap')!, ...bwrap, process.execPath, ...node],
    env: {},
  };
}
