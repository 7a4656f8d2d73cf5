/**
 * piscina's task handler for a library in a worker thread: the thread's boot
 * data comes from piscina's workerData, the ports from the session task.
 */
import { workerData } from 'piscina';
import type { OpenResult, OpenTask, SessionResult, SessionTask, WorkerBootData } from '../src/hooks/protocol.js';
import { LibrarySession, openLibrary } from './library-session.js';
import { startMemoryReports } from './memory-report.js';

const boot = workerData as WorkerBootData;

export default async function hookWorkerTask(task: OpenTask | SessionTask): Promise<OpenResult | SessionResult> {
  if (task.kind === 'open') return openLibrary(boot);
  // From before load(): what a library allocates there counts too.
  const stopReports = startMemoryReports(task.calloutPort);
  try {
    return await new LibrarySession(boot, task.calloutPort, task.ioPort).run();
  } finally {
    stopReports();
  }
}
