/**
 * The PID file, as Kea's Daemon::createPIDFile (src/lib/process/daemon.cc) and
 * PIDFile (src/lib/util/pid_file.cc): `<dir>/<config base name>.kea-dhcp-ddns.pid`,
 * the config's file name without its extension (`/etc/kea/kea-dhcp-ddns.conf`
 * gives `kea-dhcp-ddns.kea-dhcp-ddns.pid`), holding the PID and a newline. keactrl
 * and monitoring find the daemon by it, so the name is Kea's, not d2box's.
 *
 * The directory: D2BOX_PIDFILE_DIR, else Kea's KEA_PIDFILE_DIR, else
 * /run/d2box (Debian's Kea uses /run/kea; d2box's own directory keeps the two
 * from refusing each other during a switch-over, see docs/install.md). Like the
 * directories in path-policy.ts it comes only from the environment, never from
 * a configuration a control client can send. One difference from Kea, on
 * purpose: when no variable is set and the default directory does not exist
 * (a development checkout, a test), d2box runs without a PID file and says so,
 * where Kea would refuse to start; a directory the operator named must exist.
 *
 * A file whose PID is alive (kill(pid, 0) succeeds or fails with EPERM, as
 * PIDFile::check) means another daemon serves this configuration: refused.
 * A stale file is replaced. The new file is created exclusively after the stale
 * one is removed, so a symbolic link planted in the directory is never followed.
 */
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { basename, extname, join, resolve } from 'node:path';

export const PID_FILE_APP_NAME = 'kea-dhcp-ddns';
export const DEFAULT_PID_FILE_DIR = '/run/d2box';
const DIR_VARIABLES = ['D2BOX_PIDFILE_DIR', 'KEA_PIDFILE_DIR'];

/** The directory for PID files and whether the operator chose it. */
export function pidFileDirectory(): { dir: string; chosen: boolean } {
  for (const name of DIR_VARIABLES) {
    const value = process.env[name];
    if (value !== undefined && value.trim() !== '') return { dir: resolve(value.trim()), chosen: true };
  }
  return { dir: DEFAULT_PID_FILE_DIR, chosen: false };
}

/** Kea's Daemon::makePIDFileName. */
export function pidFileName(configFile: string, dir = pidFileDirectory().dir): string {
  const name = basename(configFile, extname(configFile));
  if (name === '') throw new Error(`Daemon::makePIDFileName config file:${configFile} is missing file name`);
  return join(dir, `${name}.${PID_FILE_APP_NAME}.pid`);
}

/** The PID in `file` if a process with it is alive, else 0 (Kea's PIDFile::check). */
export function livePid(file: string): number {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw new Error(`Unable to open PID file '${file}' for read: ${(err as Error).message}`);
  }
  const pid = /^\s*(\d+)/.exec(text)?.[1];
  if (pid === undefined) throw new Error(`Unable to read PID from file '${file}'`);
  const n = Number(pid);
  // A PID that is ours is a leftover of an earlier life with the same PID (a container restarted).
  if (n === process.pid || n === 0) return 0;
  try {
    process.kill(n, 0);
    return n;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM' ? n : 0;
  }
}

export type PidFileOutcome =
  | { kind: 'written'; file: string }
  | { kind: 'skipped'; reason: string }
  | { kind: 'running'; pid: number; file: string }
  | { kind: 'error'; error: string };

/** A PID file this process wrote, removed when the daemon exits. */
export class PidFile {
  private written: string | undefined;

  /** Creates the file for `configFile`; what happened, for the controller to log (Kea: DCTL_ALREADY_RUNNING, DCTL_PID_FILE_ERROR). */
  create(configFile: string): PidFileOutcome {
    const { dir, chosen } = pidFileDirectory();
    if (!chosen && !existsSync(dir)) return { kind: 'skipped', reason: `${dir} does not exist and neither D2BOX_PIDFILE_DIR nor KEA_PIDFILE_DIR is set` };
    let file: string;
    try {
      file = pidFileName(configFile, dir);
      const pid = livePid(file);
      if (pid > 0) return { kind: 'running', pid, file };
      rmSync(file, { force: true });
      const fd = openSync(file, 'wx', 0o644);
      try {
        writeSync(fd, `${process.pid}\n`);
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      return { kind: 'error', error: (err as Error).message };
    }
    this.written = file;
    // Whatever way the process ends after this, the file goes with it (Kea: ~Daemon).
    process.once('exit', () => this.remove());
    return { kind: 'written', file };
  }

  /** Removes the file if this process wrote it and it still names this process. */
  remove(): void {
    const file = this.written;
    if (file === undefined) return;
    this.written = undefined;
    try {
      if (readFileSync(file, 'utf8').trim() === String(process.pid)) rmSync(file, { force: true });
    } catch {
      // Already gone: nothing to remove.
    }
  }
}
