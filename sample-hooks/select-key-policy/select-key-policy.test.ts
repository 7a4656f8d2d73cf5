// Through d2box's public entry points only (d2box/host), as a test of your own library would be.
import { HooksManager, NextStep } from 'd2box/host';
import { afterEach, describe, expect, it } from 'vitest';

const LIBRARY = 'dist/sample-hooks/select-key-policy/index.js';
const KEY_A = { name: 'key-a', algorithm: 'HMAC-SHA256', secret: 'Zmlyc3Qga2V5' };
const KEY_B = { name: 'key-b', algorithm: 'HMAC-SHA512', secret: 'c2Vjb25kIGtleQ==' };
const CONFIG = { DhcpDdns: { 'tsig-keys': [KEY_A] } };

describe('sample select-key-policy', () => {
  let hooks: HooksManager | undefined;
  afterEach(async () => {
    await hooks?.unloadLibraries();
    hooks = undefined;
  });

  async function load(parameters: Record<string, unknown>): Promise<HooksManager> {
    hooks = new HooksManager({ baseDir: process.cwd() });
    await hooks.loadLibraries([{ library: LIBRARY, parameters }]);
    return hooks;
  }

  async function keyFor(h: HooksManager, address: string, port: number, current: unknown = null) {
    const handle = await h.createCalloutHandle();
    handle.setArgument('current_server', { 'ip-address': address, port }).setArgument('tsig_key', current);
    const report = await h.callCallouts('select_key', handle);
    expect(report.failures).toEqual([]);
    return { key: handle.getArgument('tsig_key'), status: h.nextStep('select_key', handle) };
  }

  it('maps servers to keys, by address:port before address, with the server keys and its own', async () => {
    const h = await load({ 'by-server': { '127.0.0.1': 'key-a', '127.0.0.1:5353': 'key-b' }, keys: [KEY_B] });
    expect(await h.configured(CONFIG, {})).toEqual({ accepted: true });
    expect(await keyFor(h, '127.0.0.1', 53)).toEqual({ key: KEY_A, status: NextStep.CONTINUE });
    expect(await keyFor(h, '127.0.0.1', 5353)).toEqual({ key: KEY_B, status: NextStep.CONTINUE });
    // Not mapped, no default: the key D2 chose stays.
    expect((await keyFor(h, '10.1.1.1', 53, KEY_B)).key).toEqual(KEY_B);
  });

  it('applies the default and the unsigned list', async () => {
    const h = await load({ default: 'key-a', unsigned: ['10.0.0.9'] });
    await h.configured(CONFIG, {});
    expect((await keyFor(h, '192.0.2.1', 53)).key).toEqual(KEY_A);
    expect((await keyFor(h, '10.0.0.9', 53, KEY_A)).key).toBeNull();
  });

  it('rejects a configuration whose mapping names an unknown key', async () => {
    const h = await load({ 'by-server': { '127.0.0.1': 'nope' } });
    const result = await h.configured(CONFIG, {});
    expect(result).toEqual({ accepted: false, error: 'select-key-policy: no TSIG key named nope' });
  });

  it('fails load on malformed parameters, naming the library', async () => {
    hooks = new HooksManager({ baseDir: process.cwd() });
    await expect(hooks.loadLibraries([{ library: LIBRARY, parameters: { 'by-server': ['x'] } }])).rejects.toThrow(/select-key-policy.*by-server/s);
  });
});
