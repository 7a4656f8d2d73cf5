/**
 * The zod schemas the host checks a worker's messages against: the
 * declarations of protocol.ts, as validators. Kept apart so that neither the
 * worker runtime nor a hook library loads zod; each schema is tied to its
 * declared type, so the two cannot drift apart.
 */
import { MessagePort } from 'node:worker_threads';
import { z } from 'zod';
import { FAILURE_KINDS, HELD_LIMITS, LIBRARY_REPORTED_FAILURE_KINDS, MAX_CALLOUTS_PER_HOOK, type CalloutResult, type IOServiceRemote, LIBRARY_STATS_LIMITS, type StatisticUpdate, HELD_KEY_MAC_OCTETS, type KeyOperationResult, LENT_NETWORK_LIMITS, type OpenResult, type Registrations, type SerializedError, type SessionResult, type WorkerMessage } from './protocol.js';

const RegistrationsSchema = z
  .record(z.string().max(HELD_LIMITS.hookNameChars), z.number().int().nonnegative().max(MAX_CALLOUTS_PER_HOOK))
  .refine((r) => Object.keys(r).length <= HELD_LIMITS.registeredHooks, `more than ${HELD_LIMITS.registeredHooks} hook points registered`) satisfies z.ZodType<Registrations>;

/** Cut, not refused: a long message is the library's right, keeping all of it is not the host's duty. */
const cut = (max: number) => z.string().transform((s) => (s.length > max ? `${s.slice(0, max)}…` : s));

export const SerializedErrorSchema = z.object({
  kind: z.enum(FAILURE_KINDS),
  name: cut(256),
  message: cut(HELD_LIMITS.errorMessageChars),
  stack: cut(HELD_LIMITS.errorStackChars).optional(),
}) satisfies z.ZodType<SerializedError>;

/** An error a worker reports, of one kind it may report there (the host sees every other kind itself). */
const reportedError = <K extends readonly [SerializedError['kind'], ...SerializedError['kind'][]]>(kinds: K) =>
  z.object({ kind: z.enum(kinds), name: cut(256), message: cut(HELD_LIMITS.errorMessageChars), stack: cut(HELD_LIMITS.errorStackChars).optional() });

export const CalloutResultSchema = z.object({
  id: z.number().int(),
  status: z.number().int(),
  set: z.record(z.string(), z.unknown()).optional(),
  deleted: z.array(z.string()).optional(),
  context: z.record(z.string(), z.unknown()).optional(),
  nonZero: z.number().int().nonnegative(),
  callouts: z.number().int().nonnegative(),
  failure: reportedError(LIBRARY_REPORTED_FAILURE_KINDS).optional(),
  registrations: RegistrationsSchema.optional(),
  durationUs: z.number().nonnegative(),
}) satisfies z.ZodType<CalloutResult>;

const StatisticName = z.string().min(1).max(LIBRARY_STATS_LIMITS.nameChars);
const StatisticUpdateSchema = z.discriminatedUnion('op', [
  z.strictObject({
    op: z.enum(['set', 'add']),
    name: StatisticName,
    type: z.enum(['integer', 'float', 'duration', 'string']),
    value: z.union([z.number().finite(), z.string().max(LIBRARY_STATS_LIMITS.stringChars)]),
  }).refine((u) => (u.type === 'string') === (typeof u.value === 'string'), 'a statistic value of the wrong type')
    .refine((u) => u.type === 'float' || u.type === 'string' || Number.isSafeInteger(u.value), 'an integer or duration that is not a safe integer'),
  z.strictObject({ op: z.enum(['remove', 'reset']), name: StatisticName }),
  z.strictObject({ op: z.literal('max-sample-count'), name: StatisticName, count: z.number().int().min(0).max(LIBRARY_STATS_LIMITS.samples) }),
  z.strictObject({ op: z.literal('max-sample-age'), name: StatisticName, ageMs: z.number().finite().nonnegative() }),
]) satisfies z.ZodType<StatisticUpdate>;

