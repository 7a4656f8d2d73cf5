/**
 * CommandMgr, as Kea's BaseCommandMgr + HookedCommandMgr
 * (src/lib/config/base_command_mgr.cc, hooked_command_mgr.cc): built-in
 * handlers by name; a command some hook library registered
 * (registerCommandCallout) goes to that library first, as in Kea, so a
 * library may also take over a built-in command; `list-commands` merges both
 * sets; after every command the `command_processed` hook point may amend the
 * response (a callout that fails leaves the original response).
 */
import type { HooksManager } from '../hooks/hooks-manager.js';
import { quoteUntrusted } from '../log/log-text.js';
import { Logger } from '../log/logger.js';
import {
  CONTROL_RESULT_COMMAND_UNSUPPORTED,
  CONTROL_RESULT_ERROR,
  CONTROL_RESULT_SUCCESS,
  createAnswer,
  parseCommand,
  type Answer,
} from './answer.js';

export type CommandHandler = (name: string, args: unknown) => Answer | Promise<Answer>;

export class CommandMgr {
  private readonly handlers = new Map<string, CommandHandler>();
  private readonly log = new Logger('commands');

  constructor(private readonly hooks: HooksManager | undefined) {
    this.handlers.set('list-commands', () => createAnswer(CONTROL_RESULT_SUCCESS, undefined, this.listCommands()));
  }

  registerCommand(name: string, handler: CommandHandler): void {
    if (this.handlers.has(name)) throw new Error(`Handler for command '${name}' is already installed.`);
    this.handlers.set(name, handler);
  }

  deregisterCommand(name: string): void {
    if (name === 'list-commands') throw new Error("Can't uninstall internal command 'list-commands'");
    this.handlers.delete(name);
  }

  /** Built-in commands and those hook libraries registered, sorted and unique. */
  listCommands(): string[] {
    return [...new Set([...this.handlers.keys(), ...(this.hooks?.getCommandNames() ?? [])])].sort();
  }

  /** Any request value (already parsed JSON) → Kea's answer. Never rejects. */
  async processCommand(request: unknown): Promise<Answer> {
    let name: string;
    let args: unknown;
    try {
      ({ command: name, arguments: args } = parseCommand(request));
    } catch (e) {
      this.log.warn('COMMAND_PROCESS_ERROR1', `Error during command processing: ${(e as Error).message}`);
      return createAnswer(CONTROL_RESULT_ERROR, (e as Error).message);
    }
    this.log.info('COMMAND_RECEIVED', `Received command '${name}'`);
    let response: Answer;
    try {
      response = await this.handleCommand(name, args);
    } catch (e) {
      this.log.warn('COMMAND_PROCESS_ERROR2', `Error during command processing: ${(e as Error).message}`);
      response = createAnswer(CONTROL_RESULT_ERROR, `Error during command processing: ${(e as Error).message}`);
    }
    return this.commandProcessed(name, args, response);
  }

  private async handleCommand(name: string, args: unknown): Promise<Answer> {
    if (name !== 'list-commands' && this.hooks?.commandHandlersPresent(name)) {
      return (await this.hooks.callCommandHandlers(name, args)) as Answer;
    }
    const handler = this.handlers.get(name);
    if (!handler) return createAnswer(CONTROL_RESULT_COMMAND_UNSUPPORTED, `'${name}' command not supported.`);
    return handler(name, args);
  }

  private async commandProcessed(name: string, args: unknown, response: Answer): Promise<Answer> {
    const hooks = this.hooks;
    if (!hooks?.calloutsPresent('command_processed')) return response;
    let handle;
    try {
      handle = await hooks.createCalloutHandle();
      handle.setArgument('name', name).setArgument('arguments', args ?? null).setArgument('response', response);
      const report = await hooks.callCallouts('command_processed', handle);
      if (report.failures.length > 0) {
        const f = report.failures[0]!;
        this.log.warn('D2BOX_COMMAND_PROCESSED_CALLOUT_FAILED', `command_processed callout of hook library ${f.library} failed (${f.failure.kind}: ${quoteUntrusted(f.failure.message)}); the original response to '${name}' is kept`);
        return response;
      }
      return handle.hasArgument('response') ? handle.getArgument<Answer>('response') : response;
    } catch (e) {
      this.log.warn('D2BOX_COMMAND_PROCESSED_CALLOUT_FAILED', `command_processed for '${name}' failed: ${(e as Error).message}; the original response is kept`);
      return response;
    } finally {
      await handle?.destroy();
    }
  }
}
