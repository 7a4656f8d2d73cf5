import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { D2_DEFAULTS, parseD2Config, type D2Config } from '../src/config/d2-config.js';
import { effectiveKeyName } from '../src/config/ddns-domains.js';
import { tsigSecretBytes } from '../src/config/tsig-keys.js';

const SECRET = 'LSWXnfkKZjdPJI5QxlpnfQ==';
const KEY = { name: 'k', algorithm: 'HMAC-MD5', secret: SECRET };

function ok(d2: Record<string, unknown>): D2Config {
  const r = parseD2Config(JSON.stringify({ DhcpDdns: d2 }));
  if (!r.ok) throw new Error(r.error);
  return r.config;
}

function err(d2: Record<string, unknown>): string {
  const r = parseD2Config(JSON.stringify({ DhcpDdns: d2 }));
  if (r.ok) throw new Error('expected rejection');
  return r.error;
}

const fwd = (domains: unknown[], keys: unknown[] = [KEY]) => ({ 'tsig-keys': keys, 'forward-ddns': { 'ddns-domains': domains } });
const srv = (extra: Record<string, unknown> = {}) => ({ 'ip-address': '127.0.0.1', ...extra });

describe('defaults (Kea-2.2.0 D2SimpleParser)', () => {
  it('fills every global default', () => {
    const c = ok({ comment: 'x' });
    expect(c['ip-address']).toBe('127.0.0.1');
    expect(c.port).toBe(53001);
    expect(c['dns-server-timeout']).toBe(100);
    expect(c['ncr-protocol']).toBe('UDP');
    expect(c['ncr-format']).toBe('JSON');
    expect(c['tsig-keys']).toEqual([]);
    expect(c['forward-ddns']).toEqual({ 'ddns-domains': [] });
    expect(c['reverse-ddns']).toEqual({ 'ddns-domains': [] });
    expect(c['hooks-libraries']).toEqual([]);
    expect(c['control-socket']).toBeUndefined();
    expect(D2_DEFAULTS['dns-server-timeout']).toBe(100);
  });

  it('fills key, domain and server defaults', () => {
    const c = ok(fwd([{ name: 'example.com.', 'dns-servers': [srv()] }]));
    expect(c['tsig-keys'][0]!['digest-bits']).toBe(0);
    const dom = c['forward-ddns']['ddns-domains'][0]!;
    expect(dom['key-name']).toBe('');
    expect(dom['dns-servers'][0]).toEqual({ hostname: '', 'ip-address': '127.0.0.1', port: 53, 'key-name': '' });
  });

  it('fills logger defaults and normalizes severity and algorithm case', () => {
    const c = ok({ loggers: [{ name: 'kea-dhcp-ddns', severity: 'debug', output_options: [{ output: 'stdout' }] }], 'tsig-keys': [{ ...KEY, algorithm: 'hmac-sha256' }] });
    expect(c.loggers![0]).toEqual({ name: 'kea-dhcp-ddns', severity: 'DEBUG', debuglevel: 0, output_options: [{ output: 'stdout', flush: true, maxsize: 10240000, maxver: 1 }] });
    expect(c['tsig-keys'][0]!.algorithm).toBe('HMAC-SHA256');
  });

  it('applies sandbox defaults to hooks libraries', () => {
    const c = ok({ 'hooks-libraries': [{ library: '/x.mjs' }] });
    expect(c['hooks-libraries'][0]!.sandbox['callout-timeout-ms']).toBe(500);
    expect(c['hooks-libraries'][0]!.parameters).toEqual({});
  });

  it('accepts case-insensitive udp/json and normalizes them', () => {
    const c = ok({ 'ncr-protocol': 'udp', 'ncr-format': 'Json' });
    expect([c['ncr-protocol'], c['ncr-format']]).toEqual(['UDP', 'JSON']);
  });
});

