/**
 * The entry point of a hook library's sandboxed child process ("isolation":
 * "process"): what hook-worker.ts is to a worker thread. The host starts it
 * inside bubblewrap (src/hooks/process-sandbox.ts) and drives it over the
 * channel on descriptor CHANNEL_FD, in length-prefixed JSON frames
 * (channel-frames.ts): a boot message, then the same open and session tasks
 * piscina would run, with the callout and IOService ports carried as channels.
 */
import { fstatSync } from 'node:fs';
import { Socket } from 'node:net';
import { MessageChannel } from 'node:worker_threads';
import { BoundedFrameReader, encodeFrame, UnencodableValue } from '../src/hooks/channel-frames.js';
import { PortRelay } from '../src/hooks/ipc-ports.js';
import {
  CHANNEL_FD,
  CHILD_FRAME_BOUNDS,
  HOST_FRAME_BOUNDS,
  serializeError,
  type ChildToHost,
  type HostMessage,
  type HostToChild,
  type WorkerBootData,
  type WorkerMessage,
} from '../src/hooks/protocol.js';
import { LibrarySession, openLibrary, type CalloutPort } from './library-session.js';

try {
  if (!fstatSync(CHANNEL_FD).isSocket()) throw new Error('not a socket');
} catch {
  process.stderr.write(`process-worker: started without its channel on descriptor ${CHANNEL_FD}; d2box starts this file itself\n`);
  process.exit(2);
}

const channel = new Socket({ fd: CHANNEL_FD, readable: true, writable: true });

/** Throws UnencodableValue on what cannot cross, as postMessage throws on what it cannot clone. */
const send = (message: ChildToHost): void => {
  channel.write(encodeFrame(message, CHILD_FRAME_BOUNDS));
};

/** Results per frame: a burst of callouts in flight stays well inside the element bound. */
const RESULTS_PER_FRAME = 128;

/**
 * A callout-port message. Results go in frames of RESULTS_PER_FRAME; when one
 * will not go, the session sends them one by one (the host ignores an answer
 * twice). Log lines come in whatever number the library's rate allows, so a
 * burst too large for one frame is cut into several.
 */
const sendCallout = (message: WorkerMessage): void => {
  if (message.t === 'results' && message.batch.length > RESULTS_PER_FRAME) {
    for (let i = 0; i < message.batch.length; i += RESULTS_PER_FRAME) sendCallout({ t: 'results', batch: message.batch.slice(i, i + RESULTS_PER_FRAME) });
    return;
  }
  try {
    send({ t: 'port', ch: 'callout', m: message });
  } catch (err) {
    if (!(err instanceof UnencodableValue) || message.t !== 'log' || message.lines.length < 2) throw err;
    const half = Math.ceil(message.lines.length / 2);
    sendCallout({ t: 'log', lines: message.lines.slice(0, half), suppressed: message.suppressed });
    sendCallout({ t: 'log', lines: message.lines.slice(half), suppressed: 0 });
  }
};

let boot: WorkerBootData | undefined;
const relay = new PortRelay(send, 'c');
let calloutListener: ((message: HostMessage) => void) | undefined;

/**
 * The callout port straight on the channel: no local MessagePort hop, since
 * callouts never carry ports. The session sees the same three methods either way.
 */
const calloutPort: CalloutPort = {
  postMessage: sendCallout,
  on: (_event: 'message', listener: (message: HostMessage) => void) => (calloutListener = listener),
  close: () => {
    calloutListener = undefined;
  },
};

// A worker thread dies of an uncaught error and piscina reports it; here the host
// learns the error from this message and the death from the exit.
let dying = false;
const die = (err: unknown): void => {
  if (dying) return;
  dying = true;
  const exit = (): never => process.exit(70);
  try {
    // Exits once the report is written; the timer in case the host no longer reads.
    channel.write(encodeFrame({ t: 'fatal', error: serializeError('crash', err) } satisfies ChildToHost, CHILD_FRAME_BOUNDS), exit);
    setTimeout(exit, 1000).unref();
  } catch {
    exit();
  }
};
process.on('uncaughtException', die);
process.on('unhandledRejection', die);

// The host going away closes the channel: nothing is left to serve.
channel.on('end', () => process.exit(0));
channel.on('error', () => process.exit(0));

// The host is trusted; the reader only cuts frames (HOST_FRAME_BOUNDS is a size).
const reader = new BoundedFrameReader(HOST_FRAME_BOUNDS);
channel.on('data', (chunk: Buffer) => {
  for (const message of reader.read(chunk) as HostToChild[]) onHostMessage(message);
});

function onHostMessage(raw: HostToChild): void {
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
}

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
