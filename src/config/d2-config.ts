/**
 * The whole `DhcpDdns` configuration of Kea 2.2's kea-dhcp-ddns, as zod schemas,
 * and parseD2Config(): Kea-JSON text → a typed, defaults-applied D2Config, or an
 * error naming the file position, the JSON path and what is wrong in Kea's words.
 *
 * Sources: Kea-2.2.0 src/bin/d2/d2_parser.yy (accepted keys, syntax-level checks),
 * src/lib/d2srv/d2_simple_parser.cc (defaults), d2_config.cc (semantic checks),
 * src/lib/process/log_parser.cc (loggers), src/lib/hooks/hooks_parser.cc.
 */
import { resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { HookLibraryConfigSchema } from '../hooks/library-config.js';
import { contextShape, foldComment, isIpAddress, isUnspecifiedAddress } from './common.js';
import { ControlSocketsSchema } from './control-sockets.js';
import { DdnsDomainListMgrSchema, type DdnsDomainConfig } from './ddns-domains.js';
import { normalizeDomainName } from './domains.js';
import { formatPos, KeaJsonError, parseKeaJson, pathKey, type JsonPath, type KeaJsonDocument, type SourcePos } from './kea-json.js';
import { LoggerSchema, SEVERITIES } from './loggers.js';
import { intakeShape } from './intake-config.js';
import { ncrRetryShape } from './ncr-retry-config.js';
import { TsigKeysSchema } from './tsig-keys.js';

export const D2_DEFAULTS = {
  'ip-address': '127.0.0.1',
  port: 53001,
  /** Kea-2.2.0's D2_GLOBAL_DEFAULTS say 100 ms (later versions: 500). */
  'dns-server-timeout': 100,
  'ncr-protocol': 'UDP',
  'ncr-format': 'JSON',
} as const;

export const ControlSocketSchema = z
  .object({
    // Kea 2.2's -t accepts any socket-type and a missing socket-name, then fails when the
    // daemon opens the channel; d2box refuses them when the configuration is parsed.
    'socket-type': z.string({ error: (i) => (i.input === undefined ? "Mandatory 'socket-type' parameter missing" : undefined) })
      .refine((t) => t === 'unix', { error: (i) => `Invalid 'socket-type' parameter value ${String(i.input)} (only "unix" is supported)` }),
    'socket-name': z.string({ error: (i) => (i.input === undefined ? "Mandatory 'socket-name' parameter missing" : undefined) })
      .min(1, "'socket-name' must not be empty"),
    ...contextShape,
  })
  .strict()
  .transform((c, ctx) => foldComment(c, ctx));
export type ControlSocketConfig = z.output<typeof ControlSocketSchema>;

/**
 * A hooks-libraries entry: Kea's `library` and `parameters` plus d2box's `sandbox`.
 * Kea's grammar takes nothing else there (not even user-context or comment).
 */
const HookEntrySchema = z
  .record(z.string(), z.unknown())
  .superRefine((e, ctx) => {
    for (const k of Object.keys(e)) {
      if (k !== 'library' && k !== 'parameters' && k !== 'sandbox') {
        ctx.addIssue({ code: 'unrecognized_keys', keys: [k], input: e, message: `got unexpected keyword "${k}" in hooks-libraries map.` });
      }
    }
  })
  .pipe(HookLibraryConfigSchema);

const protocolSchema = z.string().transform((p, ctx) => {
  const u = p.toUpperCase();
  if (u === 'UDP') return 'UDP' as const;
  ctx.addIssue({
    code: 'custom',
    message: u === 'TCP' ? 'ncr-protocol : TCP is not yet supported' : `invalid NameChangeRequest protocol (${p}) specified for parameter 'ncr-protocol', expecting UDP`,
  });
  return z.NEVER;
});

const formatSchema = z.string().transform((f, ctx) => {
  if (f.toUpperCase() === 'JSON') return 'JSON' as const;
  ctx.addIssue({ code: 'custom', message: `invalid NameChangeRequest format (${f}) specified for parameter 'ncr-format', expecting JSON` });
  return z.NEVER;
});

export const DhcpDdnsSchema = z
  .object({
    'ip-address': z
      .string()
      .refine(isIpAddress, { error: (i) => `Failed to convert '${String(i.input)}' to address: Failed to convert string to address '${String(i.input)}': Invalid argument` })
      .refine((a) => !isUnspecifiedAddress(a), { error: (i) => `IP address cannot be "${String(i.input)}"` })
      .default(D2_DEFAULTS['ip-address']),
    port: z.int().refine((p) => p > 0 && p < 65536, 'port must be greater than zero but less than 65536').default(D2_DEFAULTS.port),
    'dns-server-timeout': z
      .int()
      .refine((t) => t > 0, 'dns-server-timeout must be greater than zero')
      .refine((t) => t <= 0xffffffff, { error: (i) => `out of range value (${String(i.input)}) specified for parameter 'dns-server-timeout'` })
      .default(D2_DEFAULTS['dns-server-timeout']),
    'ncr-protocol': protocolSchema.default(D2_DEFAULTS['ncr-protocol']),
    'ncr-format': formatSchema.default(D2_DEFAULTS['ncr-format']),
    'forward-ddns': DdnsDomainListMgrSchema.default({ 'ddns-domains': [] }),
    'reverse-ddns': DdnsDomainListMgrSchema.default({ 'ddns-domains': [] }),
    'tsig-keys': TsigKeysSchema.default([]),
    'control-socket': ControlSocketSchema.optional(),
    'control-sockets': ControlSocketsSchema.optional(),
    'hooks-libraries': z.array(HookEntrySchema).default([]),
    loggers: z.array(LoggerSchema).min(1, 'loggers must not be an empty list').optional(),
    ...ncrRetryShape,
    ...intakeShape,
    ...contextShape,
  })
  .strict()
  .transform((d, ctx) => {
    // Kea 3.x took `control-socket` into `control-sockets`; d2box takes either, not both.
    if (d['control-socket'] && d['control-sockets']) {
      ctx.addIssue({ code: 'custom', message: "'control-socket' and 'control-sockets' are mutually exclusive: list every socket in 'control-sockets'", path: ['control-sockets'] });
    }
    const endpoints = new Map<string, number>();
    (d['control-sockets'] ?? []).forEach((s, i) => {
      const at = s['socket-type'] === 'unix' ? `unix socket ${s['socket-name']}` : `${s['socket-address']} port ${s['socket-port']}`;
      const prev = endpoints.get(at);
      if (prev !== undefined) ctx.addIssue({ code: 'custom', message: `control-sockets entries ${prev} and ${i} both use ${at}`, path: ['control-sockets', i] });
      endpoints.set(at, i);
    });
    // Cross-field rules (d2_config.cc): key references, unique domain names.
    const keys = new Set(d['tsig-keys'].map((k) => k.name));
    for (const mgr of ['forward-ddns', 'reverse-ddns'] as const) {
      const seen = new Map<string, number>();
      d[mgr]['ddns-domains'].forEach((dom: DdnsDomainConfig, i) => {
        const base = [mgr, 'ddns-domains', i];
        dom['dns-servers'].forEach((srv, j) => {
          const k = srv['key-name'];
          if (k !== '' && !keys.has(k)) {
            ctx.addIssue({ code: 'custom', message: `Dns Server : specifies an undefined key: ${k}`, path: [...base, 'dns-servers', j, 'key-name'] });
          }
        });
        if (dom['key-name'] !== '' && !keys.has(dom['key-name'])) {
          ctx.addIssue({ code: 'custom', message: `DdnsDomain : specifies an undefined key: ${dom['key-name']}`, path: [...base, 'key-name'] });
        }
        // Kea compares names exactly; d2box also treats case and one trailing dot as
        // insignificant, since the match does (domains.ts).
        const norm = normalizeDomainName(dom.name);
        const prev = seen.get(norm);
        if (prev !== undefined) {
          ctx.addIssue({
            code: 'custom',
            message: `Duplicate domain specified:${dom.name}` + (d[mgr]['ddns-domains'][prev]!.name !== dom.name ? ` (same zone as ${d[mgr]['ddns-domains'][prev]!.name})` : ''),
            path: [...base, 'name'],
          });
        }
        seen.set(norm, i);
      });
    }
    return foldComment(d, ctx);
  });

/** The parsed, defaults-applied `DhcpDdns` object. */
export type D2Config = z.output<typeof DhcpDdnsSchema>;
export type DhcpDdnsInput = z.input<typeof DhcpDdnsSchema>;

/** A rejected configuration: what is wrong, where in the JSON, where in the file. */
export interface ConfigError {
  /** Kea-style text of the problem, e.g. `Dns Server : specifies an undefined key: k2`. */
  reason: string;
  /** JSON path, e.g. ["DhcpDdns", "forward-ddns", "ddns-domains", 0, "key-name"]. */
  path: (string | number)[];
  pos?: SourcePos;
  /** One line for an operator: `file:line:col: reason (at DhcpDdns/…)`. */
  message: string;
}

export type ParseD2ConfigResult =
  | { ok: true; config: D2Config; json: { DhcpDdns: unknown }; warnings: string[] }
  | { ok: false; error: string; detail: ConfigError; errors: ConfigError[] };

export interface ParseD2ConfigOptions {
  /** File name for positions (and for resolving relative includes when baseDir is unset). */
  file?: string;
  /**
   * Directory relative `<?include "..."?>` paths are resolved against. Kea 2.2
   * opens them relative to its working directory, which is also the default here.
   */
  baseDir?: string;
  /** Disable `<?include?>` (for configurations that arrive over the control channel). */
  allowInclude?: boolean;
}

const MAP_NAMES: [RegExp, string][] = [
  [/^$/, 'toplevel'],
  [/^\/DhcpDdns$/, 'DhcpDdns'],
  [/^\/DhcpDdns\/tsig-keys\/\d+$/, 'tsig-keys'],
  [/^\/DhcpDdns\/(forward|reverse)-ddns$/, '$1-ddns'],
  [/^\/DhcpDdns\/(forward|reverse)-ddns\/ddns-domains\/\d+$/, 'ddns-domains'],
  [/^\/DhcpDdns\/(forward|reverse)-ddns\/ddns-domains\/\d+\/dns-servers\/\d+$/, 'dns-servers'],
  [/^\/DhcpDdns\/control-socket$/, 'control-socket'],
  [/^\/DhcpDdns\/control-sockets\/\d+$/, 'control-sockets'],
  [/^\/DhcpDdns\/control-sockets\/\d+\/authentication$/, 'authentication'],
  [/^\/DhcpDdns\/control-sockets\/\d+\/authentication\/clients\/\d+$/, 'clients'],
  [/^\/DhcpDdns\/control-sockets\/\d+\/http-headers\/\d+$/, 'http-headers'],
  [/^\/DhcpDdns\/hooks-libraries\/\d+$/, 'hooks-libraries'],
  [/^\/DhcpDdns\/loggers\/\d+$/, 'loggers'],
  [/^\/DhcpDdns\/loggers\/\d+\/output[_-]options\/\d+$/, 'output-options'],
];

/** Kea's parser-context name for the map at `path` ("JSON" for free-form maps). */
export function keaMapName(path: JsonPath): string {
  const k = pathKey(path);
  for (const [re, name] of MAP_NAMES) {
    const m = re.exec(k);
    if (m) return name.replace('$1', m[1] ?? '');
  }
  return 'JSON';
}

/** Values Kea's grammar wants as integer tokens: `53.0` or `1e2` there is a syntax error. */
const INTEGER_PATHS = [
  /^\/DhcpDdns\/(port|dns-server-timeout)$/,
  /^\/DhcpDdns\/control-sockets\/\d+\/socket-port$/,
  /^\/DhcpDdns\/tsig-keys\/\d+\/digest-bits$/,
  /^\/DhcpDdns\/(forward|reverse)-ddns\/ddns-domains\/\d+\/dns-servers\/\d+\/port$/,
  /^\/DhcpDdns\/loggers\/\d+\/(debuglevel|output[_-]options\/\d+\/(maxsize|maxver))$/,
];

const KIND_NAMES: Record<string, string> = {
  map: '{', list: '[', string: 'constant string', integer: 'integer', float: 'floating point', boolean: 'boolean', null: 'null',
};
const EXPECTED_NAMES: Record<string, string> = {
  number: 'integer', int: 'integer', string: 'constant string', boolean: 'boolean', object: '{', record: '{', array: '[', map: '{',
};

function makeError(reason: string, path: (string | number)[], pos: SourcePos | undefined): ConfigError {
  const where = path.length ? ` (at ${path.join('/')})` : '';
  return { reason, path, ...(pos ? { pos } : {}), message: `${pos ? formatPos(pos) + ': ' : ''}${reason}${where}` };
}

function fail(errors: ConfigError[]): ParseD2ConfigResult {
  return { ok: false, error: errors[0]!.message, detail: errors[0]!, errors };
}

/** The nearest recorded position for `path` (a missing key → its map). */
function positionOf(doc: KeaJsonDocument, path: (string | number)[], preferKey = false): SourcePos | undefined {
  for (let n = path.length; n >= 0; n--) {
    const vi = doc.info.get(pathKey(path.slice(0, n)));
    if (vi) return preferKey && n === path.length && vi.keyPos ? vi.keyPos : vi.pos;
  }
  return undefined;
}

function issueToError(doc: KeaJsonDocument, iss: z.core.$ZodIssue): ConfigError {
  const path = ['DhcpDdns', ...(iss.path as (string | number)[])];
  if (iss.code === 'unrecognized_keys') {
    const key = iss.keys[0]!;
    const p = [...path, key];
    return makeError(`got unexpected keyword "${key}" in ${keaMapName(path)} map.`, p, positionOf(doc, p, true));
  }
  if (iss.code === 'invalid_type') {
    const vi = doc.info.get(pathKey(path));
    if (!vi) {
      // Missing: a custom "mandatory" message, or Kea's generic one.
      const reason = iss.message.startsWith('Invalid input') ? `missing parameter '${String(path[path.length - 1])}'` : iss.message;
      return makeError(reason, path, positionOf(doc, path));
    }
    const expected = EXPECTED_NAMES[iss.expected] ?? iss.expected;
    return makeError(`syntax error, unexpected ${KIND_NAMES[vi.kind]}, expecting ${expected}`, path, vi.pos);
  }
  if (iss.code === 'too_small' && iss.origin === 'array' && !iss.message.startsWith('Too small')) {
    return makeError(iss.message, path, positionOf(doc, path));
  }
  return makeError(iss.message, path, positionOf(doc, path));
}

/**
 * Parses a kea-dhcp-ddns configuration file's text. On success: the typed config
 * (`DhcpDdns` with every default applied), its JSON form for `config-get`
 * (`{"DhcpDdns": {...}}`) and Kea's warnings (extra commas, unknown severities).
 */
export function parseD2Config(text: string, opts: ParseD2ConfigOptions = {}): ParseD2ConfigResult {
  const file = opts.file ?? '<string>';
  let doc: KeaJsonDocument;
  try {
    doc = parseKeaJson(text, {
      file,
      mapName: keaMapName,
      ...(opts.allowInclude !== undefined ? { allowInclude: opts.allowInclude } : {}),
      readInclude: (p) => readFileSync(opts.baseDir ? resolve(opts.baseDir, p) : p, 'utf8'),
    });
  } catch (err) {
    if (err instanceof KeaJsonError) return fail([makeError(err.reason, [], err.pos)]);
    throw err;
  }
  return parseD2ConfigDocument(doc);
}

/** The second half of parseD2Config, for a document already read. */
export function parseD2ConfigDocument(doc: KeaJsonDocument): ParseD2ConfigResult {
  const top = doc.value;
  const topPos = doc.info.get('')?.pos;
  if (typeof top !== 'object' || top === null || Array.isArray(top)) {
    return fail([makeError(`syntax error, unexpected ${KIND_NAMES[doc.info.get('')?.kind ?? 'null']}, expecting {`, [], topPos)]);
  }
  for (const k of Object.keys(top)) {
    if (k !== 'DhcpDdns') {
      return fail([makeError(`got unexpected keyword "${k}" in toplevel map.`, [k], positionOf(doc, [k], true))]);
    }
  }
  const raw = (top as Record<string, unknown>).DhcpDdns;
  if (raw === undefined) return fail([makeError("configuration does not include 'DhcpDdns' entry", [], topPos)]);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return fail([makeError(`syntax error, unexpected ${KIND_NAMES[doc.info.get('/DhcpDdns')!.kind]}, expecting {`, ['DhcpDdns'], positionOf(doc, ['DhcpDdns']))]);
  }
  if (Object.keys(raw).length === 0) {
    // Kea's grammar wants at least one parameter in DhcpDdns.
    return fail([makeError('syntax error, unexpected }: DhcpDdns map must not be empty', ['DhcpDdns'], positionOf(doc, ['DhcpDdns']))]);
  }
  for (const [k, vi] of doc.info) {
    if (vi.kind === 'float' && INTEGER_PATHS.some((re) => re.test(k))) {
      const path = k.split('/').slice(1).map((p) => (/^\d+$/.test(p) ? Number(p) : p.replace(/~1/g, '/').replace(/~0/g, '~')));
      return fail([makeError('syntax error, unexpected floating point, expecting integer', path, vi.pos)]);
    }
  }
  const dupComment = findCommentAfterUserContext(doc, raw as Record<string, unknown>, ['DhcpDdns']);
  if (dupComment) return fail([dupComment]);
  const res = DhcpDdnsSchema.safeParse(raw);
  if (!res.success) {
    const errors = res.error.issues.map((iss) => issueToError(doc, iss));
    // Kea reports syntax errors before missing parameters; otherwise the first in the file.
    errors.sort((a, b) => Number(a.reason.startsWith('missing')) - Number(b.reason.startsWith('missing')) || comparePos(a.pos, b.pos));
    return fail(errors);
  }
  const warnings = [...doc.warnings];
  const loggers = (raw as { loggers?: { severity?: unknown }[] }).loggers ?? [];
  loggers.forEach((l, i) => {
    const s = String(l.severity);
    if (!(SEVERITIES as readonly string[]).includes(s.toUpperCase())) {
      const pos = positionOf(doc, ['DhcpDdns', 'loggers', i, 'severity']);
      warnings.push(`${pos ? formatPos(pos) + ': ' : ''}unrecognized log severity: ${s} (INFO is used)`);
    }
  });
  const config = res.data;
  return { ok: true, config, json: d2ConfigToJson(config), warnings };
}

