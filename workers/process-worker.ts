/**
 * The entry point of a hook library's sandboxed child process ("isolation":
 * "process"): what hook-worker.ts is to a worker thread. The host starts it
 * inside bubblewrap (src/hooks/process-sandbox.ts) and drives it over the IPC
 * channel: a boot message, then the same open and session tasks piscina would
 * run, with the callout and IOService ports carried as IPC channels.
 */
import { MessageChannel } from 'node:worker_threads';
import { PortRelay } from '../src/hooks/ipc-ports.js';
import {
  serializeError,
  type ChildToHost,
  type HostMessage,
  type HostToChild,
  type WorkerBootData,
  type WorkerMessage,
} from '../src/hooks/protocol.js';
import { LibrarySession, openLibrary, type CalloutPort } from './library-session.js';

if (typeof process.send !== 'function') {
  process.stderr.write('process-worker: started without an IPC channel; d2box starts this file itself\n');
  process.exit(2);
}

const send = (message: ChildToHost): void => {
  process.send!(message);
};

let boot: WorkerBootData | undefined;
const relay = new PortRelay(send, 'c');
let calloutListener: ((message: HostMessage) => void) | undefined;

/**
 * The callout port straight on the IPC channel: no local MessagePort hop, since
 * callouts never carry ports. The session sees the same three methods either way.
 */
const calloutPort: CalloutPort = {
  postMessage: (message: WorkerMessage) => send({ t: 'port', ch: 'callout', m: message }),
  on: (_event: 'message', listener: (message: HostMessage) => void) => (calloutListener = listener),
  close: () => {
    calloutListener = undefined;
  },
};

// A worker thread dies of an uncaught error and piscina reports it; here the host
// learns the error from this message and the death from the exit.
const die = (err: unknown): void => {
  try {
    send({ t: 'fatal', error: serializeError('crash', err) });
  } finally {
    // Let the IPC write drain before exiting; the host treats the exit as the death.
    setImmediate(() => process.exit(70));
  }
};
process.on('uncaughtException', die);
process.on('unhandledRejection', die);
// The host going away closes the channel: nothing is left to serve.
process.on('disconnect', () => process.exit(0));

process.on('message', (raw: HostToChild) => {
  switch (raw.t) {
    case 'boot':
      boot = raw.boot;
      return;
    case 'port':
      if (raw.ch === 'callout') {
        if (raw.m !== undefined) calloutListener?.(raw.m as HostMessage);
      } else {
        relay.deliver(raw);
      }
      return;
    case 'task':
      void runTask(raw.id, raw.task);
      return;
  }
});

async function runTask(id: number, task: { kind: 'open' } | { kind: 'session' }): Promise<void> {
  if (!boot) throw new Error('process-worker: a task came before the boot data');
  if (task.kind === 'open') {
    send({ t: 'done', id, result: await openLibrary(boot) });
    return;
  }
  const io = new MessageChannel();
  relay.attach('io', io.port2);
  const result = await new LibrarySession(boot, calloutPort, io.port1).run();
  send({ t: 'done', id, result });
}