describe('validation rules, each with Kea\'s wording', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['unknown global key', { foo: 1 }, /got unexpected keyword "foo" in DhcpDdns map\./],
    ['ip-address 0.0.0.0', { 'ip-address': '0.0.0.0' }, /IP address cannot be "0\.0\.0\.0"/],
    ['ip-address ::', { 'ip-address': '0::0' }, /IP address cannot be "0::0"/],
    ['ip-address not an address', { 'ip-address': 'localhost' }, /Failed to convert 'localhost' to address/],
    ['port 0', { port: 0 }, /port must be greater than zero but less than 65536/],
    ['port 65536', { port: 65536 }, /port must be greater than zero/],
    ['port as string', { port: '53001' }, /unexpected constant string, expecting integer/],
    ['timeout 0', { 'dns-server-timeout': 0 }, /dns-server-timeout must be greater than zero/],
    ['timeout > uint32', { 'dns-server-timeout': 2 ** 32 }, /out of range value \(4294967296\)/],
    ['ncr-protocol TCP', { 'ncr-protocol': 'TCP' }, /ncr-protocol : TCP is not yet supported/],
    ['ncr-protocol other', { 'ncr-protocol': 'SCTP' }, /invalid NameChangeRequest protocol \(SCTP\)/],
    ['ncr-format other', { 'ncr-format': 'XML' }, /invalid NameChangeRequest format \(XML\)/],
    ['control-socket type', { 'control-socket': { 'socket-type': 'http', 'socket-name': '/s' } }, /Invalid 'socket-type' parameter value http/],
    ['control-socket name missing', { 'control-socket': { 'socket-type': 'unix' } }, /Mandatory 'socket-name' parameter missing/],
    ['control-socket unknown key', { 'control-socket': { 'socket-type': 'unix', 'socket-name': '/s', port: 1 } }, /unexpected keyword "port" in control-socket map/],
    ['user-context not a map', { 'user-context': 'x' }, /unexpected constant string, expecting \{/],
    ['comment not a string', { comment: 3 }, /unexpected integer, expecting constant string/],
    ['key name blank', { 'tsig-keys': [{ ...KEY, name: '' }] }, /TSIG key name cannot be blank/],
    ['key name invalid', { 'tsig-keys': [{ ...KEY, name: 'a..b' }] }, /Cannot make D2TsigKey: duplicate period in a\.\.b/],
    ['key algorithm unknown', { 'tsig-keys': [{ ...KEY, algorithm: 'HMAC-SHA3' }] }, /tsig-key : Unknown TSIG Key algorithm: HMAC-SHA3/],
    ['key secret missing', { 'tsig-keys': [{ name: 'k', algorithm: 'HMAC-MD5' }] }, /missing parameter 'secret'/],
    ['key secret not base64', { 'tsig-keys': [{ ...KEY, secret: 'abc!' }] }, /not in base64 char set/],
    ['key secret incomplete', { 'tsig-keys': [{ ...KEY, secret: 'abc' }] }, /Incomplete input for base64: abc/],
    ['key secret bad padding', { 'tsig-keys': [{ ...KEY, secret: 'AB==' }] }, /Non 0 bits included in base64 padding/],
    ['key secret-file unreadable (Kea 2.6+ key)', { 'tsig-keys': [{ ...KEY, 'secret-file': '/nonexistent/k' }] }, /tsig-key : cannot read secret-file '\/nonexistent\/k': ENOENT/],
    ['digest-bits not a multiple of 8', { 'tsig-keys': [{ ...KEY, 'digest-bits': 84 }] }, /must either be zero or a positive, multiple of eight/],
    ['digest-bits negative', { 'tsig-keys': [{ ...KEY, 'digest-bits': -8 }] }, /must either be zero or a positive, multiple of eight/],
    ['digest-bits < 80', { 'tsig-keys': [{ ...KEY, 'digest-bits': 72 }] }, /digest-bits too small/],
    ['digest-bits < 112 for SHA224', { 'tsig-keys': [{ ...KEY, algorithm: 'HMAC-SHA224', 'digest-bits': 104 }] }, /digest-bits too small/],
    ['digest-bits < 128 for SHA256', { 'tsig-keys': [{ ...KEY, algorithm: 'HMAC-SHA256', 'digest-bits': 120 }] }, /digest-bits too small/],
    ['digest-bits < 192 for SHA384', { 'tsig-keys': [{ ...KEY, algorithm: 'HMAC-SHA384', 'digest-bits': 184 }] }, /digest-bits too small/],
    ['digest-bits < 256 for SHA512', { 'tsig-keys': [{ ...KEY, algorithm: 'HMAC-SHA512', 'digest-bits': 248 }] }, /digest-bits too small/],
    ['digest-bits > output (d2box)', { 'tsig-keys': [{ ...KEY, 'digest-bits': 136 }] }, /digest-bits too large/],
    ['duplicate key names', { 'tsig-keys': [KEY, KEY] }, /Duplicate TSIG key name specified : k/],
    ['domain name blank', fwd([{ name: '', 'dns-servers': [srv()] }]), /Ddns domain name cannot be blank/],
    ['domain without dns-servers (Kea aborts)', fwd([{ name: 'a.' }]), /DdnsDomain : missing dns-servers list/],
    ['domain with empty dns-servers', fwd([{ name: 'a.', 'dns-servers': [] }]), /DNS server list cannot be empty/],
    ['domain key undefined', fwd([{ name: 'a.', 'key-name': 'nokey', 'dns-servers': [srv()] }]), /DdnsDomain : specifies an undefined key: nokey/],
    ['domain key differs in case', fwd([{ name: 'a.', 'key-name': 'K', 'dns-servers': [srv()] }]), /undefined key: K/],
    ['server key undefined', fwd([{ name: 'a.', 'dns-servers': [srv({ 'key-name': 'nokey' })] }]), /Dns Server : specifies an undefined key: nokey/],
    ['duplicate domains', fwd([{ name: 'a.', 'dns-servers': [srv()] }, { name: 'a.', 'dns-servers': [srv()] }]), /Duplicate domain specified:a\./],
    ['duplicate domains by case/dot (d2box)', fwd([{ name: 'A.b.', 'dns-servers': [srv()] }, { name: 'a.b', 'dns-servers': [srv()] }]), /Duplicate domain specified:a\.b \(same zone as A\.b\.\)/],
    ['unknown domain key', fwd([{ name: 'a.', x: 1, 'dns-servers': [srv()] }]), /unexpected keyword "x" in ddns-domains map/],
    ['unknown manager key', { 'reverse-ddns': { comment: 'x' } }, /unexpected keyword "comment" in reverse-ddns map/],
    ['server hostname', fwd([{ name: 'a.', 'dns-servers': [{ hostname: 'ns1.example.' }] }]), /hostname is not yet supported/],
    ['server without ip-address', fwd([{ name: 'a.', 'dns-servers': [{ port: 53 }] }]), /missing parameter 'ip-address'/],
    ['server empty ip-address', fwd([{ name: 'a.', 'dns-servers': [srv({ 'ip-address': '' })] }]), /must specify one or the other of hostname or IP address/],
    ['server bad ip-address', fwd([{ name: 'a.', 'dns-servers': [srv({ 'ip-address': '300.1.1.1' })] }]), /Dns Server : invalid IP address : 300\.1\.1\.1/],
    ['server port 0', fwd([{ name: 'a.', 'dns-servers': [srv({ port: 0 })] }]), /port must be greater than zero/],
    ['unknown server key', fwd([{ name: 'a.', 'dns-servers': [srv({ weight: 1 })] }]), /unexpected keyword "weight" in dns-servers map/],
    ['loggers empty', { loggers: [] }, /loggers must not be an empty list/],
    ['logger without name', { loggers: [{ severity: 'INFO' }] }, /mandatory 'name' element/],
    ['logger without severity', { loggers: [{ name: 'x' }] }, /mandatory 'severity' element/],
    ['debuglevel 100', { loggers: [{ name: 'x', severity: 'DEBUG', debuglevel: 100 }] }, /Unsupported debuglevel value '100', expected 0-99/],
    ['output-options and output_options in one logger', { loggers: [{ name: 'x', severity: 'INFO', 'output-options': [{ output: 'stdout' }], output_options: [{ output: 'stdout' }] }] }, /unexpected keyword "output-options" in loggers map/],
    ['output_options entry without output', { loggers: [{ name: 'x', severity: 'INFO', output_options: [{ flush: false }] }] }, /output_options entry does not have a mandatory 'output' element/],
    ['output_options unknown key', { loggers: [{ name: 'x', severity: 'INFO', output_options: [{ output: 'stdout', comment: 'c' }] }] }, /unexpected keyword "comment" in output-options map/],
    ['hooks library without library', { 'hooks-libraries': [{ parameters: {} }] }, /missing parameter 'library'/],
    ['hooks library comment (Kea refuses)', { 'hooks-libraries': [{ library: '/x.so', comment: 'c' }] }, /unexpected keyword "comment" in hooks-libraries map/],
    ['hooks library parameters not a map', { 'hooks-libraries': [{ library: '/x.so', parameters: [] }] }, /unexpected \[, expecting \{/],
    ['sandbox unknown key', { 'hooks-libraries': [{ library: '/x.so', sandbox: { bogus: 1 } }] }, /bogus/],
  ];
  it.each(cases)('%s', (_name, d2, re) => {
    expect(err(d2)).toMatch(re);
  });

  it('an empty DhcpDdns map is a syntax error in Kea, and here', () => {
    expect(err({})).toMatch(/DhcpDdns map must not be empty/);
  });

  it('only DhcpDdns at top level', () => {
    const r = parseD2Config('{"DhcpDdns": {"port": 1}, "Dhcp4": {}}', { file: 't' });
    expect(r.ok ? '' : r.error).toBe('t:1:27: got unexpected keyword "Dhcp4" in toplevel map. (at Dhcp4)');
    const r2 = parseD2Config('{"Logging": {}}');
    expect(r2.ok).toBe(false);
  });

  it('integers written as floating point are refused where Kea wants integers', () => {
    expect(err({ port: 53.5 })).toMatch(/port/);
    const r = parseD2Config('{"DhcpDdns": {"port": 53001.0}}');
    expect(r.ok ? '' : r.error).toMatch(/unexpected floating point, expecting integer \(at DhcpDdns\/port\)/);
    expect(parseD2Config('{"DhcpDdns": {"user-context": {"x": 1.0}}}').ok).toBe(true);
  });

  it('accepts what Kea accepts at the edges', () => {
    expect(ok({ port: 65535, 'dns-server-timeout': 4294967295, 'ip-address': '::1' }).port).toBe(65535);
    expect(ok({ 'tsig-keys': [{ ...KEY, 'digest-bits': 80 }, { ...KEY, name: 'K' }, { ...KEY, name: 'x', secret: ' LSWX nfkKZjdPJI5QxlpnfQ== ' }] })['tsig-keys']).toHaveLength(3);
    expect(ok({ 'tsig-keys': [{ ...KEY, algorithm: 'HMAC-SHA512', 'digest-bits': 256 }] })['tsig-keys'][0]!['digest-bits']).toBe(256);
    expect(ok(fwd([{ name: '*', 'dns-servers': [srv({ 'ip-address': 'fe80::1%lo', hostname: '' })] }]))['forward-ddns']['ddns-domains'][0]!.name).toBe('*');
  });
});

describe('errors name the file position and the JSON path', () => {
  const text = [
    '// d2 config',
    '{ "DhcpDdns": {',
    '  # keys',
    '  "tsig-keys": [ { "name": "k", "algorithm": "HMAC-MD5", "secret": "' + SECRET + '" } ],',
    '  "forward-ddns": { "ddns-domains": [',
    '    { "name": "example.com.",',
    '      "dns-servers": [ { "ip-address": "127.0.0.1", "key-name": "k2" } ] }',
    '  ] }',
    '} }',
  ].join('\n');

  it('a cross-field error points at the offending value', () => {
    const r = parseD2Config(text, { file: '/etc/kea/kea-dhcp-ddns.conf' });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error).toBe(
      '/etc/kea/kea-dhcp-ddns.conf:7:65: Dns Server : specifies an undefined key: k2 (at DhcpDdns/forward-ddns/ddns-domains/0/dns-servers/0/key-name)',
    );
    expect(r.detail.path).toEqual(['DhcpDdns', 'forward-ddns', 'ddns-domains', 0, 'dns-servers', 0, 'key-name']);
    expect(r.detail.pos).toEqual({ file: '/etc/kea/kea-dhcp-ddns.conf', line: 7, col: 65 });
  });

  it('an unknown keyword points at the key, a missing one at its map', () => {
    const bad = parseD2Config('{"DhcpDdns": {\n  "port": 1,\n  "prot": 2 }}', { file: 'c' });
    expect(bad.ok ? '' : bad.error).toBe('c:3:3: got unexpected keyword "prot" in DhcpDdns map. (at DhcpDdns/prot)');
    const missing = parseD2Config('{"DhcpDdns": {"tsig-keys": [\n   {"name": "k", "algorithm": "HMAC-MD5"}]}}', { file: 'c' });
    expect(missing.ok ? '' : missing.error).toBe("c:2:4: missing parameter 'secret' (at DhcpDdns/tsig-keys/0/secret)");
  });

  it('a JSON syntax error gives line and column', () => {
    const r = parseD2Config('{"DhcpDdns": {\n  "port": 53001\n  "ip-address": "127.0.0.1"}}', { file: 'c' });
    expect(r.ok ? '' : r.error).toBe('c:3:3: syntax error, unexpected constant string, expecting "," or }');
  });

  it('duplicate keys name Kea\'s map', () => {
    const r = parseD2Config('{"DhcpDdns": {"port": 1, "port": 2}}', { file: 'c' });
    expect(r.ok ? '' : r.error).toBe('c:1:26: duplicate port entries in DhcpDdns map (previous at c:1:23)');
  });
});