const COMMENT_MAPS = new Set(['DhcpDdns', 'tsig-keys', 'ddns-domains', 'dns-servers', 'control-socket', 'control-sockets', 'authentication', 'clients', 'http-headers', 'loggers']);

/**
 * Kea's grammar refuses a `comment` that follows a `user-context` already holding
 * one ("duplicate user-context/comment entries"); the other order is accepted and
 * the `comment` wins. Key order is only known here, on the source document.
 */
function findCommentAfterUserContext(doc: KeaJsonDocument, node: unknown, path: (string | number)[]): ConfigError | undefined {
  if (Array.isArray(node)) {
    for (let i = 0; i < node.length; i++) {
      const e = findCommentAfterUserContext(doc, node[i], [...path, i]);
      if (e) return e;
    }
    return undefined;
  }
  if (typeof node !== 'object' || node === null) return undefined;
  const obj = node as Record<string, unknown>;
  const keys = Object.keys(obj);
  if (COMMENT_MAPS.has(keaMapName(path))) {
    const uc = obj['user-context'];
    if (keys.includes('comment') && keys.indexOf('user-context') >= 0 && keys.indexOf('user-context') < keys.indexOf('comment') &&
      typeof uc === 'object' && uc !== null && Object.hasOwn(uc, 'comment')) {
      const p = [...path, 'comment'];
      const prev = positionOf(doc, [...path, 'user-context']); // Kea: where the user-context map starts
      return makeError(`duplicate user-context/comment entries${prev ? ` (previous at ${formatPos(prev)})` : ''}`, p, positionOf(doc, p, true));
    }
    for (const k of keys) {
      if (k === 'user-context' || k === 'comment') continue;
      const e = findCommentAfterUserContext(doc, obj[k], [...path, k]);
      if (e) return e;
    }
  }
  return undefined;
}

