/**
 * The zod schemas the host checks a worker's messages against: the
 * declarations of protocol.ts, as validators. Kept apart so that neither the
 * worker runtime nor a hook library loads zod; each schema is tied to its
 * declared type, so the two cannot drift apart.
 */
import { MessagePort } from 'node:worker_threads';
import { z } from 'zod';
import { FAILURE_KINDS, type CalloutResult, type IOServiceRemote, type Registrations, type SerializedError, type WorkerMessage } from './protocol.js';

const RegistrationsSchema = z.record(z.string(), z.number().int().nonnegative()) satisfies z.ZodType<Registrations>;

export const SerializedErrorSchema = z.object({
  kind: z.enum(FAILURE_KINDS),
  name: z.string(),
  message: z.string(),
  stack: z.string().optional(),
}) satisfies z.ZodType<SerializedError>;

export const CalloutResultSchema = z.object({
  id: z.number().int(),
  status: z.number().int(),
  set: z.record(z.string(), z.unknown()).optional(),
  deleted: z.array(z.string()).optional(),
  context: z.record(z.string(), z.unknown()).optional(),
  nonZero: z.number().int().nonnegative(),
  callouts: z.number().int().nonnegative(),
  failure: SerializedErrorSchema.optional(),
  registrations: RegistrationsSchema.optional(),
  durationUs: z.number().nonnegative(),
}) satisfies z.ZodType<CalloutResult>;

export const WorkerMessageSchema = z.discriminatedUnion('t', [
  z.object({ t: z.literal('loaded'), multiThreadingCompatible: z.boolean(), registrations: RegistrationsSchema }),
  z.object({ t: z.literal('load-failed'), error: SerializedErrorSchema }),
  z.object({ t: z.literal('results'), batch: z.array(CalloutResultSchema) }),
  z.object({
    t: z.literal('log'),
    lines: z.array(z.object({ level: z.enum(['debug', 'info', 'warn', 'error']), text: z.string() })),
    suppressed: z.number().int().nonnegative(),
  }),
  z.object({ t: z.literal('registrations'), registrations: RegistrationsSchema }),
  z.object({ t: z.literal('unloaded'), unloadReturn: z.number().nullable(), error: SerializedErrorSchema.optional() }),
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

/**
 * What may come back on a callback's port: the answer to the host's call, as
 * comlink's expose sends it (a plain value, or a thrown error).
 */
export const IOCallbackAnswerSchema = z.union([
  z.strictObject({ id: CallId, type: z.literal('RAW'), value: z.unknown() }),
  z.strictObject({
    id: CallId,
    type: z.literal('HANDLER'),
    name: z.literal('throw'),
    value: z.union([
      z.strictObject({ isError: z.literal(true), value: z.object({ message: z.string(), name: z.string().optional(), stack: z.string().optional() }) }),
      z.strictObject({ isError: z.literal(false), value: z.unknown() }),
    ]),
  }),
]);