const KeyOperationResultSchema = z.strictObject({
  id: z.number().int(),
  mac: z.string().max(Math.ceil(HELD_KEY_MAC_OCTETS.max / 3) * 4).regex(/^[A-Za-z0-9+/]*={0,2}$/, 'a MAC is base64').optional(),
  verified: z.boolean().optional(),
  error: cut(HELD_LIMITS.errorMessageChars).optional(),
}) satisfies z.ZodType<KeyOperationResult>;

const SocketId = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const LentEndpointSchema = z.strictObject({ address: z.string().max(64), port: z.number().int().min(1).max(65_535), protocol: z.enum(['udp', 'tcp']) });

export const WorkerMessageSchema = z.discriminatedUnion('t', [
  z.strictObject({ t: z.literal('net-open'), id: SocketId, endpoint: LentEndpointSchema }),
  z.strictObject({ t: z.literal('net-send'), id: SocketId, data: z.string().max(Math.ceil(LENT_NETWORK_LIMITS.datagramBytes / 3) * 4).regex(/^[A-Za-z0-9+/]*={0,2}$/) }),
  z.strictObject({ t: z.literal('net-close'), id: SocketId }),
  z.strictObject({ t: z.literal('net-ack'), id: SocketId, bytes: z.number().int().min(0).max(LENT_NETWORK_LIMITS.tcpBytesInFlight) }),
  z.object({ t: z.literal('key-results'), batch: z.array(KeyOperationResultSchema).max(4096) }),
  z.object({ t: z.literal('stats'), updates: z.array(StatisticUpdateSchema).max(LIBRARY_STATS_LIMITS.updatesPerMessage) }),
  z.object({ t: z.literal('loaded'), multiThreadingCompatible: z.boolean(), registrations: RegistrationsSchema }),
  z.object({ t: z.literal('load-failed'), error: reportedError(['load']) }),
  z.object({ t: z.literal('results'), batch: z.array(CalloutResultSchema) }),
  z.object({
    t: z.literal('log'),
    lines: z.array(z.object({ level: z.enum(['debug', 'info', 'warn', 'error']), text: z.string() })),
    suppressed: z.number().int().nonnegative(),
  }),
  z.object({ t: z.literal('registrations'), registrations: RegistrationsSchema }),
  z.object({ t: z.literal('unloaded'), unloadReturn: z.number().nullable(), error: reportedError(['throw']).optional() }),
  z.object({ t: z.literal('memory'), heapBytes: z.number().nonnegative(), externalBytes: z.number().nonnegative() }),
]) satisfies z.ZodType<WorkerMessage>;

/**
 * What a library's side may send on the IOService port, in comlink's wire
 * format: a call of one of the four IOServiceRemote methods with exactly its
 * arguments, or comlink's proxy release; nothing else. comlink itself trusts
 * the message (it maps over argumentList, looks up any transfer handler the
 * sender names, walks any property path, __proto__ included), so nothing
 * reaches it unchecked. A callback is comlink's proxy wire value carrying the
 * MessagePort it will be called on; delays and task ids are plain numbers.
 */
/** comlink's call ids are four hex numbers joined by dashes (at most 59 characters). */
const MAX_COMLINK_ID_CHARS = 64;
const CallId = z.string().min(1).max(MAX_COMLINK_ID_CHARS);
const CallbackWire = z.strictObject({ type: z.literal('HANDLER'), name: z.literal('proxy'), value: z.instanceof(MessagePort) });
const DelayWire = z.strictObject({ type: z.literal('RAW'), value: z.number().finite() });
const TaskIdWire = z.strictObject({ type: z.literal('RAW'), value: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER) });
const ioCall = <M extends keyof IOServiceRemote, A extends [z.ZodType, ...z.ZodType[]]>(method: M, args: A) =>
  z.strictObject({ id: CallId, type: z.literal('APPLY'), path: z.tuple([z.literal(method)]), argumentList: z.tuple(args) });
