/**
 * ServerHooks: the registry of hook points, as Kea's `ServerHooks`. Each hook
 * point declares its arguments (schema, direction, how they travel to a worker)
 * and the next-step statuses the server honours; a status a hook point does not
 * honour counts as CONTINUE.
 */
import { LibraryKeyHolder } from './library-key-holder.js';
import { z } from 'zod';
import { TSIG_ALGORITHMS, type TsigAlgorithm } from '../dns/tsig.js';
import { NextStep, type NextStepStatus } from './protocol.js';

export type ArgumentDirection = 'in' | 'out' | 'in/out';

/**
 * How an argument reaches the worker: by value (structured clone), as a
 * reference to the configuration snapshot the worker already holds, or as the
 * worker's IOService proxy.
 */
export type ArgumentTransport = 'value' | 'snapshot' | 'io_context';

export interface ArgumentSpec {
  direction: ArgumentDirection;
  transport: ArgumentTransport;
  /** Checked on every value a library sets; in-only arguments are never taken back. */
  schema: z.ZodType;
}

export interface HookPoint {
  name: string;
  arguments: Record<string, ArgumentSpec>;
  /** Statuses the server acts on, CONTINUE aside. */
  honoured: readonly NextStepStatus[];
}

const TSIG_ALGORITHM_NAMES = Object.keys(TSIG_ALGORITHMS) as [TsigAlgorithm, ...TsigAlgorithm[]];

/** A TSIG key as select_key sees and returns it (Kea's D2TsigKey, by value). */
export const TsigKeySchema = z
  .object({
    name: z.string().min(1).max(255),
    algorithm: z
      .string()
      .transform((s) => s.toUpperCase())
      .pipe(z.enum(TSIG_ALGORITHM_NAMES)),
    secret: z.string().regex(/^[A-Za-z0-9+/]+={0,2}$/, 'secret must be base64').min(4),
    'digest-bits': z.number().int().nonnegative().optional(),
  })
  .strict();

/**
 * A key the library holds (it signs and verifies; the server never sees the material):
 * what the library's host makes of select_key's `{ name, algorithm, held: true }`.
 */
export const HeldKeySchema = z
  .object({
    name: z.string().min(1).max(255),
    algorithm: z.string().min(1).max(255),
    held: z.custom<LibraryKeyHolder>((v) => v instanceof LibraryKeyHolder, 'held must be set by the server'),
  })
  .strict();

/**
 * select_key's key: a held key when it says `held`, a key by value otherwise. Picked by
 * that, not tried both ways as a union would be, so that a wrong key is refused with the
 * field that is wrong rather than zod's bare "Invalid input".
 */
const SelectedKeySchema = z.unknown().transform((value, ctx): z.output<typeof TsigKeySchema> | z.output<typeof HeldKeySchema> => {
  const held = typeof value === 'object' && value !== null && 'held' in value;
  const parsed = (held ? HeldKeySchema : TsigKeySchema).safeParse(value);
  if (parsed.success) return parsed.data;
  for (const issue of parsed.error.issues) ctx.addIssue({ code: 'custom', message: issue.message, path: issue.path });
  return z.NEVER;
});

/** The DNS server an update is about to go to (Kea's DnsServerInfo). */
export const DnsServerSchema = z
  .object({
    'ip-address': z.string(),
    port: z.number().int().min(0).max(65535),
    'key-name': z.string().optional(),
    hostname: z.string().optional(),
    enabled: z.boolean().optional(),
  })
  .passthrough();

/** Kea's control-command answer. */
export const CommandResponseSchema = z
  .object({
    result: z.number().int(),
    text: z.string().optional(),
    arguments: z.unknown().optional(),
  })
  .passthrough();
export type CommandResponse = z.infer<typeof CommandResponseSchema>;

export const CommandSchema = z
  .object({ command: z.string(), arguments: z.unknown().optional() })
  .passthrough();

const anyValue = z.unknown();

/** D2's hook points and the standard ones every Kea server has. */
export const D2_HOOK_POINTS: readonly HookPoint[] = [
  {
    name: 'context_create',
    arguments: {},
    honoured: [],
  },
  {
    name: 'context_destroy',
    arguments: {},
    honoured: [],
  },
  {
    name: 'd2_srv_configured',
    arguments: {
      io_context: { direction: 'in', transport: 'io_context', schema: anyValue },
      json_config: { direction: 'in', transport: 'snapshot', schema: anyValue },
      server_config: { direction: 'in', transport: 'snapshot', schema: anyValue },
      error: { direction: 'out', transport: 'value', schema: z.string() },
    },
    honoured: [NextStep.DROP],
  },
  {
    name: 'select_key',
    arguments: {
      current_server: { direction: 'in', transport: 'value', schema: DnsServerSchema },
      tsig_key: { direction: 'in/out', transport: 'value', schema: SelectedKeySchema.nullable() },
    },
    honoured: [NextStep.SKIP, NextStep.DROP, NextStep.PARK],
  },
  {
    name: 'command_processed',
    arguments: {
      name: { direction: 'in', transport: 'value', schema: z.string() },
      arguments: { direction: 'in', transport: 'value', schema: anyValue },
      response: { direction: 'in/out', transport: 'value', schema: CommandResponseSchema },
    },
    honoured: [],
  },
];

const COMMAND_HOOK_ARGUMENTS: Record<string, ArgumentSpec> = {
  command: { direction: 'in', transport: 'value', schema: CommandSchema },
  response: { direction: 'in/out', transport: 'value', schema: CommandResponseSchema },
};

export class ServerHooks {
  private readonly hooks = new Map<string, HookPoint>();

  constructor(points: readonly HookPoint[] = D2_HOOK_POINTS) {
    for (const point of points) this.registerHook(point);
  }

  registerHook(point: HookPoint): void {
    if (this.hooks.has(point.name)) throw new Error(`hook point '${point.name}' is already registered`);
    this.hooks.set(point.name, point);
  }

  /** Kea's ServerHooks::commandToHookName: `my-cmd` → `$my_cmd`. */
  static commandToHookName(command: string): string {
    return '$' + command.replaceAll('-', '_');
  }

  /** Kea's ServerHooks::hookToCommandName: `$my_cmd` → `my-cmd`. */
  static hookToCommandName(hook: string): string {
    return hook.startsWith('$') ? hook.slice(1).replaceAll('_', '-') : '';
  }

  static isCommandHook(name: string): boolean {
    return name.startsWith('$');
  }

  /** A hook point by name; command hooks (`$...`) exist for any command. */
  find(name: string): HookPoint | undefined {
    const point = this.hooks.get(name);
    if (point || !ServerHooks.isCommandHook(name)) return point;
    return { name, arguments: COMMAND_HOOK_ARGUMENTS, honoured: [] };
  }

  get(name: string): HookPoint {
    const point = this.find(name);
    if (!point) throw new Error(`no such hook point: '${name}'`);
    return point;
  }

  getHookNames(): string[] {
    return [...this.hooks.keys()];
  }

  /** The status the server acts on: an unsupported value counts as CONTINUE. */
  effectiveStatus(name: string, status: NextStepStatus): NextStepStatus {
    const point = this.find(name);
    return point && point.honoured.includes(status) ? status : NextStep.CONTINUE;
  }
}
