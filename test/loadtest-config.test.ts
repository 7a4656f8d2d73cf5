/**
 * `d2box loadtest --config FILE` runs a library as the daemon would:
 * d2_srv_configured with that configuration first, then select_key with
 * arguments drawn from its DNS servers and the keys D2 would sign with. Without
 * --config the generated servers and keys are in the report and in the docs.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { configurationFromFile, generatedConfiguration } from '../src/loadtest/configuration.js';
import { formatReport } from '../src/loadtest/report.js';
import { runLoadtest, type LoadtestReport } from '../src/loadtest/runner.js';

const CLI = resolve('dist/src/cli.js');
const LIBRARY = resolve('test/fixtures/loadtest-configured.mjs');
const dir = mkdtempSync(join(tmpdir(), 'd2box-loadtest-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const A_KEY = { name: 'a.key', algorithm: 'HMAC-SHA256', secret: 'YS1rZXktc2VjcmV0' };
const B_KEY = { name: 'b.key', algorithm: 'hmac-sha512', secret: 'Yi1rZXktc2VjcmV0', 'digest-bits': 256 };

function writeConfig(name: string, hooks: unknown[] = []): string {
  const file = join(dir, name);
  // Kea's dialect: comments allowed.
  writeFileSync(file, `// an operator's configuration\n${JSON.stringify({
    DhcpDdns: {
      'ip-address': '127.0.0.1',
      port: 53001,
      'tsig-keys': [A_KEY, B_KEY],
      'forward-ddns': { 'ddns-domains': [{ name: 'corp.example.', 'key-name': 'b.key', 'dns-servers': [{ 'ip-address': '127.0.0.1', port: 5301, 'key-name': 'a.key' }, { 'ip-address': '::1', port: 5302 }] }] },
      'reverse-ddns': { 'ddns-domains': [{ name: '0.0.127.in-addr.arpa.', 'dns-servers': [{ 'ip-address': '127.0.0.2' }] }] },
      'hooks-libraries': hooks,
    },
  }, null, 2)}\n`);
  return file;
}

const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);

describe('loadtest --config', () => {
  it('reads the servers and the key D2 would use for each', () => {
    const c = configurationFromFile(writeConfig('servers.json'));
    expect(c.servers.map((s) => [s.current_server, s.tsig_key?.name ?? null])).toEqual([
      [{ 'ip-address': '127.0.0.1', port: 5301, 'key-name': 'a.key' }, 'a.key'],
      [{ 'ip-address': '::1', port: 5302, 'key-name': 'b.key' }, 'b.key'],
      [{ 'ip-address': '127.0.0.2', port: 53 }, null],
    ]);
    expect(c.keys).toEqual([A_KEY, { ...B_KEY, algorithm: 'HMAC-SHA512' }]);
    expect(() => configurationFromFile(join(dir, 'missing.json'))).toThrow(/--config .*missing\.json: ENOENT/);
    writeFileSync(join(dir, 'bad.json'), '{"DhcpDdns": {"tsig-keys": [{"name": "k"}]}}');
    expect(() => configurationFromFile(join(dir, 'bad.json'))).toThrow(/--config .*bad\.json: /);
  });

  for (const isolation of ['thread', 'process'] as const) {
    it(`d2_srv_configured first, then select_key on the file's servers with their keys (isolation "${isolation}")`, async () => {
      const configuration = configurationFromFile(writeConfig(`run-${isolation}.json`));
      const r = await runLoadtest({
        libraries: [{ library: LIBRARY, parameters: { choose: { '127.0.0.1:5301': 'b.key', '127.0.0.2:53': 'a.key' } }, sandbox: { isolation, 'callout-timeout-ms': 10_000 } }],
        hook: 'select_key',
        concurrency: 4,
        count: 300,
        seed: 9,
        configuration,
      });
      // The library throws for anything the daemon would not do: all ok proves the order and the arguments.
      expect(r.outcomes.ok, JSON.stringify(r.libraryStatistics[0]!.failures)).toBe(300);
      expect(sum(r.outcomes)).toBe(300);
      expect(r.libraryStatistics[0]!.calls).toBe(301); // d2_srv_configured, then 300 select_key
      // Two of the three servers get another key (by name, restored in either mode), ::1 keeps its own.
      expect(r.keyChoices!.kept + r.keyChoices!.changed).toBe(300);
      expect(r.keyChoices!.kept).toBeGreaterThan(50);
      expect(r.keyChoices!.changed).toBeGreaterThan(150);
      expect(r.keyChoices!.skipped).toBe(0);
      expect(r.configuration.source).toBe(configuration.source);
      expect(formatReport(r)).toContain(`configuration: ${configuration.source}; d2_srv_configured first`);
    });
  }

  it('a library whose mapping matches none of the servers shows every key kept, not just "ok"', async () => {
    const r = await runLoadtest({
      libraries: [{ library: LIBRARY, parameters: { choose: { '192.0.2.99:53': 'a.key' } } }],
      hook: 'select_key',
      concurrency: 4,
      count: 100,
      seed: 2,
      configuration: configurationFromFile(writeConfig('nomatch.json')),
    });
    expect(r.outcomes.ok).toBe(100);
    expect(r.keyChoices).toEqual({ kept: 100, changed: 0, skipped: 0 });
    expect(formatReport(r)).toMatch(/^ {2}select_key key changed +0 +0\.00% of ok$/m);
  });

  it('from the command line: the file\'s own hooks-libraries, and a configuration the library refuses', () => {
    const file = writeConfig('cli.json', [{ library: LIBRARY, parameters: { choose: { '::1:5302': null } } }]);
    const run = spawnSync(process.execPath, [CLI, 'loadtest', '--config', file, '--count', '200', '--concurrency', '4', '--json'], { encoding: 'utf8', timeout: 60_000 });
    expect(run.status, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as LoadtestReport;
    expect(report.libraries).toEqual([LIBRARY]);
    expect(report.outcomes.ok).toBe(200);
    expect(report.keyChoices!.changed).toBeGreaterThan(30); // ::1 made unsigned
    expect(report.configuration).toEqual({
      source: file,
      servers: [
        { domain: 'corp.example.', direction: 'forward', 'ip-address': '127.0.0.1', port: 5301, 'key-name': 'a.key' },
        { domain: 'corp.example.', direction: 'forward', 'ip-address': '::1', port: 5302, 'key-name': 'b.key' },
        { domain: '0.0.127.in-addr.arpa.', direction: 'reverse', 'ip-address': '127.0.0.2', port: 53, 'key-name': null },
      ],
      keys: [{ name: 'a.key', algorithm: 'HMAC-SHA256' }, { name: 'b.key', algorithm: 'HMAC-SHA512', 'digest-bits': 256 }],
    });
    expect(run.stdout).not.toContain(A_KEY.secret);

    const refused = writeConfig('refused.json', [{ library: LIBRARY, parameters: { refuse: true } }]);
    const bad = spawnSync(process.execPath, [CLI, 'loadtest', '--config', refused, '--count', '10'], { encoding: 'utf8', timeout: 60_000 });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain(`loadtest: d2_srv_configured refused the configuration (${refused}): loadtest-configured: refused on purpose`);
  });
});

describe('loadtest without --config', () => {
  it('prints the generated servers and keys, and docs/isolation.md lists the same', async () => {
    const r = await runLoadtest({ libraries: [{ library: LIBRARY, parameters: {} }], hook: 'select_key', concurrency: 2, count: 40, seed: 1 });
    expect(r.outcomes.ok).toBe(40);
    const table = formatReport(r);
    expect(table).toContain('configuration: generated (give --config FILE to run with yours)');
    const docs = readFileSync('docs/isolation.md', 'utf8');
    const generated = generatedConfiguration();
    expect(generated.servers).toHaveLength(8);
    for (const s of generated.servers) {
      const address = s.current_server['ip-address'].includes(':') ? `[${s.current_server['ip-address']}]` : s.current_server['ip-address'];
      const line = `server ${address}:${s.current_server.port}  ${s.direction} ${s.domain}  key ${s.current_server['key-name'] ?? 'none'}`;
      expect(table).toContain(line);
      expect(docs).toContain(line);
    }
    for (const k of generated.keys) {
      expect(table).toContain(`${k.name} ${k.algorithm}`);
      expect(docs).toContain(`${k.name} ${k.algorithm}`);
    }
  });
});