/** One schema per kind of message, picked by the message's own type and method (cheaper than trying each). */
const IO_CALL_SCHEMAS = new Map<string, z.ZodType>([
  ['post', ioCall('post', [CallbackWire])],
  ['setTimeout', ioCall('setTimeout', [CallbackWire, DelayWire])],
  ['setInterval', ioCall('setInterval', [CallbackWire, DelayWire])],
  ['cancel', ioCall('cancel', [TaskIdWire])],
  ['RELEASE', z.strictObject({ id: CallId, type: z.literal('RELEASE'), path: z.tuple([]).optional() })],
]);
export const IOServiceCallSchema = z.union([...IO_CALL_SCHEMAS.values()] as [z.ZodType, z.ZodType, ...z.ZodType[]]);

/** `data` checked against IOServiceCallSchema. */
export function parseIOServiceCall(data: unknown): z.ZodSafeParseResult<unknown> {
  const message = typeof data === 'object' && data !== null ? (data as { type?: unknown; path?: unknown }) : undefined;
  const key = message?.type === 'APPLY' && Array.isArray(message.path) ? message.path[0] : message?.type;
  const schema = typeof key === 'string' ? IO_CALL_SCHEMAS.get(key) : undefined;
  return (schema ?? IOServiceCallSchema).safeParse(data);
}

/** What a library's process answers to the open task. */
export const OpenResultSchema = z.object({
  version: z.number().nullable(),
  error: SerializedErrorSchema.optional(),
}).strict() satisfies z.ZodType<OpenResult>;

/** What a library's process answers to the session task, at its end. */
export const SessionResultSchema = z.object({
  unloadReturn: z.number().nullable(),
  error: SerializedErrorSchema.optional(),
}).strict() satisfies z.ZodType<SessionResult>;

/**
 * Why a result's changes are too large for the host to keep (HELD_LIMITS), or
 * undefined. The size is estimated (string lengths, 8 bytes a number or key), and
 * the walk stops as soon as it is past the bound, so a normal result costs a few
 * steps.
 */
export function oversizedChanges(result: CalloutResult): string | undefined {
  if (result.set && !withinBytes(result.set, HELD_LIMITS.setBytes)) return `the arguments it set exceed ${HELD_LIMITS.setBytes} bytes`;
  if (result.context && !withinBytes(result.context, HELD_LIMITS.contextBytes)) return `its context exceeds ${HELD_LIMITS.contextBytes} bytes`;
  return undefined;
}

function withinBytes(value: unknown, limit: number): boolean {
  let budget = limit;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'string') budget -= v.length + 8;
    else if (ArrayBuffer.isView(v)) budget -= v.byteLength + 8;
    else if (v instanceof ArrayBuffer) budget -= v.byteLength + 8;
    else if (typeof v === 'object' && v !== null) {
      for (const key in v) {
        budget -= key.length + 8;
        stack.push((v as Record<string, unknown>)[key]);
      }
      if (v instanceof Map || v instanceof Set) for (const entry of v) stack.push(entry);
    } else budget -= 8;
    if (budget < 0) return false;
  }
  return true;
}

/**
 * What may come back on a callback's port: the answer to the host's call, as
 * comlink's expose sends it (a plain value, or a thrown error).
 */
export const IOCallbackAnswerSchema = z.union([
  // `value` may be missing: a callback returning undefined crosses a process's JSON channel without it.
  z.strictObject({ id: CallId, type: z.literal('RAW'), value: z.unknown().optional() }),
  z.strictObject({
    id: CallId,
    type: z.literal('HANDLER'),
    name: z.literal('throw'),
    value: z.union([
      z.strictObject({ isError: z.literal(true), value: z.object({ message: z.string(), name: z.string().optional(), stack: z.string().optional() }) }),
      z.strictObject({ isError: z.literal(false), value: z.unknown().optional() }),
    ]),
  }),
]);