function comparePos(a?: SourcePos, b?: SourcePos): number {
  if (!a || !b) return a ? -1 : b ? 1 : 0;
  if (a.file !== b.file) return 0;
  return a.line - b.line || a.col - b.col;
}

/** The `config-get` form: `{"DhcpDdns": {...}}`, defaults applied, a deep copy. */
export function d2ConfigToJson(config: D2Config): { DhcpDdns: unknown } {
  const copy = structuredClone(config);
  // Kea's TSIGKeyInfo::toElement: a key read from a file is shown by its file, never its secret.
  for (const k of copy['tsig-keys'] as { secret?: string; 'secret-file'?: string }[]) if (k['secret-file'] !== undefined) delete k.secret;
  // Kea's DdnsDomain/DnsServerInfo::toElement write `key-name` only when there is one
  // (Kea 2.2's servers have none at all), so a config-write round-trips without `"key-name": ""`.
  for (const side of [copy['forward-ddns'], copy['reverse-ddns']] as ({ 'ddns-domains'?: { 'key-name'?: string; 'dns-servers'?: { 'key-name'?: string }[] }[] } | undefined)[]) {
    for (const domain of side?.['ddns-domains'] ?? []) {
      if (domain['key-name'] === '') delete domain['key-name'];
      for (const server of domain['dns-servers'] ?? []) if (server['key-name'] === '') delete server['key-name'];
    }
  }
  // Kea's LoggingInfo::toElement: every output has a `pattern` ("" for the default);
  // `maxsize` and `maxver` only a file has.
  for (const logger of (copy.loggers ?? []) as { output_options?: { output: string; pattern?: string; maxsize?: number; maxver?: number }[] }[]) {
    for (const o of logger.output_options ?? []) {
      o.pattern ??= '';
      if (/^(stdout|stderr|syslog(:.*)?)$/.test(o.output)) {
        delete o.maxsize;
        delete o.maxver;
      }
    }
  }
  return { DhcpDdns: copy };
}

/** The keys `tsig-keys` defines, by name. */
export function tsigKeyMap(config: D2Config): Map<string, D2Config['tsig-keys'][number]> {
  return new Map(config['tsig-keys'].map((k) => [k.name, k]));
}
