/** Stopping the programs tests start (named, kea-dhcp4, ...), by their PID and within bounds. */
import type { ChildProcess } from 'node:child_process';

/** True when `child` has exited within `ms`. */
export async function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, ms);
    const onExit = () => {
      clearTimeout(t);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

/** SIGTERM to `pid`; SIGKILL when it has not exited after `graceMs`. */
export async function stopChild(child: ChildProcess, pid: number, graceMs = 5_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return; // already gone
  }
  if (await waitForExit(child, graceMs)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  await waitForExit(child, 2_000);
}

/**
 * A command line prefixed by `wrap` (e.g. `['ip', 'netns', 'exec', 'ns1']`), as
 * [program, args] for spawn/execFile. With no wrap, the command unchanged. The
 * wrapper must exec the program (as `ip netns exec` does), so the child's PID
 * is the program's and stopChild reaches it.
 */
export function wrapCommand(wrap: readonly string[] | undefined, cmd: string, args: readonly string[]): [string, string[]] {
  if (!wrap || wrap.length === 0) return [cmd, [...args]];
  return [wrap[0]!, [...wrap.slice(1), cmd, ...args]];
}
