/**
 * `d2box/hooks`: what a hook library imports. The names are Kea's
 * (`src/lib/hooks`): a library exports `version`, `load`, `unload`,
 * `multi_threading_compatible` and callouts named after hook points, and works
 * with a LibraryHandle in `load` and a CalloutHandle in each callout.
 */
export { HOOKS_VERSION, NextStep } from '../src/hooks/protocol.js';
export type { NextStepStatus, IOCallback, StatisticType } from '../src/hooks/protocol.js';

import type { IOCallback, NextStepStatus, StatisticType } from '../src/hooks/protocol.js';

/** A callout: 0 is success; non-zero is logged by the server and the chain goes on. */
export type Callout = (handle: CalloutHandle) => number | Promise<number>;

export interface LibraryHandle {
  /** Adds a callout on a hook point (several per hook run in registration order). */
  registerCallout(hook: string, callout: Callout): void;
  /** Removes this library's registrations of exactly this callout; true if any. */
  deregisterCallout(hook: string, callout: Callout): boolean;
  /** Removes all of this library's callouts on the hook; true if any. */
  deregisterAllCallouts(hook: string): boolean;
  /** Makes control command `command` answerable by `callout` (hook `$command`). */
  registerCommandCallout(command: string, callout: Callout): void;
  /** A parameter from the library's `parameters`, or null when absent. */
  getParameter(name: string): unknown;
  getParameters(): Record<string, unknown>;
  getParameterNames(): string[];
  /** The library as configured, e.g. its path. */
  getLibraryName(): string;
  /** The library's statistics, kept in the server's (see StatsMgr). */
  readonly statsMgr: StatsMgr;
  /**
   * Makes this library the holder of the keys its select_key hands back as
   * `{ name, algorithm, held: true }`: the server asks `holder` for every MAC
   * (one holder per library; a later call replaces it).
   */
  registerKeyHolder(holder: KeyHolder): void;
  /**
   * A socket to an endpoint the library's `allow-connect` policy lists, opened by the
   * server and relayed (the only network a sandboxed process has); rejects for any
   * other endpoint. In a thread it is the same API, but not a wall.
   */
  connect(endpoint: { address: string; port: number; protocol: 'udp' | 'tcp' }): Promise<LentSocket>;
}

/**
 * A lent socket, connected to its endpoint. UDP: only that endpoint's datagrams arrive.
 * TCP: a stream, sent and received in chunks (not messages); at most 256 KiB sent and
 * not yet written by the host, past which the connection is closed.
 */
export interface LentSocket {
  send(data: Uint8Array | string): void;
  onMessage(listener: (data: Buffer) => void): void;
  close(): void;
}

/** A key the library holds, as the server names it in a sign or verify request. */
export interface HeldKey {
  /** The key's name as the server writes it (absolute, lower case: `key.example.`). */
  name: string;
  /** The algorithm the library gave (the TSIG record's algorithm name), e.g. `gss-tsig`. */
  algorithm: string;
}

/**
 * Signs and verifies with keys whose material only the library has (GSS-TSIG
 * contexts, a secret in a vault). `data` is RFC 8945 §4.3's MAC input, built by
 * the server: for `sign`, the request and its TSIG variables; for `verify`, the
 * request MAC, the answer as digested and its TSIG variables. Either may be
 * async; each answer is due within the library's callout-timeout-ms, and a late
 * one, a throw, or a MAC under 10 or over 1024 octets is the library's failure
 * (the update is not sent, or its answer is not trusted).
 */
export interface KeyHolder {
  sign(key: HeldKey, data: Uint8Array): Uint8Array | Promise<Uint8Array>;
  verify(key: HeldKey, data: Uint8Array, mac: Uint8Array): boolean | Promise<boolean>;
}

