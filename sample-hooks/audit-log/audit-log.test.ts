import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// Through d2box's public entry points only (d2box/host), as a test of your own library would be.
import { HooksManager } from 'd2box/host';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { canonical } from './index.js';

const LIBRARY = 'dist/sample-hooks/audit-log/index.js';
const SECRET = 'c3VwZXItc2VjcmV0LWF1ZGl0';
const CONFIG = {
  DhcpDdns: {
    'tsig-keys': [{ name: 'audit.key', algorithm: 'HMAC-SHA256', secret: SECRET }],
    'forward-ddns': { 'ddns-domains': [{ name: 'example.com.', 'key-name': 'audit.key', 'dns-servers': [{ 'ip-address': '192.0.2.1' }] }] },
    'reverse-ddns': { 'ddns-domains': [{ name: '2.0.192.in-addr.arpa.', 'dns-servers': [{ 'ip-address': '192.0.2.1' }] }] },
  },
};
/** The same configuration with its keys in another order. */
const REORDERED = JSON.parse(JSON.stringify(CONFIG, Object.keys(CONFIG.DhcpDdns).reverse().concat(['DhcpDdns', 'name', 'algorithm', 'secret', 'ddns-domains', 'key-name', 'dns-servers', 'ip-address'])));

let dir: string;
let hooks: HooksManager | undefined;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'd2box-audit-'));
});
afterEach(async () => {
  await hooks?.unloadLibraries();
  expect(hooks?.io.pending() ?? 0).toBe(0);
  hooks = undefined;
  rmSync(dir, { recursive: true, force: true });
});

async function load(parameters: Record<string, unknown>): Promise<HooksManager> {
  hooks = new HooksManager({ baseDir: process.cwd() });
  await hooks.loadLibraries([{ library: LIBRARY, parameters }]);
  return hooks;
}

// Bounded polling for what happens after a callout (a flush): generous, the machine may be shared.
const WAIT = { timeout: 15_000, interval: 10 };
const records = (file: string) => readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);

describe('sample audit-log', () => {
  it('records each configuration (hash, domains, key names, no secrets), flushed by an IOService timer', async () => {
    const file = join(dir, 'audit.jsonl');
    const h = await load({ file, 'flush-interval-ms': 20 });
    expect(await h.configured(CONFIG, {})).toEqual({ accepted: true });
    // The timer lives on the server's IOService, owned by the library.
    expect(h.io.pending(LIBRARY)).toBe(1);
    await vi.waitFor(() => expect(records(file).some((r) => r.event === 'configured'), 'the configured record to be flushed').toBe(true), WAIT);
    expect(await h.configured(REORDERED, {})).toEqual({ accepted: true });
    expect(await h.configured({ DhcpDdns: {} }, {})).toEqual({ accepted: true });
    await vi.waitFor(() => expect(records(file).filter((r) => r.event === 'configured').length === 3, 'three configured records').toBe(true), WAIT);
    const [first, second, third] = records(file).filter((r) => r.event === 'configured');
    expect(first).toMatchObject({
      sha256: createHash('sha256').update(canonical(CONFIG)).digest('hex'),
      forward: ['example.com.'],
      reverse: ['2.0.192.in-addr.arpa.'],
      'tsig-keys': ['audit.key'],
    });
    // Key order and formatting do not change the hash; content does.
    expect(second!.sha256).toBe(first!.sha256);
    expect(third!.sha256).not.toBe(first!.sha256);
    expect(third).toMatchObject({ forward: [], reverse: [], 'tsig-keys': [] });
    expect(records(file)[0]).toMatchObject({ event: 'load', library: LIBRARY });
    expect(readFileSync(file, 'utf8')).not.toContain(SECRET);
    // Still one timer, however many configurations.
    expect(h.io.pending(LIBRARY)).toBe(1);
  });

  it('records control commands (name and result, never arguments)', async () => {
    const file = join(dir, 'audit.jsonl');
    const h = await load({ file, 'flush-interval-ms': 20 });
    await h.configured(CONFIG, {});
    const handle = await h.createCalloutHandle();
    handle.setArgument('name', 'config-set').setArgument('arguments', { DhcpDdns: { secret: SECRET } }).setArgument('response', { result: 1, text: 'nope' });
    expect((await h.callCallouts('command_processed', handle)).failures).toEqual([]);
    await vi.waitFor(() => expect(records(file).some((r) => r.event === 'command'), 'the command record').toBe(true), WAIT);
    expect(records(file).find((r) => r.event === 'command')).toMatchObject({ name: 'config-set', result: 1 });
    expect(readFileSync(file, 'utf8')).not.toContain(SECRET);
  });

  it('on unload: cancels its timer and flushes what is buffered, ending with an unload record', async () => {
    const file = join(dir, 'audit.jsonl');
    const h = await load({ file, 'flush-interval-ms': 3_600_000 });
    await h.configured(CONFIG, {});
    // Nothing flushed yet: the timer is an hour away.
    expect(readFileSync(file, 'utf8')).toBe('');
    expect(h.io.pending(LIBRARY)).toBe(1);
    await h.unloadLibraries();
    expect(h.io.pending()).toBe(0);
    expect(records(file).map((r) => r.event)).toEqual(['load', 'configured', 'unload']);
  });

  it('flushes at once past max-buffered records', async () => {
    const file = join(dir, 'audit.jsonl');
    const h = await load({ file, 'flush-interval-ms': 3_600_000, 'max-buffered': 2 });
    await h.configured(CONFIG, {});
    expect(records(file).map((r) => r.event)).toEqual(['load', 'configured']);
  });

  it('fails load, naming the library, without a file or with one it cannot write', async () => {
    hooks = new HooksManager({ baseDir: process.cwd() });
    await expect(hooks.loadLibraries([{ library: LIBRARY }])).rejects.toThrow(/audit-log.*"file" \(the audit file\) is required/s);
    await expect(hooks.loadLibraries([{ library: LIBRARY, parameters: { file: join(dir, 'no', 'such', 'dir', 'a.jsonl') } }])).rejects.toThrow(/audit-log.*ENOENT/s);
  });
});
