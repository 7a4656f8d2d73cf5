/**
 * One key API for both isolation modes: select_key names a configured key
 * (`setArgument('tsig_key', { name })`) and the host puts the configured key
 * back, in a thread as in a sandboxed process; a name the configuration does
 * not have is refused as invalid-argument in both, with a message naming the
 * keys there are. Through the public host API (d2box/host), as an author's test would.
 */
import { resolve } from 'node:path';
import { HooksManager, NextStep } from 'd2box/host';
import { afterEach, describe, expect, it } from 'vitest';
import { configInput, type ConfigSpec } from './fixtures/d2-harness.js';

const LIBRARY = resolve('test/fixtures/select-key-by-name.mjs');
const D2_KEY = { name: 'd2.key', algorithm: 'HMAC-SHA256', secret: 'ZDIta2V5LXNlY3JldA==' };
const SHORT_KEY = { name: 'short.key.', algorithm: 'HMAC-SHA512', secret: 'c2hvcnQta2V5LXNlY3JldA==', 'digest-bits': 256 };
const OWN_KEY = { name: 'own.key', algorithm: 'HMAC-SHA256', secret: 'b3duLWtleS1zZWNyZXQ=' };
const SPEC: ConfigSpec = {
  port: 53001,
  keys: [D2_KEY, SHORT_KEY],
  forward: [{ name: 'example.com.', key: 'd2.key', servers: [{ port: 53 }] }],
};
const CHOOSE = {
  'by-name': { name: 'd2.key' },
  'by-name-other-spelling': { name: 'SHORT.KEY' },
  unknown: { name: 'nope.key' },
  'no-name': { algorithm: 'HMAC-SHA256' },
  none: null,
  own: OWN_KEY,
};

let hooks: HooksManager | undefined;

afterEach(async () => {
  await hooks?.unloadLibraries();
  hooks = undefined;
});

async function start(isolation: 'thread' | 'process'): Promise<HooksManager> {
  hooks = new HooksManager({ baseDir: process.cwd() });
  // A generous deadline: the machine is shared; this test is about the key, not the time.
  await hooks.loadLibraries([{ library: LIBRARY, parameters: { choose: CHOOSE }, sandbox: { isolation, 'callout-timeout-ms': 10_000 } }]);
  const input = configInput(SPEC);
  expect(await hooks.configured(input.json, input.config)).toEqual({ accepted: true });
  return hooks;
}

async function selectKey(h: HooksManager, choice: keyof typeof CHOOSE, current: unknown = D2_KEY) {
  const handle = await h.createCalloutHandle();
  try {
    handle.setArgument('current_server', { 'ip-address': '127.0.0.1', port: 53, hostname: choice }).setArgument('tsig_key', current);
    const report = await h.callCallouts('select_key', handle);
    return { failures: report.failures, key: handle.getArgument('tsig_key'), next: h.nextStep('select_key', handle) };
  } finally {
    await handle.destroy();
  }
}

describe.each(['thread', 'process'] as const)('select_key names a configured key, isolation "%s"', (isolation) => {
  it('a key by name becomes the configured key, secret and digest-bits included; null stays null', async () => {
    const h = await start(isolation);
    expect(await selectKey(h, 'by-name', null)).toEqual({ failures: [], key: D2_KEY, next: NextStep.CONTINUE });
    // Key names are DNS names: no case, no final dot.
    expect(await selectKey(h, 'by-name-other-spelling')).toEqual({ failures: [], key: SHORT_KEY, next: NextStep.CONTINUE });
    expect(await selectKey(h, 'none')).toEqual({ failures: [], key: null, next: NextStep.CONTINUE });
    expect(h.getLibraryStatistics()[0]).toMatchObject({ isolation, state: 'ready', calls: 3 });
    expect(h.getLibraryStatistics()[0]!.failures['invalid-argument'] ?? 0).toBe(0);
  });

  it('a name the configuration does not have is refused as invalid-argument, naming the configured keys; the key stays as it was', async () => {
    const h = await start(isolation);
    const r = await selectKey(h, 'unknown');
    expect(r.failures).toEqual([
      {
        library: LIBRARY,
        failure: expect.objectContaining({
          kind: 'invalid-argument',
          message: 'tsig_key names "nope.key", which is not a key of the configuration (tsig-keys: "d2.key", "short.key.")',
        }),
      },
    ]);
    expect(r.key).toEqual(D2_KEY);
    expect(r.next).toBe(NextStep.DROP); // on-failure: drop, the default
    expect((await selectKey(h, 'no-name')).failures).toEqual([{ library: LIBRARY, failure: expect.objectContaining({ kind: 'invalid-argument' }) }]);
    expect(h.getLibraryStatistics()[0]!.failures['invalid-argument']).toBe(2);
    // Still serving.
    expect((await selectKey(h, 'by-name')).key).toEqual(D2_KEY);
  });
});

describe('a whole key of the library\'s own', () => {
  it('is used as given in a thread, which sees secrets; in a process the configured key of that name would be needed', async () => {
    const thread = await start('thread');
    expect(await selectKey(thread, 'own')).toEqual({ failures: [], key: OWN_KEY, next: NextStep.CONTINUE });
    await thread.unloadLibraries();
    hooks = undefined;
    const sandboxed = await start('process');
    const r = await selectKey(sandboxed, 'own');
    expect(r.failures).toEqual([{ library: LIBRARY, failure: expect.objectContaining({ kind: 'invalid-argument', message: expect.stringMatching(/"own.key", which is not a key of the configuration/) }) }]);
  });
});
