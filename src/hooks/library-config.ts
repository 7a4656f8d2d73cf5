/**
 * One `hooks-libraries` entry: Kea's `library` and `parameters`, plus d2box's
 * per-library isolation policy under `sandbox` (DESIGN.md, "Isolation policy").
 */
import { z } from 'zod';

export const SandboxPolicySchema = z
  .object({
    'callout-timeout-ms': z.number().int().positive().max(3_600_000).default(500),
    'load-timeout-ms': z.number().int().positive().max(3_600_000).default(10_000),
    'max-heap-mb': z.number().int().min(8).max(65_536).default(128),
    'on-failure': z.enum(['drop', 'continue']).default('drop'),
    'max-restarts': z.number().int().nonnegative().default(5),
    'restart-window-s': z.number().positive().default(60),
    'log-lines-per-second': z.number().int().positive().default(200),
    isolation: z.enum(['thread', 'process']).default('thread'),
  })
  .strict();
export type SandboxPolicy = z.infer<typeof SandboxPolicySchema>;

export const HookLibraryConfigSchema = z
  .object({
    library: z.string().min(1, 'library path must not be empty'),
    parameters: z.record(z.string(), z.unknown()).default({}),
    sandbox: SandboxPolicySchema.default(SandboxPolicySchema.parse({})),
  })
  .strict();
export type HookLibraryConfig = z.infer<typeof HookLibraryConfigSchema>;
export type HookLibraryConfigInput = z.input<typeof HookLibraryConfigSchema>;

export const HooksLibrariesSchema = z.array(HookLibraryConfigSchema);
