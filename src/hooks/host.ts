/**
 * `d2box/host`: the hook host on its own, for embedding it in another Node
 * program or testing a hook library: the server's side of the hooks framework
 * (Kea's HooksManager, ServerHooks, CalloutHandle) with every library in its
 * own worker thread.
 */
export { HooksManager, HooksLoadError, type ChainReport, type CalloutFailure, type HooksManagerOptions } from './hooks-manager.js';
export { CalloutHandle, NoSuchArgument } from './callout-handle.js';
export { ServerHooks, D2_HOOK_POINTS, type HookPoint, type ArgumentSpec, type CommandResponse } from './server-hooks.js';
export { IOService } from './io-service.js';
export { SandboxPolicySchema, HookLibraryConfigSchema, type HookLibraryConfigInput, type SandboxPolicy } from './library-config.js';
export type { LibraryStatsSnapshot, LibraryState } from './library-stats.js';
export { HOOKS_VERSION, NextStep, FAILURE_KINDS, type FailureKind, type NextStepStatus, type SerializedError } from './protocol.js';
