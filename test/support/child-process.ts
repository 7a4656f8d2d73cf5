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
