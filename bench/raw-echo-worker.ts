/**
 * The baseline of the hooks benchmark: echoes every message it gets, nothing else.
 *
 * In a worker thread: on the MessagePort handed to it in workerData (the raw
 * MessagePort baseline). In a child process (for reference only, next to the
 * process isolation mode): on its IPC channel, as spawned by the benchmark with
 * serialization 'advanced' (Node's channel, which d2box's ProcessPool no longer uses).
 */
import { isMainThread, workerData, type MessagePort } from 'node:worker_threads';

if (!isMainThread) {
  const port = (workerData as { port: MessagePort }).port;
  port.on('message', (message: unknown) => port.postMessage(message));
} else if (typeof process.send === 'function') {
  process.on('message', (message: unknown) => process.send!(message));
  process.on('disconnect', () => process.exit(0));
} else {
  process.stderr.write('raw-echo-worker: started neither as a worker thread nor with an IPC channel\n');
  process.exit(2);
}
