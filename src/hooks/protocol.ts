/**
 * Everything that crosses the thread boundary between the server (main thread)
 * and a hook library's worker, in one place, in the manner of VS Code's
 * extHost.protocol.ts. Both sides import this file and nothing else from each
 * other.
 *
 * Channels, per library worker (a worker thread, or in process mode a sandboxed
 * child process carrying the same channels over its own socket, see below):
 *  - piscina tasks (`OpenTask`, `SessionTask`): the worker's life, owned by piscina
 *    (start, deadline abort, replacement, resource limits);
 *  - the callout port: a raw MessagePort opened by the session task carrying
 *    `HostMessage` one way and `WorkerMessage` the other; callouts travel here in
 *    batches because piscina's task path costs several times a raw port;
 *  - the IOService port: comlink calls on `IOServiceRemote`, so that callbacks a
 *    library hands to the server's IOService run back in the library's thread.
 *
 * The host validates what a worker sends (`WorkerMessage`, against the zod
 * schemas in protocol-schemas.ts, which are typed against the declarations
 * here; changed arguments against each hook point's schema); the worker trusts
 * the host. This file loads nothing heavy: every worker and every hook library
 * imports it, and zod alone costs a new worker about 50 ms to load.
 */
import type { MessagePort } from 'node:worker_threads';
import type { Endpoint } from 'comlink';

/** The hooks framework version a library's `version()` must return (Kea 2.2's). */
export const HOOKS_VERSION = 20200;

/** Kea's CalloutHandle::CalloutNextStep values. */
export const NextStep = {
  CONTINUE: 0,
  SKIP: 1,
  DROP: 2,
  PARK: 3,
} as const;
export type NextStepStatus = (typeof NextStep)[keyof typeof NextStep];

/** Ways a library can fail; the same names appear in statistics and logs. */
export const FAILURE_KINDS = [
  'throw', // a callout threw synchronously
  'reject', // an async callout rejected
  'timeout', // a round trip outlived callout-timeout-ms: the worker was terminated
  'oom', // the worker hit its heap limit
  'cpu-limit', // process mode: the library's process used up max-cpu-seconds
  'exit', // the library called process.exit
  'crash', // an uncaught exception, e.g. thrown from a timer
  'invalid-argument', // a returned argument failed the hook point's schema
  'log-flood', // the library logged past its rate limit
  'quarantined', // the library is out of its restart budget; callout skipped
  'load', // version/load failed (at start or on a replacement worker)
  'io-callback', // a callback given to the IOService threw or timed out
  'io-overload', // the library went over its IOService share (io-* policy keys) for too long, or by too much
  'protocol', // the worker sent something the protocol does not allow
] as const;
export type FailureKind = (typeof FAILURE_KINDS)[number];

/**
 * The failure kinds a library's side may report in a callout result: what it
 * sees itself (its callout threw or rejected, what it set cannot be cloned, it
 * logged past its rate, the host sent a reference it does not know). The rest
 * (a deadline, a heap or CPU limit, an exit, a crash) only the host can see,
 * and a result that claims one is a protocol violation.
 */
export const LIBRARY_REPORTED_FAILURE_KINDS = ['throw', 'reject', 'invalid-argument', 'log-flood', 'protocol'] as const satisfies readonly FailureKind[];

/** An error as it crosses the boundary: message and kind survive, unlike a cloned Error. */
export interface SerializedError {
  kind: FailureKind;
  name: string;
  message: string;
  stack?: string;
}

/**
 * Cut to what the host keeps (HELD_LIMITS) on the side that sends, too: a process
 * library's channel refuses a frame over its bound, which would turn a long
 * error message into an argument failure.
 */
export function serializeError(kind: FailureKind, err: unknown): SerializedError {
  if (err instanceof Error) {
    const message = cutText(String(err.message), HELD_LIMITS.errorMessageChars);
    const name = cutText(String(err.name), HELD_LIMITS.errorMessageChars);
    return typeof err.stack === 'string' ? { kind, name, message, stack: cutText(err.stack, HELD_LIMITS.errorStackChars) } : { kind, name, message };
  }
  return { kind, name: 'Error', message: cutText(typeof err === 'string' ? err : safeString(err), HELD_LIMITS.errorMessageChars) };
}

