/**
 * Where a configuration may make d2box load code, create sockets and write
 * files: Kea 3.x's path hardening (CVE-2025-32801, -32802, -32803; Kea's
 * PathChecker in src/lib/util/filesystem.cc). Anyone who can send
 * `config-set` could otherwise run a module of their choosing as d2box's
 * user, or create files anywhere.
 *
 * - hook libraries only from the hooks directory (D2BOX_HOOKS_PATH),
 * - unix control sockets only in the socket directory (D2BOX_CONTROL_SOCKET_DIR,
 *   else Kea's KEA_CONTROL_SOCKET_DIR),
 * - log files only in the log directory (D2BOX_LOG_FILE_DIR, else KEA_LOG_FILE_DIR),
 * - config-write only into the directory the configuration was read from,
 * - the NCR journal (`d2box-journal-file`) only in the journal directory
 *   (D2BOX_JOURNAL_DIR, default /var/lib/d2box): it is rewritten and renamed,
 *   so it gets a directory of its own rather than sharing the log's.
 *
 * As in Kea, a bare file name is taken to be in the (first) allowed directory.
 * Unlike Kea, which wants the parent directory to be exactly the allowed one,
 * a variable may list several directories (separated by ':') and a path in a
 * subdirectory of one is allowed: d2box's libraries are ES modules that often
 * live in a folder of their own. Symbolic links are resolved before the check,
 * so a link inside the directory cannot point the daemon outside it.
 *
 * KEA_HOOKS_PATH is deliberately not honoured: Kea's hooks directory holds C++
 * `.so` libraries, which d2box cannot load; pointing d2box there would only
 * widen what it imports.
 */
import { existsSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export type PathRule = 'hooks' | 'control-socket' | 'log-file' | 'journal';

interface RuleSpec {
  /** Environment variables, first set wins. */
  env: string[];
  defaults: () => string[];
  /** How the refusal names the rule. */
  what: string;
}

/** The installed package's root: where package.json is, above src/ or dist/src/. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    dir = dirname(dir);
  }
  return process.cwd();
}

const RULES: Record<PathRule, RuleSpec> = {
  hooks: {
    env: ['D2BOX_HOOKS_PATH'],
    // What the package itself ships, compiled: as trusted as d2box's own code.
    defaults: () => [join(packageRoot(), 'dist', 'hook-libraries'), join(packageRoot(), 'dist', 'sample-hooks')],
    what: 'hook libraries are loaded only from the hooks directory',
  },
  'control-socket': {
    env: ['D2BOX_CONTROL_SOCKET_DIR', 'KEA_CONTROL_SOCKET_DIR'],
    // The examples' /tmp/d2box-ctrl-socket; a packaged install sets /run/d2box.
    defaults: () => [tmpdir()],
    what: 'unix control sockets are created only in the control socket directory',
  },
  'log-file': {
    env: ['D2BOX_LOG_FILE_DIR', 'KEA_LOG_FILE_DIR'],
    defaults: () => ['/var/log/d2box'],
    what: 'log files are written only in the log directory',
  },
  journal: {
    env: ['D2BOX_JOURNAL_DIR'],
    defaults: () => ['/var/lib/d2box'],
    what: 'the NCR journal is kept only in the journal directory',
  },
};

/** The directories a rule allows now (the environment is read at every check, so a test may change it). */
export function allowedDirectories(rule: PathRule): string[] {
  const spec = RULES[rule];
  for (const name of spec.env) {
    const value = process.env[name];
    if (value !== undefined && value.trim() !== '') {
      return value.split(':').map((d) => d.trim()).filter((d) => d !== '').map((d) => resolve(d));
    }
  }
  return spec.defaults();
}

/** The variable an operator sets to change a rule's directory. */
export function directoryVariable(rule: PathRule): string {
  return RULES[rule].env[0]!;
}

/** `path` with symbolic links resolved as far as the path exists. */
function realish(path: string): string {
  let head = path;
  const tail: string[] = [];
  for (let i = 0; i < 256; i++) {
    try {
      return join(realpathSync(head), ...tail.reverse());
    } catch {
      const up = dirname(head);
      if (up === head) return path;
      tail.push(basename(head));
      head = up;
    }
  }
  return path;
}

function inside(dir: string, path: string): boolean {
  const rel = relative(dir, path);
  return rel !== '' && !rel.startsWith('..' + sep) && rel !== '..' && !isAbsolute(rel);
}

export type PathCheck = { ok: true; path: string } | { ok: false; error: string };

/**
 * Checks a path a configuration names. A bare file name goes into the first
 * allowed directory (Kea's rule); a relative path with a directory part is
 * taken from `baseDir` (d2box's rule before the hardening, kept for existing
 * configurations). The answer is the path to use, or the refusal, which names
 * the rule, the allowed directory and the variable that changes it.
 */
export function checkPath(rule: PathRule, input: string, baseDir = process.cwd()): PathCheck {
  const dirs = allowedDirectories(rule);
  const trimmed = input.trim();
  const name = basename(trimmed);
  if (name === '' || name === '.' || name === '..') return { ok: false, error: `path: '${input}' has no filename` };
  const candidate = !trimmed.includes('/') ? join(dirs[0] ?? '.', trimmed) : isAbsolute(trimmed) ? trimmed : resolve(baseDir, trimmed);
  const real = realish(resolve(candidate));
  for (const dir of dirs) {
    if (inside(realish(dir), real)) {
      return { ok: true, path: !trimmed.includes('/') ? candidate : input };
    }
  }
  return {
    ok: false,
    error: `invalid path specified: '${dirname(resolve(candidate))}', supported path is '${dirs.join(':')}' (${RULES[rule].what}; set ${RULES[rule].env[0]} to change it)`,
  };
}

/**
 * Kea's Daemon::checkWriteConfigFile: config-write only into the directory
 * the configuration was read from (a bare name goes there). The answer is the
 * file to write, or the refusal.
 */
export function checkConfigWrite(configFile: string, filename: string): PathCheck {
  if (basename(filename) === '' || filename.endsWith('/')) return { ok: false, error: `config file:${filename} is missing file name` };
  if (configFile === '') return { ok: false, error: `file ${filename} must be in the same directory as the config file (none was read)` };
  const configDir = realish(dirname(resolve(configFile)));
  const target = filename.includes('/') ? resolve(filename) : join(dirname(resolve(configFile)), filename);
  if (realish(dirname(target)) !== configDir) {
    return { ok: false, error: `file ${filename} must be in the same directory as the config file (${configFile}): config-write writes only into the directory the configuration was read from` };
  }
  return { ok: true, path: target };
}

/** The parts of a parsed `DhcpDdns` configuration that name paths. */
interface PathBearingConfig {
  'hooks-libraries': { library: string }[];
  'control-socket'?: { 'socket-type'?: string; 'socket-name'?: string } | undefined;
  'control-sockets'?: { 'socket-type'?: string; 'socket-name'?: string }[] | undefined;
  loggers?: { output_options?: { output: string }[] | undefined }[] | undefined;
  'd2box-journal-file'?: string | undefined;
}

const NOT_FILES = /^(stdout|stderr|syslog(:.*)?)$/;

/**
 * Checks every path a parsed configuration names, before anything of it is
 * used (no library imported, no socket bound, no log file opened). Returns the
 * configuration with bare file names placed in their directories (a copy), or
 * the first refusal, saying where in the configuration it is.
 */
export function enforcePathPolicy<C extends PathBearingConfig>(config: C, baseDir = process.cwd()): { ok: true; config: C } | { ok: false; error: string } {
  const out = structuredClone(config);
  for (const [i, lib] of out['hooks-libraries'].entries()) {
    const c = checkPath('hooks', lib.library, baseDir);
    if (!c.ok) return { ok: false, error: `hooks-libraries[${i}]: library '${lib.library}' refused: ${c.error}` };
    lib.library = c.path;
  }
  const sockets = [...(out['control-socket'] ? [out['control-socket']] : []), ...(out['control-sockets'] ?? [])];
  for (const s of sockets) {
    if ((s['socket-type'] ?? 'unix') !== 'unix' || s['socket-name'] === undefined) continue;
    const c = checkPath('control-socket', s['socket-name'], baseDir);
    if (!c.ok) return { ok: false, error: `'socket-name' is invalid: ${c.error}` };
    s['socket-name'] = c.path;
  }
  for (const logger of out.loggers ?? []) {
    for (const o of logger.output_options ?? []) {
      if (NOT_FILES.test(o.output)) continue;
      const c = checkPath('log-file', o.output, baseDir);
      if (!c.ok) return { ok: false, error: `invalid path in \`output\`: ${c.error}` };
      o.output = c.path;
    }
  }
  if (out['d2box-journal-file'] !== undefined) {
    const c = checkPath('journal', out['d2box-journal-file'], baseDir);
    if (!c.ok) return { ok: false, error: `'d2box-journal-file' is invalid: ${c.error}` };
    out['d2box-journal-file'] = c.path;
  }
  return { ok: true, config: out };
}
