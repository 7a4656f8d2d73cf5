/**
 * fault-injection: a hook library that misbehaves on purpose, at chosen rates,
 * so that d2box's isolation can be watched and load-tested (`d2box loadtest`).
 *
 *   "parameters": {
 *     "faults": { "throw": 0.01, "exit": 0.001, "slow": 0.1 },   // or "fault": "throw", "rate": 0.5
 *     "seed": 42,
 *     "hooks": ["select_key"],          // hook points to misbehave on (default select_key)
 *     "commands": ["fault-ping"],       // control commands to register and misbehave on
 *     "after": 0,                       // callouts 1..after always behave
 *     "slow-ms": 50, "spin-ms": 600000, "timer-ms": 10, "log-lines": 1000,
 *     "exit-code": 3, "hog-max-mb": 16384, "multi-threading": true,
 *     "key": { "name": "k", "algorithm": "HMAC-SHA256", "secret": "..." }   // select_key sets it when behaving
 *   }
 *
 * Determinism: callout number n draws its fault from (seed, n) alone when the
 * caller numbers its callouts with a `loadtest_seq` argument (the load tester
 * does), so a run is reproducible whatever workers die on the way. Without it, n
 * is the worker's own count and each worker draws from a stream of its own
 * (keyed by its thread id), so a fatal fault does not recur at the same point of
 * every replacement worker's life.
 */
import { threadId } from 'node:worker_threads';
import { HOOKS_VERSION, type CalloutHandle, type LibraryHandle, type TsigKey } from 'd2box/hooks';
import { drawFault, faultTable, type Fault } from './plan.js';

interface Settings {
  table: [Fault, number][];
  seed: number;
  after: number;
  slowMs: number;
  spinMs: number;
  timerMs: number;
  logLines: number;
  exitCode: number;
  hogMaxMb: number;
  multiThreading: boolean;
  key: TsigKey | null;
}

let settings: Settings | undefined;
let calls = 0;

export const version = (): number => HOOKS_VERSION;
export const multi_threading_compatible = (): number => (settings?.multiThreading === false ? 0 : 1);

export function load(handle: LibraryHandle): number {
  const p = (name: string) => handle.getParameter(name);
  let rates = p('faults');
  if (rates === null) {
    const fault = p('fault');
    const rate = p('rate') ?? 1;
    rates = fault === null ? {} : { [String(fault)]: rate };
  }
  settings = {
    table: faultTable(rates),
    seed: integer(p('seed'), 'seed', 1),
    after: integer(p('after'), 'after', 0),
    slowMs: integer(p('slow-ms'), 'slow-ms', 50),
    spinMs: integer(p('spin-ms'), 'spin-ms', 600_000),
    timerMs: integer(p('timer-ms'), 'timer-ms', 10),
    logLines: integer(p('log-lines'), 'log-lines', 1000),
    exitCode: integer(p('exit-code'), 'exit-code', 3),
    hogMaxMb: integer(p('hog-max-mb'), 'hog-max-mb', 16_384),
    multiThreading: p('multi-threading') !== false,
    key: (p('key') as TsigKey | null) ?? null,
  };
  calls = 0;
  const hooks = p('hooks') ?? ['select_key'];
  const commands = p('commands') ?? [];
  if (!Array.isArray(hooks) || !hooks.every((h) => typeof h === 'string')) throw new Error('"hooks" must be a list of hook point names');
  if (!Array.isArray(commands) || !commands.every((c) => typeof c === 'string')) throw new Error('"commands" must be a list of command names');
  for (const hook of hooks) handle.registerCallout(hook, misbehave);
  for (const command of commands) handle.registerCommandCallout(command, misbehave);
  return 0;
}

export function unload(): number {
  settings = undefined;
  return 0;
}

function integer(value: unknown, name: string, fallback: number): number {
  if (value === null || value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) throw new Error(`"${name}" must be a non-negative integer`);
  return value;
}

/** The callout registered on every configured hook point and command. */
function misbehave(handle: CalloutHandle): number | Promise<number> {
  const s = settings!;
  const seq = handle.getArgumentNames().includes('loadtest_seq') ? handle.getArgument<unknown>('loadtest_seq') : undefined;
  const numbered = typeof seq === 'number' && Number.isInteger(seq);
  const n = numbered ? seq : ++calls;
  const fault = n <= s.after ? 'ok' : drawFault(s.seed, numbered ? 0 : threadId, n, s.table);
  switch (fault) {
    case 'ok':
      return behave(handle);
    case 'throw':
      throw new Error(`fault-injection: throw (callout ${n})`);
    case 'reject':
      return Promise.resolve().then(() => {
        throw new Error(`fault-injection: reject (callout ${n})`);
      });
    case 'non-zero':
      behave(handle);
      return 1;
    case 'hang': {
      // Spins until the host terminates the worker at its callout deadline; bounded by spin-ms all the same.
      const until = Date.now() + s.spinMs;
      for (let spins = 0; Date.now() < until; spins++) {
        // spin
      }
      return behave(handle);
    }
    case 'oom': {
      // Keeps allocating 1 MiB at a time until the worker's heap limit stops it (or hog-max-mb is reached).
      const hog: number[][] = [];
      for (let mb = 0; mb < s.hogMaxMb; mb++) hog.push(new Array<number>(131_072).fill(mb));
      hog.length = 0;
      return behave(handle);
    }
    case 'exit':
      return process.exit(s.exitCode);
    case 'timer-throw':
      setTimeout(() => {
        throw new Error(`fault-injection: thrown from a timer (callout ${n})`);
      }, s.timerMs);
      return behave(handle);
    case 'invalid-argument':
      setInvalid(handle);
      return 0;
    case 'log-flood':
      for (let i = 0; i < s.logLines; i++) console.log(`fault-injection: log flood line ${i} (callout ${n})`);
      return behave(handle);
    case 'slow':
      return new Promise<number>((resolve) => setTimeout(() => resolve(behave(handle)), s.slowMs));
  }
}

/** What the callout does when it behaves: select_key takes `key` if set; commands answer. */
function behave(handle: CalloutHandle): number {
  const hook = handle.getCurrentHook();
  if (hook === 'select_key' && settings?.key) handle.setArgument('tsig_key', settings.key);
  if (hook.startsWith('$')) handle.setArgument('response', { result: 0, text: `fault-injection: ${hook.slice(1).replaceAll('_', '-')} ok` });
  return 0;
}

/** A value the hook point's schema refuses (or, on hook points that declare nothing, one that cannot be cloned). */
function setInvalid(handle: CalloutHandle): void {
  const hook = handle.getCurrentHook();
  if (hook === 'select_key') handle.setArgument('tsig_key', { name: 'fault.', algorithm: 'HMAC-ROT13', secret: 'c2VjcmV0' });
  else if (hook === 'd2_srv_configured') handle.setArgument('error', 42);
  else if (hook === 'command_processed' || hook.startsWith('$')) handle.setArgument('response', { result: 'not a number' });
  else handle.setArgument('fault_injection', () => 'a function cannot cross threads');
}