function cutText(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

function safeString(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

// ---------------------------------------------------------------------------
// Worker start-up data (piscina clones it once per worker, replacements too).

/** Built by the host from the validated configuration; the worker trusts it. */
export interface WorkerBootData {
  /** file: URL of the library module. */
  libraryUrl: string;
  /** The library as configured (its path), the name Kea logs and hook authors see. */
  libraryName: string;
  /** 1-based position in hooks-libraries, Kea's library index. */
  libraryIndex: number;
  parameters: Record<string, unknown>;
  /** Names a library may register callouts on; exports with these names auto-register. */
  hookPoints: string[];
  onFailure: 'drop' | 'continue';
  /** Lines per second a library may log before lines are dropped and counted. */
  logLinesPerSecond: number;
  /** Deadline for the library's own calls to the server's IOService. */
  ioCallTimeoutMs: number;
}

// ---------------------------------------------------------------------------
// piscina tasks

/** Imports the library and checks `version()`, nothing more: Kea's validateLibraries. */
export interface OpenTask {
  kind: 'open';
}
export interface OpenResult {
  version: number | null;
  error?: SerializedError;
}

/**
 * Runs `load` and then serves callouts on `calloutPort` until the host sends
 * `unload`. It stays pending for the worker's whole life, so that aborting it is
 * how the host terminates a worker stuck past its deadline.
 */
export interface SessionTask {
  kind: 'session';
  calloutPort: MessagePort;
  ioPort: MessagePort;
}
export interface SessionResult {
  unloadReturn: number | null;
  error?: SerializedError;
}

// ---------------------------------------------------------------------------
// Callout port: host → worker

/**
 * Arguments the worker materializes on its side instead of receiving them by
 * value: the configuration snapshot it already holds, and its IOService proxy.
 */
export const ARG_REF_KEY = '__d2boxArgRef';
export type ArgRef =
  | { [ARG_REF_KEY]: 'snapshot'; version: number; part: 'json_config' | 'server_config' }
  | { [ARG_REF_KEY]: 'io_context' };

export function isArgRef(value: unknown): value is ArgRef {
  return typeof value === 'object' && value !== null && ARG_REF_KEY in value;
}

export interface CalloutRequest {
  id: number;
  hook: string;
  status: NextStepStatus;
  args: Record<string, unknown>;
  /** This library's context for the handle; absent when empty. */
  context?: Record<string, unknown>;
}

export type HostMessage =
  | { t: 'snapshot'; version: number; json_config: unknown; server_config: unknown }
  | { t: 'callouts'; batch: CalloutRequest[] }
  | { t: 'key-ops'; batch: KeyOperation[] }
  | NetworkToLibrary
  | { t: 'unload' };

/**
 * A key the library holds (select_key set `tsig_key` to `{ name, algorithm, held: true }`):
 * the host asks it for the MAC over RFC 8945 §4.3's input of an outgoing update
 * (`sign`), or to check the MAC of an answer (`verify`). Bytes cross as base64 in
 * both modes. Sent in batches, like callouts; each has the callout deadline.
 */
export interface KeyOperation {
  id: number;
  op: 'sign' | 'verify';
  key: string;
  algorithm: string;
  data: string;
  /** For `verify`: the MAC the answer carries. */
  mac?: string;
}

/** The library's answer: a MAC (base64) for `sign`, a verdict for `verify`, or why it could not. */
export interface KeyOperationResult {
  id: number;
  mac?: string;
  verified?: boolean;
  error?: string;
}

/** A held key's MAC, in octets: RFC 8945's floor, and far above any real one (GSS-TSIG's are under 100). */
export const HELD_KEY_MAC_OCTETS = { min: 10, max: 1024 } as const;

// ---------------------------------------------------------------------------
// Callout port: worker → host (validated by the host)

/** Callouts per hook point, as the library has registered them. */
export type Registrations = Record<string, number>;

/**
 * Callouts one library may register on one hook point. The host bounds what a library
 * reports by it (a non-zero return per callout at most), so a library cannot claim a
 * table of billions to make any count it reports look possible.
 */
export const MAX_CALLOUTS_PER_HOOK = 1000;

export interface CalloutResult {
  id: number;
  status: number;
  /** Arguments the library set during the round trip (only those). */
  set?: Record<string, unknown>;
  /** Arguments the library deleted. */
  deleted?: string[];
  /** The library's context after the round trip, only when it changed. */
  context?: Record<string, unknown>;
  /** Callouts that returned non-zero (Kea logs them; the chain goes on). */
  nonZero: number;
  /** Callouts run in this round trip. */
  callouts: number;
  failure?: SerializedError;
  /** Present when a callout (de)registered callouts: the library's new table. */
  registrations?: Registrations;
  durationUs: number;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export type WorkerMessage =
  | { t: 'loaded'; multiThreadingCompatible: boolean; registrations: Registrations }
  | { t: 'load-failed'; error: SerializedError }
  | { t: 'results'; batch: CalloutResult[] }
  /** `suppressed`: lines dropped by the rate limit since the last log message. */
  | { t: 'log'; lines: { level: LogLevel; text: string }[]; suppressed: number }
  | { t: 'registrations'; registrations: Registrations }
  | { t: 'unloaded'; unloadReturn: number | null; error?: SerializedError }
  | MemoryReport
  | StatisticsMessage
  | { t: 'key-results'; batch: KeyOperationResult[] }
  | NetworkFromLibrary;

// ---------------------------------------------------------------------------
// A lent network: the endpoints the library's `allow-connect` policy lists, reached
// through sockets the host opens and relays (lent-network.ts). A process library's
// sandbox has only its own `lo`; this is its only way out. Datagrams cross as base64.

export interface LentEndpoint {
  address: string;
  port: number;
  /** tcp: a stream (GSS-TSIG's TKEY exchange, Kerberos), relayed in chunks and acknowledged. */
  protocol: 'udp' | 'tcp';
}

export type NetworkFromLibrary =
  | { t: 'net-open'; id: number; endpoint: LentEndpoint }
  | { t: 'net-send'; id: number; data: string }
  | { t: 'net-close'; id: number }
  /** TCP: the library has taken `bytes` of what the host relayed; the host reads on while under LENT_NETWORK_LIMITS.tcpBytesInFlight. */
  | { t: 'net-ack'; id: number; bytes: number };

export type NetworkToLibrary =
  | { t: 'net-opened'; id: number; error?: string }
  | { t: 'net-datagram'; id: number; data: string }
  | { t: 'net-closed'; id: number; error?: string };

/** Bounds on a library's lent sockets: how many at once, and a datagram's size (UDP's largest payload). */
export const LENT_NETWORK_LIMITS = {
  sockets: 16,
  datagramBytes: 65_507,
  /** TCP connections among those sockets. */
  tcpConnections: 4,
  /** TCP bytes relayed and not yet taken, each way: the host stops reading from the server, or drops a library that writes past it. */
  tcpBytesInFlight: 262_144,
} as const;

// ---------------------------------------------------------------------------
// A library's own statistics (the StatsMgr of d2box/hooks): fire-and-forget
// updates, sent in the same turn as the callout results they were made in (and
// before them), so a statistic costs no round trip of its own. Untrusted: the
// host applies only updates to statistics the library owns (names of the daemon
// or of another library are refused), within LIBRARY_STATS_LIMITS.

/** Kea's observation types; a duration crosses as microseconds. */
export type StatisticType = 'integer' | 'float' | 'duration' | 'string';

export type StatisticUpdate =
  | { op: 'set' | 'add'; name: string; type: StatisticType; value: number | string }
  | { op: 'remove' | 'reset'; name: string }
  | { op: 'max-sample-count'; name: string; count: number }
  | { op: 'max-sample-age'; name: string; ageMs: number };

export interface StatisticsMessage {
  t: 'stats';
  updates: StatisticUpdate[];
}

/**
 * Bounds on a library's statistics. The worker holds its updates to them before
 * sending (so an honest library is told by a throw, not failed); the host checks
 * them again. `updatesPerMessage` keeps one message well inside a process
 * channel's frame (CHILD_FRAME_BOUNDS: 256 updates of the longest name and
 * string are about 350 KB and 3,000 values).
 */
export const LIBRARY_STATS_LIMITS = {
  /** Statistics one library may own at once. */
  statistics: 1000,
  nameChars: 255,
  stringChars: 1024,
  /** Samples one of its statistics keeps, whatever its count or age limit. */
  samples: 1000,
  updatesPerMessage: 256,
} as const;

/**
 * A worker thread's own memory, sent every MEMORY_REPORT_INTERVAL_MS from its
 * event loop (workers/memory-report.ts): its isolate's V8 heap (committed) and
 * what V8 attributes to it outside the heap (ArrayBuffers, Buffers, typed
 * arrays, WebAssembly memories, external strings). Untrusted: the host checks
 * the figures against the library's limits, and watches the process's resident
 * memory itself for a worker that stops reporting (library-memory-watch.ts).
 */
export interface MemoryReport {
  t: 'memory';
  heapBytes: number;
  externalBytes: number;
}
export const MEMORY_REPORT_INTERVAL_MS = 100;

/**
 * Bounds on what a library can make the host keep (docs/isolation.md, "Memory a
 * library makes the host hold"). An error's message is kept as the library's
 * lastFailure and logged; registrations are kept until the next table; a
 * result's arguments and context are kept for the request's life.
 */
export const HELD_LIMITS = {
  errorMessageChars: 4096,
  errorStackChars: 16_384,
  registeredHooks: 1024,
  hookNameChars: 255,
  /** Arguments set by one round trip (a command's response may be large). */
  setBytes: 1024 * 1024,
  /** One library's context on one request. */
  contextBytes: 64 * 1024,
} as const;

// ---------------------------------------------------------------------------
// Process mode ("isolation": "process"): the same tasks and ports, carried over
// the sandboxed child's channel: a socket on its descriptor CHANNEL_FD (not
// Node's IPC channel), carrying frames of JSON behind a length prefix
// (channel-frames.ts). The callout port is the channel 'callout', the IOService
// port 'io'; ports comlink transfers travel as relayed channels (ipc-ports.ts).
// The host checks every frame and envelope the child sends against
// CHILD_FRAME_BOUNDS and the declarations below: the child is not trusted.

/** The channel's descriptor in the child (spawn's stdio slot 3). */
export const CHANNEL_FD = 3;

/** Bounds a reader holds a channel's frames to; one that breaks any of them ends the channel. */
export interface FrameBounds {
  /** Bytes in one frame, after its 4-byte length prefix. */
  maxFrameBytes: number;
  /** Bytes per second over the channel; a quarter second's worth may come at once. */
  bytesPerSecond: number;
  /** Frames per second, likewise: tiny frames cost the host per frame, not per byte. */
  framesPerSecond: number;
  /** Arrays and objects inside one another (the frame's top value is depth 1). */
  maxDepth: number;
  /** Values in one frame, every nested one and every object key counted. */
  maxElements: number;
  /** UTF-16 units in one string or object key. */
  maxStringChars: number;
}

/**
 * What the host takes from a library's process. JSON has no back-references, so
 * what the host rebuilds and checks is at most what crossed the wire, which these
 * bound; the element count bounds the checks' cost per value (a schema's error
 * report costs about a microsecond for each value that fails it). The child
 * holds its own frames to the same bounds before sending (channel-frames.ts), so
 * an honest library is told, not killed: a value too large to cross fails its
 * callout as `invalid-argument`. Measured: a result that sets nothing costs
 * about 83 bytes, so the bench's busiest library (64 callouts in flight, about
 * 130,000 round trips a second, 64 results a frame) sends about 11 MB/s, one
 * setting a key nearly twice that; one callout in flight is one frame per round
 * trip, about 10,000 a second.
 */
export const CHILD_FRAME_BOUNDS: FrameBounds = {
  maxFrameBytes: 1 << 20,
  bytesPerSecond: 32 << 20,
  framesPerSecond: 50_000,
  maxDepth: 64,
  maxElements: 50_000,
  maxStringChars: 256 * 1024,
};

/**
 * What the child takes from the host, which it trusts: only a frame size, for a
 * configuration snapshot far larger than any real one.
 */
export const HOST_FRAME_BOUNDS: FrameBounds = {
  maxFrameBytes: 256 << 20,
  bytesPerSecond: Infinity,
  framesPerSecond: Infinity,
  maxDepth: Infinity,
  maxElements: Infinity,
  maxStringChars: Infinity,
};

/**
 * Bytes the host may have written to a child that it has not read yet. Past this the
 * child has stopped reading (the host would otherwise buffer without end): a
 * `protocol` failure. One configuration snapshot is written whole, whatever its size.
 */
export const CHANNEL_MAX_UNREAD_BYTES = 64 << 20;

/**
 * The share of the main loop's time that reading one library's channel may take,
 * averaged with a second's worth of it as burst. Past it the library is failed
 * (`protocol`): frames inside every bound still cost the host per byte, and this
 * caps what a library sending them without pause can take. Measured: the bench's
 * busiest library (1000 callouts in flight) takes about 7%, a flood of ~900 KB
 * frames under the byte rate over 60%.
 */
export const CHANNEL_MAX_LOOP_SHARE = 0.3;

export interface PortEnvelope {
  t: 'port';
  ch: string;
  m?: unknown;
  close?: true;
}

export type HostToChild =
  | { t: 'boot'; boot: WorkerBootData }
  | { t: 'task'; id: number; task: OpenTask | { kind: 'session' } }
  | PortEnvelope;

export type ChildToHost =
  | { t: 'done'; id: number; result: OpenResult | SessionResult }
  /** An uncaught exception or rejection in the child, sent just before it exits. */
  | { t: 'fatal'; error: SerializedError }
  | PortEnvelope;

// ---------------------------------------------------------------------------
// IOService port (comlink). The main loop's IOService as a library sees it:
// callbacks are comlink proxies and run back in the library's thread.

export type IOCallback = () => void | Promise<void>;

export interface IOServiceRemote {
  /** Runs `callback` on the next turn of the main loop. Returns a task id. */
  post(callback: IOCallback): number;
  /** Runs `callback` once after `ms`. */
  setTimeout(callback: IOCallback, ms: number): number;
  /** Runs `callback` every `ms` until cancelled. */
  setInterval(callback: IOCallback, ms: number): number;
  /** Cancels a pending task or timer; false when it had already run or never existed. */
  cancel(id: number): boolean;
}

/**
 * comlink's Node adapter (20 lines in comlink's src/node-adapter.ts), kept here
 * because comlink 4.4.2's packaging makes its own untypeable under NodeNext
 * (specs/deps.md §2). Both sides use it on the IOService port.
 */
export function nodeEndpoint(port: MessagePort): Endpoint {
  const listeners = new WeakMap<object, (data: unknown) => void>();
  return {
    postMessage: (message: unknown, transfer?: Transferable[]) => {
      port.postMessage(message, transfer as never);
    },
    addEventListener: (_type: string, listener: EventListenerOrEventListenerObject) => {
      const wrapped = (data: unknown) => {
        if ('handleEvent' in listener) listener.handleEvent({ data } as MessageEvent);
        else listener({ data } as MessageEvent);
      };
      port.on('message', wrapped);
      listeners.set(listener, wrapped);
    },
    removeEventListener: (_type: string, listener: EventListenerOrEventListenerObject) => {
      const wrapped = listeners.get(listener);
      if (!wrapped) return;
      port.off('message', wrapped);
      listeners.delete(listener);
    },
    start: () => port.start(),
  };
}

// ---------------------------------------------------------------------------
// The NCR socket reader thread (workers/ncr-socket-reader.ts ⇄ src/ncr/ncr-listener.ts),
// `d2box-ncr-reader-thread`: not a hook library, but it crosses the same boundary.

/** workerData of the reader thread. */
export interface NcrReaderSetup {
  address: string;
  port: number;
  family: 4 | 6;
  /** SO_RCVBUF to ask for once bound. */
  receiveBufferBytes?: number;
}

/** What the reader thread tells the listener. */
export type NcrReaderMessage =
  | { type: 'listening'; port: number; recvBuffer?: { granted?: number; error?: string } }
  | { type: 'bind-error'; code: string | undefined; message: string }
  | { type: 'socket-error'; message: string }
  | { type: 'recv-buffer'; granted?: number; error?: string }
  /** Datagrams as received, with their senders, in order. */
  | { type: 'datagrams'; datagrams: Uint8Array[]; from: [string, number][] };
