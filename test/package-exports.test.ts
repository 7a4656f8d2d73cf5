import { describe, expect, it } from 'vitest';

// The package's public surface, as a hook author or an embedding program imports it
// (through package.json "exports", i.e. the compiled dist/).
describe('package exports', () => {
  it('d2box/hooks gives hook authors Kea\'s constants', async () => {
    const api = await import('d2box/hooks');
    expect(api.HOOKS_VERSION).toBe(20200);
    expect(api.NextStep).toEqual({ CONTINUE: 0, SKIP: 1, DROP: 2, PARK: 3 });
  });

  it('d2box/host runs a library in its worker for an embedding program', async () => {
    const { HooksManager, NextStep } = await import('d2box/host');
    const hooks = new HooksManager({ baseDir: process.cwd() });
    try {
      await hooks.loadLibraries([{ library: 'test/fixtures/basic.mjs', parameters: { skip: '10.0.0.1' } }]);
      const handle = await hooks.createCalloutHandle();
      handle.setArgument('current_server', { 'ip-address': '10.0.0.1', port: 53 }).setArgument('tsig_key', null);
      expect(await hooks.callCallouts('select_key', handle)).toEqual({ failures: [] });
      expect(hooks.nextStep('select_key', handle)).toBe(NextStep.SKIP);
      expect(hooks.getLibraryStatistics()[0]).toMatchObject({ state: 'ready', calls: 1 });
    } finally {
      await hooks.unloadLibraries();
    }
  });
});
