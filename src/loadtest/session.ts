/**
 * A load-test session: its settings, and its runs: one, or with --compare the
 * same load, seed and fault mix once per variant (isolation mode, and policy
 * when two are given), one after the other so they do not compete for the CPU.
 */
import { cpus, totalmem, release, type as osType, arch } from 'node:os';
import type { HookLibraryConfigInput } from '../hooks/library-config.js';
import { VERSION } from '../version.js';
import type { LoadtestReport } from './runner.js';

export type Isolation = 'thread' | 'process';
export const ISOLATION_MODES: readonly Isolation[] = ['thread', 'process'];

export interface LoadtestSettings {
  hook: string;
  libraries: string[];
  /** --sandbox as given (each variant's own overrides come on top). */
  sandbox: Record<string, unknown>;
  faults: Record<string, number> | null;
  seed: number;
  concurrency: number;
  limits: { durationS: number | null; count: number | null };
  intervalMs: number;
  configuration: string;
  startedAt: string;
  machine: { os: string; cpus: string; memoryMb: number; node: string; d2box: string };
}

/** One way of running the libraries: what it overrides in every library's sandbox policy. */
export interface LoadtestVariant {
  name: string;
  sandbox: Record<string, unknown>;
}

export interface LoadtestRun {
  name: string;
  sandbox: Record<string, unknown>;
  report: LoadtestReport;
}

/** What --json prints with --compare. */
export interface LoadtestComparison {
  settings: LoadtestSettings;
  runs: LoadtestRun[];
}

export function machineDescription(): LoadtestSettings['machine'] {
  const list = cpus();
  return {
    os: `${osType()} ${release()} ${arch()}`,
    cpus: `${list.length} × ${list[0]?.model.trim() ?? 'unknown'}`,
    memoryMb: Math.round(totalmem() / 1048576),
    node: process.versions.node,
    d2box: VERSION,
  };
}

/**
 * The variants --compare runs: each isolation mode, times each policy when
 * policies are given (each a sandbox override), in that order.
 */
export function comparisonVariants(policies: Record<string, unknown>[]): LoadtestVariant[] {
  const list = policies.length ? policies : [{}];
  return ISOLATION_MODES.flatMap((isolation) =>
    list.map((policy) => ({
      name: policies.length > 1 ? `${isolation} ${JSON.stringify(policy)}` : isolation,
      sandbox: { ...policy, isolation },
    })),
  );
}

/** The libraries with a variant's overrides on every one's sandbox policy. */
export function applyVariant(libraries: HookLibraryConfigInput[], variant: LoadtestVariant): HookLibraryConfigInput[] {
  return libraries.map((entry) => ({ ...entry, sandbox: { ...entry.sandbox, ...variant.sandbox } as HookLibraryConfigInput['sandbox'] }));
}
