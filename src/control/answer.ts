/**
 * Kea's control-command answers (src/lib/cc/command_interpreter.cc): result
 * codes, createAnswer (a `text` only when there is one, `arguments` only when
 * given) and parseCommand's checks of a request.
 */
export const CONTROL_RESULT_SUCCESS = 0;
export const CONTROL_RESULT_ERROR = 1;
export const CONTROL_RESULT_COMMAND_UNSUPPORTED = 2;
export const CONTROL_RESULT_EMPTY = 3;
export const CONTROL_RESULT_CONFLICT = 4;

export interface Answer {
  result: number;
  text?: string;
  arguments?: unknown;
  [extra: string]: unknown;
}

export function createAnswer(result: number, text?: string, args?: unknown): Answer {
  const answer: Answer = { result };
  if (text !== undefined && text !== '') answer.text = text;
  if (args !== undefined) answer.arguments = args;
  return answer;
}

export class CommandError extends Error {
  override name = 'CommandError';
}

export interface ParsedCommand {
  command: string;
  arguments: unknown;
}

const ALLOWED = new Set(['command', 'arguments', 'service', 'remote-address']);

/** Kea's parseCommand: a map with a string `command` and nothing but arguments/service/remote-address. */
export function parseCommand(request: unknown): ParsedCommand {
  if (typeof request !== 'object' || request === null || Array.isArray(request)) {
    throw new CommandError('Invalid command Element specified, expected map');
  }
  const r = request as Record<string, unknown>;
  if (!Object.hasOwn(r, 'command')) throw new CommandError("Invalid answer specified, does not contain mandatory 'command'");
  for (const key of Object.keys(r)) {
    if (!ALLOWED.has(key)) throw new CommandError(`Received command contains unsupported parameter '${key}'`);
  }
  if (typeof r.command !== 'string') throw new CommandError("'command' element in command message is not a string");
  return { command: r.command, arguments: r.arguments };
}

export function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