describe('Kea 2.5+ and 3.x keys', () => {
  it('secret-file is read when parsed, and the config-get form names the file, never the secret; output-options is output_options', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'd2box-secret-')), 'k.secret');
    writeFileSync(file, `${SECRET}\n`);
    const r = parseD2Config(JSON.stringify({ DhcpDdns: { 'tsig-keys': [{ name: 'k', algorithm: 'HMAC-MD5', 'secret-file': file }], loggers: [{ name: 'x', severity: 'INFO', 'output-options': [{ output: 'stdout' }] }] } }));
    if (!r.ok) throw new Error(r.error);
    expect(tsigSecretBytes(r.config['tsig-keys'][0]!)).toEqual(Buffer.from(SECRET, 'base64'));
    const key = (r.json.DhcpDdns as { 'tsig-keys': Record<string, unknown>[] })['tsig-keys'][0]!;
    expect(key).toEqual({ name: 'k', algorithm: 'HMAC-MD5', 'digest-bits': 0, 'secret-file': file });
    expect(r.config.loggers![0]!.output_options).toEqual([{ output: 'stdout', flush: true, maxsize: 10240000, maxver: 1 }]);
    // A file that holds no secret is refused without its content in the error: config-set could name any file.
    writeFileSync(file, 'root:x:0:0:root\n');
    const leak = parseD2Config(JSON.stringify({ DhcpDdns: { 'tsig-keys': [{ name: 'k', algorithm: 'HMAC-MD5', 'secret-file': file }] } }));
    expect(leak.ok ? '' : leak.error).toMatch(/Cannot make D2TsigKey: the content of '.*k\.secret' is not a base64 secret/);
    expect(leak.ok ? '' : leak.error).not.toContain('root');
    rmSync(dirname(file), { recursive: true, force: true });
  });
});

