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
    /**
     * Memory outside the V8 heap (ArrayBuffers, Buffers, typed arrays, WebAssembly
     * memories, external strings), which max-heap-mb does not bound. Default: the
     * library's max-heap-mb. Checked by the host (library-memory-watch.ts).
     */
    'max-external-mb': z.number().int().min(8).max(65_536).optional(),
    'on-failure': z.enum(['drop', 'continue']).default('drop'),
    'max-restarts': z.number().int().nonnegative().default(5),
    'restart-window-s': z.number().positive().default(60),
    'log-lines-per-second': z.number().int().positive().default(200),
    isolation: z.enum(['thread', 'process']).default('thread'),
    // The library's share of the main loop through the IOService (src/hooks/io-ration.ts).
    'io-min-interval-ms': z.number().int().min(1).max(3_600_000).default(10),
    'io-max-timers': z.number().int().positive().max(10_000).default(256),
    'io-max-pending-callbacks': z.number().int().positive().max(10_000).default(64),
    'io-callbacks-per-second': z.number().int().positive().max(1_000_000).default(1000),
    'io-calls-per-second': z.number().int().positive().max(1_000_000).default(1000),
    'io-throttle-seconds': z.number().int().nonnegative().max(3600).default(5),
    // Process mode only (src/hooks/process-sandbox.ts): paths the library may write, and OS limits.
    'allow-write': z.array(z.string().min(1)).default([]),
    /**
     * Endpoints the library may reach through sockets the host opens for it (lent-network.ts):
     * a process library's only way out of its sandbox, which has only its own `lo`.
     */
    'allow-connect': z
      .array(
        z.union([
          z.strictObject({ address: z.union([z.ipv4(), z.ipv6()]), port: z.number().int().min(1).max(65_535), protocol: z.enum(['udp', 'tcp']) }),
          // Every DNS server of the current configuration (forward-ddns and reverse-ddns), as it changes.
          z.strictObject({ group: z.literal('dns-servers'), protocol: z.enum(['udp', 'tcp']) }),
        ]),
      )
      .max(64)
      .default([]),
    'max-cpu-seconds': z.number().int().positive().default(3600),
    'max-open-files': z.number().int().min(16).max(65_536).default(256),
    /**
     * Whether TSIG secrets reach the library. Default: yes in a thread (which can
     * read the key files anyway, so hiding them would protect nothing), no in a process.
     */
    'see-secrets': z.boolean().optional(),
  })
  .strict()
  .superRefine((policy, ctx) => {
    if (policy.isolation === 'thread' && policy['allow-write'].length > 0) {
      ctx.addIssue({ code: 'custom', path: ['allow-write'], message: '"allow-write" applies to "isolation": "process" only; a thread can write anywhere the daemon can' });
    }
  });
export type SandboxPolicy = z.infer<typeof SandboxPolicySchema>;

/** The library's limit on memory outside its V8 heap, in MB ('max-external-mb' above). */
export function maxExternalMb(policy: SandboxPolicy): number {
  return policy['max-external-mb'] ?? policy['max-heap-mb'];
}

/** Whether a library is shown TSIG secrets (see 'see-secrets' above). */
export function seesSecrets(policy: SandboxPolicy): boolean {
  return policy['see-secrets'] ?? policy.isolation === 'thread';
}

export const HookLibraryConfigSchema = z
  .object({
    library: z.string().min(1, "hooks library configuration error: value of 'library' element must not be blank"),
    parameters: z.record(z.string(), z.unknown()).default({}),
    sandbox: SandboxPolicySchema.default(SandboxPolicySchema.parse({})),
  })
  .strict();
export type HookLibraryConfig = z.infer<typeof HookLibraryConfigSchema>;
export type HookLibraryConfigInput = z.input<typeof HookLibraryConfigSchema>;

export const HooksLibrariesSchema = z.array(HookLibraryConfigSchema);
