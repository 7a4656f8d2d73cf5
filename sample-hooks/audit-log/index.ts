/**
 * audit-log: an append-only record of what configuration the server runs.
 * On every d2_srv_configured it records the applied configuration's SHA-256
 * (over a canonical form: keys sorted, so formatting and key order do not
 * matter), its forward and reverse domains and its TSIG key names (never the
 * secrets); on command_processed, each control command's name and result
 * (never its arguments). Records are JSON lines, buffered and appended to the
 * file on a timer of the server's IOService (io_context), and once more on
 * unload, which also cancels the timer: nothing is lost on a clean stop.
 *
 *   "parameters": {
 *     "file": "/var/log/d2box/audit.jsonl",   // required
 *     "flush-interval-ms": 1000,             // optional
 *     "max-buffered": 1000,                  // optional: flush at once past this many records
 *     "commands": true                       // optional: record control commands
 *   }
 */
import { createHash } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { threadId } from 'node:worker_threads';
import { HOOKS_VERSION, type CalloutHandle, type IOService, type LibraryHandle } from 'd2box/hooks';

export const version = (): number => HOOKS_VERSION;
export const multi_threading_compatible = (): number => 1;

let file = '';
let flushIntervalMs = 1000;
let maxBuffered = 1000;
let recordCommands = true;
let buffer: string[] = [];
let io: IOService | undefined;
let timer: number | undefined;

export function load(handle: LibraryHandle): number {
  const path = handle.getParameter('file');
  if (typeof path !== 'string' || path.length === 0) throw new Error('"file" (the audit file) is required');
  file = path;
  flushIntervalMs = positive(handle.getParameter('flush-interval-ms'), 'flush-interval-ms', 1000);
  maxBuffered = positive(handle.getParameter('max-buffered'), 'max-buffered', 1000);
  recordCommands = handle.getParameter('commands') !== false;
  buffer = [];
  io = undefined;
  timer = undefined;
  // Fails load (and so the configuration) now if the file cannot be appended to.
  appendFileSync(file, '');
  record({ event: 'load', library: handle.getLibraryName(), thread: threadId });
  return 0;
}

export async function unload(): Promise<number> {
  if (io && timer !== undefined) {
    const id = timer;
    timer = undefined;
    await io.cancel(id).catch(() => false);
  }
  record({ event: 'unload' });
  flush();
  return 0;
}

export async function d2_srv_configured(handle: CalloutHandle): Promise<number> {
  const json = handle.getArgument<Record<string, unknown>>('json_config');
  const d2 = (json?.['DhcpDdns'] ?? {}) as {
    'tsig-keys'?: { name: string }[];
    'forward-ddns'?: { 'ddns-domains'?: { name: string }[] };
    'reverse-ddns'?: { 'ddns-domains'?: { name: string }[] };
  };
  record({
    event: 'configured',
    sha256: createHash('sha256').update(canonical(json)).digest('hex'),
    forward: (d2['forward-ddns']?.['ddns-domains'] ?? []).map((d) => d.name),
    reverse: (d2['reverse-ddns']?.['ddns-domains'] ?? []).map((d) => d.name),
    'tsig-keys': (d2['tsig-keys'] ?? []).map((k) => k.name),
  });
  // The IOService of this worker's session: the timer lives on the server's main loop and
  // runs flush() back here. A replacement worker gets d2_srv_configured again, so a new timer.
  if (timer === undefined) {
    io = handle.getArgument<IOService>('io_context');
    timer = await io.setInterval(flush, flushIntervalMs);
  }
  return 0;
}

export function command_processed(handle: CalloutHandle): number {
  if (!recordCommands) return 0;
  const response = handle.getArgument<{ result?: unknown }>('response');
  record({ event: 'command', name: handle.getArgument<string>('name'), result: response?.result ?? null });
  return 0;
}

function record(entry: Record<string, unknown>): void {
  buffer.push(JSON.stringify({ time: new Date().toISOString(), ...entry }) + '\n');
  if (buffer.length >= maxBuffered) flush();
}

/** Appends what is buffered; a failed write is logged (to the server's log) and retried next time. */
function flush(): void {
  if (buffer.length === 0) return;
  try {
    appendFileSync(file, buffer.join(''));
    buffer = [];
  } catch (err) {
    console.error(`audit-log: cannot append to ${file}: ${(err as Error).message}`);
  }
}

function positive(value: unknown, name: string, fallback: number): number {
  if (value === null) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) throw new Error(`"${name}" must be a positive integer`);
  return value;
}

/** JSON with object keys sorted at every level: the same configuration always hashes the same. */
export function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
