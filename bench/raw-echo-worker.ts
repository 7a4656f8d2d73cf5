/**
 * The baseline of the hooks benchmark: a worker that echoes every message it
 * gets on the MessagePort handed to it in workerData. Nothing else.
 */
import { workerData, type MessagePort } from 'node:worker_threads';

const port = (workerData as { port: MessagePort }).port;
port.on('message', (message: unknown) => port.postMessage(message));