/**
 * Kea's StatsMgr, for a library's own statistics: they show in statistic-get,
 * statistic-get-all and the reset commands beside the server's, under the names
 * the library gives them (`generateName('server', 1, 'x')` is `server[1].x`).
 * Calls return at once; updates reach the server at the end of the current turn,
 * before the result of the callout that made them. A name the server has, or
 * another library made first, is refused (the server logs it). The statistics
 * stay while the library is loaded, through restarts of its worker, and go when
 * it is unloaded. Bounds: LIBRARY_STATS_LIMITS (1000 statistics, names of 255
 * characters, strings of 1024, 1000 samples each); calls past them throw.
 */
export interface StatsMgr {
  /**
   * Records a sample, creating the statistic. Its type is `type`, else the one it
   * has, else a string's or a number's (integer when the number is one, else float).
   * A duration is given in milliseconds (microsecond resolution, shown "HH:MM:SS.ffffff").
   */
  setValue(name: string, value: number | string, type?: StatisticType): void;
  /** Adds to a number, appends to a string (Kea's addValue); a new statistic starts at `value`. */
  addValue(name: string, value: number | string, type?: StatisticType): void;
  /** Removes a statistic of this library (Kea's del); true when this worker had made it. */
  del(name: string): boolean;
  /** Clears its samples and records its type's neutral value (0, 0.0, 0 s, ""). */
  reset(name: string): boolean;
  removeAll(): void;
  resetAll(): void;
  /** Keeps at most `count` samples (at most 1000). */
  setMaxSampleCount(name: string, count: number): void;
  /** Keeps samples up to `ageMs` older than the newest (still at most 1000). */
  setMaxSampleAge(name: string, ageMs: number): void;
  /** Statistics this worker made (a restarted worker starts from 0). */
  count(): number;
  /** Kea's generateName: `context[index].stat`. */
  generateName(context: string, index: number | string, stat: string): string;
}

export interface CalloutHandle {
  /** An argument; throws NoSuchArgument when the hook point has none by that name. */
  getArgument<T = unknown>(name: string): T;
  setArgument(name: string, value: unknown): void;
  deleteArgument(name: string): void;
  deleteAllArguments(): void;
  getArgumentNames(): string[];

  getStatus(): NextStepStatus;
  setStatus(status: NextStepStatus): void;

  /** Per-library context, kept across hook points of one request. Missing name throws. */
  getContext<T = unknown>(name: string): T;
  setContext(name: string, value: unknown): void;
  deleteContext(name: string): void;
  deleteAllContext(): void;
  getContextNames(): string[];

  /** The library whose callout is running, as configured. */
  getCurrentLibrary(): string;
  /** The library's 1-based position in hooks-libraries (Kea's library index). */
  getCurrentLibraryIndex(): number;
  getCurrentHook(): string;
  getLibraryHandle(): LibraryHandle;
}

/** The server's IOService, as `d2_srv_configured` hands it over in `io_context`. */
export interface IOService {
  post(callback: IOCallback): Promise<number>;
  setTimeout(callback: IOCallback, ms: number): Promise<number>;
  setInterval(callback: IOCallback, ms: number): Promise<number>;
  cancel(id: number): Promise<boolean>;
}

/** The TSIG key `select_key` reads and may replace in `tsig_key`. */
export interface TsigKey {
  name: string;
  algorithm: 'HMAC-MD5' | 'HMAC-SHA1' | 'HMAC-SHA224' | 'HMAC-SHA256' | 'HMAC-SHA384' | 'HMAC-SHA512';
  secret: string;
  'digest-bits'?: number;
}

/**
 * What `select_key` may set in `tsig_key`: a configured key by its name (the portable way:
 * the server fills in algorithm and secret, in a thread and in a sandboxed process alike),
 * a whole key of the library's own (only where it sees secrets), or null for none.
 */
export type TsigKeyChoice = { name: string } | TsigKey | { name: string; algorithm: string; held: true } | null;

/** A control command's answer, as a command callout sets it in `response`. */
export interface CommandResponse {
  result: number;
  text?: string;
  arguments?: unknown;
}