describe('comments, user-context and the config-get form', () => {
  it('folds comment into user-context as Kea does; both orders as Kea', () => {
    const c = ok({ comment: 'top', 'user-context': { a: 1 }, 'tsig-keys': [{ ...KEY, comment: 'key' }] });
    expect(c['user-context']).toEqual({ a: 1, comment: 'top' });
    expect('comment' in c).toBe(false);
    expect(c['tsig-keys'][0]!['user-context']).toEqual({ comment: 'key' });
    // comment first, then a user-context with a comment: Kea keeps `comment`.
    const first = parseD2Config('{"DhcpDdns": {"comment": "a", "user-context": {"comment": "b"}}}');
    expect(first.ok && first.config['user-context']).toEqual({ comment: 'a' });
    const second = parseD2Config('{"DhcpDdns": {"user-context": {"comment": "b"}, "comment": "a"}}', { file: 'c' });
    expect(second.ok ? '' : second.error).toMatch(/^c:1:49: duplicate user-context\/comment entries \(previous at c:1:31\)/);
  });

  it('returns the config-get JSON, a copy with defaults applied', () => {
    const r = parseD2Config('# c\n{"DhcpDdns": {"port": 5301}}');
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const d2 = r.json.DhcpDdns as Record<string, unknown>;
    expect(d2.port).toBe(5301);
    expect(d2['dns-server-timeout']).toBe(100);
    d2.port = 1;
    expect(r.config.port).toBe(5301);
    expect(JSON.parse(JSON.stringify(r.json))).toEqual(r.json);
    // The JSON form is itself a valid configuration giving the same result.
    const again = parseD2Config(JSON.stringify({ DhcpDdns: r.config }));
    expect(again.ok && again.config).toEqual(r.config);
  });

  it('reports Kea\'s warnings: extra commas and unknown severities (INFO used)', () => {
    const r = parseD2Config('{"DhcpDdns": {"port": 5301,\n "loggers": [{"name": "x", "severity": "LOUD"}],}}', { file: 'w' });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.config.loggers![0]!.severity).toBe('INFO');
    expect(r.warnings).toEqual([
      'w:2:48: Extraneous comma. A piece of configuration may have been omitted.',
      'w:2:40: unrecognized log severity: LOUD (INFO is used)',
    ]);
  });

  it('helpers: effective key name, secret bytes', () => {
    const c = ok(fwd([{ name: 'a.', 'key-name': 'k', 'dns-servers': [srv(), srv({ 'key-name': 'k2' })] }], [KEY, { ...KEY, name: 'k2' }]));
    const dom = c['forward-ddns']['ddns-domains'][0]!;
    expect(effectiveKeyName(dom, dom['dns-servers'][0]!)).toBe('k');
    expect(effectiveKeyName(dom, dom['dns-servers'][1]!)).toBe('k2');
    expect(tsigSecretBytes(c['tsig-keys'][0]!)).toEqual(Buffer.from(SECRET, 'base64'));
  });
});
