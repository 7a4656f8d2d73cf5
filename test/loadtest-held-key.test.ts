/**
 * The load tester on a key a library holds (issue 13 item 4): select_key hands
 * back `{ held: true }`, and after each such callout the load tester signs an
 * update and checks a signed answer through the library, as the daemon does.
 * Short runs, in a thread and in the process sandbox: a right holder makes
 * every round trip verify; a wrong MAC is rejected; a throwing sign fails every
 * round trip and the library's statistics count each as its `throw`.
 */
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatReport } from '../src/loadtest/report.js';
import { runLoadtest, type LoadtestReport } from '../src/loadtest/runner.js';

const LIBRARY = resolve('test/fixtures/held-key/library.mjs');
const SECRET_NAME = 'loadtest-secret.key';
const SECRET_FILE = resolve('test/fixtures/held-key', SECRET_NAME);
/** Generous: two shared, noisy cores; a sandboxed library can take seconds to start. */
const SANDBOX = { 'callout-timeout-ms': 10_000, 'load-timeout-ms': 20_000 };
const N = 60;

beforeAll(() => writeFileSync(SECRET_FILE, randomBytes(32).toString('base64') + '\n', { mode: 0o600 }));
afterAll(() => rmSync(SECRET_FILE, { force: true }));

function run(isolation: 'thread' | 'process', mode: string): Promise<LoadtestReport> {
  return runLoadtest({
    hook: 'select_key',
    concurrency: 4,
    seed: 1,
    count: N,
    libraries: [{ library: LIBRARY, parameters: { mode, 'secret-file': SECRET_NAME }, sandbox: { ...SANDBOX, isolation } }],
  });
}

for (const isolation of ['thread', 'process'] as const) {
  describe(`loadtest with a held key, ${isolation} mode`, () => {
    it('a right holder: every callout is followed by a sign and verify round trip, and each verifies', async () => {
      const r = await run(isolation, 'right');
      expect(r.outcomes.ok).toBe(N);
      expect(r.heldKey).toBeDefined();
      expect(r.heldKey!.roundTrips).toBe(N);
      expect(r.heldKey!.outcomes).toEqual({ ok: N, 'sign-failed': 0, 'verify-failed': 0, rejected: 0 });
      expect(r.heldKey!.latencyMs.p50).toBeGreaterThan(0);
      expect(r.heldKey!.latencyMs.p99).toBeLessThanOrEqual(r.heldKey!.latencyMs.max);
      expect(r.libraryStatistics[0]!.failures).toMatchObject({ throw: 0, timeout: 0, 'invalid-argument': 0 });
      expect(formatReport(r)).toMatch(new RegExp(`held key ok\\s+${N}\\b`));
    }, 60_000);

    it('a wrong MAC: every answer is rejected (BADSIG), as the daemon would treat it', async () => {
      const r = await run(isolation, 'wrong-mac');
      expect(r.heldKey!.roundTrips).toBe(N);
      expect(r.heldKey!.outcomes).toEqual({ ok: 0, 'sign-failed': 0, 'verify-failed': 0, rejected: N });
    }, 60_000);

    it('a sign that throws: every round trip fails at signing, counted as the library\'s throw', async () => {
      const r = await run(isolation, 'throw');
      expect(r.outcomes.ok).toBe(N);
      expect(r.heldKey!.outcomes).toEqual({ ok: 0, 'sign-failed': N, 'verify-failed': 0, rejected: 0 });
      expect(r.libraryStatistics[0]!.failures.throw).toBe(N);
    }, 60_000);
  });
}
