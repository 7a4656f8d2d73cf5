/**
 * The zod schemas the host checks a worker's messages against: the
 * declarations of protocol.ts, as validators. Kept apart so that neither the
 * worker runtime nor a hook library loads zod; each schema is tied to its
 * declared type, so the two cannot drift apart.
 */
import { z } from 'zod';
import { FAILURE_KINDS, type CalloutResult, type IOServiceRemote, type OpenResult, type Registrations, type SerializedError, type SessionResult, type WorkerMessage } from './protocol.js';

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
 * What a library's side may send on the IOService port: calls of the four
 * IOServiceRemote methods and comlink's proxy release, nothing else. comlink
 * would otherwise walk any property path the other side names, __proto__
 * included, and set values there.
 */
const IO_METHODS = new Set<string>(['post', 'setTimeout', 'setInterval', 'cancel'] satisfies (keyof IOServiceRemote)[]);
export function acceptIOServiceMessage(message: unknown): boolean {
  if (typeof message !== 'object' || message === null) return false;
  const { type, path } = message as { type?: unknown; path?: unknown };
  if (type === 'RELEASE') return true;
  return type === 'APPLY' && Array.isArray(path) && path.length === 1 && typeof path[0] === 'string' && IO_METHODS.has(path[0]);
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
