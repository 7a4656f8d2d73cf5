/**
 * The NameChangeRequest (NCR): what a DHCP server asks D2 to do, with Kea's
 * validation (src/lib/dhcp_ddns/ncr_msg.cc) and Kea's JSON text.
 *
 * Validation, in Kea's order (the first failure is the one reported):
 *  change-type      integer, 0 (add) or 1 (remove)
 *  forward-change   boolean
 *  reverse-change   boolean
 *  fqdn             string, a valid DNS name; stored as Name::toText() (trailing dot added)
 *  ip-address       string, IPv4 or IPv6 (stored normalized, as inet_ntop prints it)
 *  dhcid            string of hex digits (either case, whitespace skipped, even count)
 *  lease-expires-on string YYYYMMDDHHMMSS (UTC, year 1970..9999, second <= 60) —
 *                   required by Kea < 3.2, dropped from the NCR by Kea 3.2: optional
 *                   here, checked when present
 *  lease-length     integer 0..4294967295 (a real such as 3600.0 is the wrong type)
 *  conflict-resolution-mode  one of the four mode strings; when present it wins and
 *                   use-conflict-resolution is not even looked at (as Kea >= 2.6)
 *  use-conflict-resolution   boolean: true -> check-with-dhcid, false -> no-check-with-dhcid
 *  neither          check-with-dhcid
 * then: DHCID not empty, and at least one of forward-change/reverse-change true.
 * Unknown keys are ignored, as Kea does.
 */
import { KeaReal, keaTypeName, parseKeaJson, type KeaValue } from './kea-json.js';
import { Name } from '../dns/name.js';
import { parseIpAddress } from '../dns/ip-address.js';

export const ChangeType = { ADD: 0, REMOVE: 1 } as const;
export type ChangeType = (typeof ChangeType)[keyof typeof ChangeType];

export const CONFLICT_RESOLUTION_MODES = [
  'check-with-dhcid',
  'no-check-with-dhcid',
  'check-exists-with-dhcid',
  'no-check-without-dhcid',
] as const;
export type ConflictResolutionMode = (typeof CONFLICT_RESOLUTION_MODES)[number];

/** What Kea's `use-conflict-resolution` boolean means in modes. */
export function modeFromUseConflictResolution(use: boolean): ConflictResolutionMode {
  return use ? 'check-with-dhcid' : 'no-check-with-dhcid';
}

/** The closest `use-conflict-resolution` for a mode (for Kea 2.2 receivers): the two checking modes are true. */
export function useConflictResolution(mode: ConflictResolutionMode): boolean {
  return mode === 'check-with-dhcid' || mode === 'check-exists-with-dhcid';
}

/** A validated NCR. Plain data: cheap to build, structured-clone safe. */
export interface NameChangeRequest {
  changeType: ChangeType;
  forwardChange: boolean;
  reverseChange: boolean;
  /** Normalized presentation form, always ending with a dot. */
  fqdn: string;
  /** Normalized text (lowercase, compressed for IPv6). */
  ipAddress: string;
  ipVersion: 4 | 6;
  /** DHCID RDATA bytes (RFC 4701). */
  dhcid: Uint8Array;
  /** The same, as uppercase hex (Kea's `D2Dhcid::toStr`). */
  dhcidHex: string;
  /** Seconds since the epoch (UTC); undefined when the sender left it out (Kea >= 3.2). */
  leaseExpiresOn: number | undefined;
  /** Seconds, 0..2^32-1. */
  leaseLength: number;
  conflictResolutionMode: ConflictResolutionMode;
}

/** The JSON keys, exactly as on the wire. */
export type NcrField =
  | 'change-type'
  | 'forward-change'
  | 'reverse-change'
  | 'fqdn'
  | 'ip-address'
  | 'dhcid'
  | 'lease-expires-on'
  | 'lease-length'
  | 'use-conflict-resolution'
  | 'conflict-resolution-mode';

/**
 * Why an NCR was refused. `code` is a small fixed set (for counting); `field`
 * names the JSON key when one is at fault; `reason` is the readable text and
 * always contains the field's name.
 */
export type NcrErrorCode =
  | 'short-frame'
  | 'oversize'
  | 'truncated'
  | 'not-utf8'
  | 'bad-json'
  | 'not-a-map'
  | 'missing-field'
  | 'wrong-type'
  | 'bad-value'
  | 'no-direction';

export interface NcrError {
  code: NcrErrorCode;
  field?: NcrField;
  reason: string;
}

export type NcrResult = { ok: true; ncr: NameChangeRequest } | ({ ok: false } & NcrError);

function fail(code: NcrErrorCode, field: NcrField | undefined, reason: string): { ok: false } & NcrError {
  return field === undefined ? { ok: false, code, reason } : { ok: false, code, field, reason };
}

function wrongType(field: NcrField, expected: string, v: KeaValue): { ok: false } & NcrError {
  return fail('wrong-type', field, `${field}: wrong data type, expected ${expected}, got ${keaTypeName(v)}`);
}

function shown(s: string): string {
  const t = s.length > 64 ? s.slice(0, 64) + '…' : s;
  return JSON.stringify(t);
}

// ---------------------------------------------------------------- dhcid hex


/** Uppercase hex, as one flat string (not a rope of two-character pieces that every copy of the NCR would drag along). */
export function bytesToHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex').toUpperCase();
}

/** Kea's decodeHex: hex digits of either case, whitespace skipped, an even count, no '=' padding. */
export function hexToBytes(s: string): Uint8Array | string {
  const out = new Uint8Array(s.length >> 1);
  let n = 0;
  let hi = -1;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    let v: number;
    if (c >= 0x30 && c <= 0x39) v = c - 0x30;
    else if (c >= 0x41 && c <= 0x46) v = c - 0x41 + 10;
    else if (c >= 0x61 && c <= 0x66) v = c - 0x61 + 10;
    else if (c === 0x20 || (c >= 0x09 && c <= 0x0d)) continue;
    else return c === 0x3d ? 'padding characters are not allowed' : 'not a hex digit';
    if (hi < 0) hi = v;
    else {
      out[n++] = (hi << 4) | v;
      hi = -1;
    }
  }
  if (hi >= 0) return 'odd number of hex digits';
  return n === out.length ? out : out.slice(0, n);
}

// ---------------------------------------------------------------- lease-expires-on

const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
const isLeap = (y: number): boolean => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;

/** Kea's timeFromText64: seconds since the epoch, or an error text. */
export function timeFromText(s: string): number | string {
  if (!/^[0-9]{14}$/.test(s)) return 'expected 14 digits YYYYMMDDHHMMSS';
  const year = +s.slice(0, 4);
  const month = +s.slice(4, 6);
  const day = +s.slice(6, 8);
  const hour = +s.slice(8, 10);
  const minute = +s.slice(10, 12);
  const second = +s.slice(12, 14);
  if (year < 1970) return `invalid year ${year}`;
  if (month < 1 || month > 12) return `invalid month ${month}`;
  if (day < 1 || day > DAYS[month - 1]! + (month === 2 && isLeap(year) ? 1 : 0)) return `invalid day ${day}`;
  if (hour > 23) return `invalid hour ${hour}`;
  if (minute > 59) return `invalid minute ${minute}`;
  if (second > 60) return `invalid second ${second}`;
  // Date.UTC has no leap second: add 60 as Kea does (plain arithmetic).
  return Date.UTC(year, month - 1, day, hour, minute, 0) / 1000 + second;
}

/** Kea's timeToText64. */
export function timeToText(secs: number): string {
  const d = new Date(secs * 1000);
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`;
}

// ---------------------------------------------------------------- fromJSON

/** Validate a parsed JSON value as an NCR (Kea's `NameChangeRequest::fromJSON` after parsing). */
export function ncrFromKeaValue(root: KeaValue): NcrResult {
  if (!(root instanceof Map)) {
    return fail('not-a-map', undefined, `NCR must be a JSON map, got a ${keaTypeName(root)}`);
  }
  const m = root;

  const ct = m.get('change-type');
  if (ct === undefined) return missing('change-type');
  if (typeof ct !== 'number' && typeof ct !== 'bigint') return wrongType('change-type', 'integer', ct);
  if (ct !== 0 && ct !== 1) return fail('bad-value', 'change-type', `change-type: invalid value ${ct}, expected 0 (add) or 1 (remove)`);

  const fwd = m.get('forward-change');
  if (fwd === undefined) return missing('forward-change');
  if (typeof fwd !== 'boolean') return wrongType('forward-change', 'boolean', fwd);

  const rev = m.get('reverse-change');
  if (rev === undefined) return missing('reverse-change');
  if (typeof rev !== 'boolean') return wrongType('reverse-change', 'boolean', rev);

  const fq = m.get('fqdn');
  if (fq === undefined) return missing('fqdn');
  if (typeof fq !== 'string') return wrongType('fqdn', 'string', fq);
  const name = Name.parse(fq);
  if (!name.ok) return fail('bad-value', 'fqdn', `fqdn: invalid value ${shown(fq)}: ${name.error.message}`);

  const ip = m.get('ip-address');
  if (ip === undefined) return missing('ip-address');
  if (typeof ip !== 'string') return wrongType('ip-address', 'string', ip);
  const addr = parseIpAddress(ip);
  if (!addr.ok) return fail('bad-value', 'ip-address', `ip-address: invalid value ${shown(ip)}, expected an IPv4 or IPv6 address`);

  const dh = m.get('dhcid');
  if (dh === undefined) return missing('dhcid');
  if (typeof dh !== 'string') return wrongType('dhcid', 'string', dh);
  const dhcid = hexToBytes(dh);
  if (typeof dhcid === 'string') return fail('bad-value', 'dhcid', `dhcid: invalid value ${shown(dh)}: ${dhcid}`);

  let leaseExpiresOn: number | undefined;
  const le = m.get('lease-expires-on');
  if (le !== undefined) {
    if (typeof le !== 'string') return wrongType('lease-expires-on', 'string', le);
    const t = timeFromText(le);
    if (typeof t === 'string') return fail('bad-value', 'lease-expires-on', `lease-expires-on: invalid value ${shown(le)}: ${t}`);
    leaseExpiresOn = t;
  }

  const ll = m.get('lease-length');
  if (ll === undefined) return missing('lease-length');
  if (typeof ll !== 'number' && typeof ll !== 'bigint') return wrongType('lease-length', 'integer', ll);
  if (ll < 0 || ll > 0xffffffff) return fail('bad-value', 'lease-length', `lease-length: value ${ll} out of range 0..4294967295`);

  let mode: ConflictResolutionMode = 'check-with-dhcid';
  const crm = m.get('conflict-resolution-mode');
  if (crm !== undefined) {
    if (typeof crm !== 'string') return wrongType('conflict-resolution-mode', 'string', crm);
    if (!(CONFLICT_RESOLUTION_MODES as readonly string[]).includes(crm)) {
      return fail('bad-value', 'conflict-resolution-mode', `conflict-resolution-mode: invalid value ${shown(crm)}, expected one of ${CONFLICT_RESOLUTION_MODES.join(', ')}`);
    }
    mode = crm as ConflictResolutionMode;
  } else {
    const ucr = m.get('use-conflict-resolution');
    if (ucr !== undefined) {
      if (typeof ucr !== 'boolean') return wrongType('use-conflict-resolution', 'boolean', ucr);
      mode = modeFromUseConflictResolution(ucr);
    }
  }

  if (dhcid.length === 0) return fail('bad-value', 'dhcid', 'dhcid: cannot be blank');
  if (!fwd && !rev) return fail('no-direction', 'forward-change', 'forward-change and reverse-change are both false');

  return {
    ok: true,
    ncr: {
      changeType: ct as ChangeType,
      forwardChange: fwd,
      reverseChange: rev,
      fqdn: name.value.toText(),
      ipAddress: addr.text,
      ipVersion: addr.family,
      dhcid,
      dhcidHex: bytesToHex(dhcid),
      leaseExpiresOn,
      leaseLength: Number(ll),
      conflictResolutionMode: mode,
    },
  };
}

function missing(field: NcrField): { ok: false } & NcrError {
  return fail('missing-field', field, `${field}: value missing`);
}

/** Parse and validate NCR JSON text (a string is taken as UTF-8). Never throws. */
export function ncrFromJSON(json: string | Uint8Array): NcrResult {
  const bytes = typeof json === 'string' ? Buffer.from(json, 'utf8') : json;
  const parsed = parseKeaJson(bytes);
  if (!parsed.ok) return fail('bad-json', undefined, `malformed NCR JSON: ${parsed.error}`);
  return ncrFromKeaValue(parsed.value);
}

// ---------------------------------------------------------------- building and toJSON

export interface NcrInit {
  changeType: ChangeType;
  forwardChange: boolean;
  reverseChange: boolean;
  fqdn: string;
  ipAddress: string;
  /** Bytes, or hex text. */
  dhcid: Uint8Array | string;
  leaseExpiresOn?: number | undefined;
  leaseLength: number;
  conflictResolutionMode?: ConflictResolutionMode;
}

/** Build an NCR from values, with the same validation as fromJSON. Never throws. */
export function createNcr(init: NcrInit): NcrResult {
  const m = new Map<string, KeaValue>([
    ['change-type', init.changeType],
    ['forward-change', init.forwardChange],
    ['reverse-change', init.reverseChange],
    ['fqdn', toLatin1(init.fqdn)],
    ['ip-address', init.ipAddress],
    ['dhcid', typeof init.dhcid === 'string' ? init.dhcid : bytesToHex(init.dhcid)],
    ['lease-length', Number.isInteger(init.leaseLength) ? init.leaseLength : new KeaReal(init.leaseLength)],
    ['conflict-resolution-mode', init.conflictResolutionMode ?? 'check-with-dhcid'],
  ]);
  if (init.leaseExpiresOn !== undefined) m.set('lease-expires-on', timeToText(init.leaseExpiresOn));
  return ncrFromKeaValue(m);
}

function toLatin1(s: string): string {
  return Buffer.from(s, 'utf8').toString('latin1');
}

/**
 * Which Kea's JSON text to write:
 * - `kea-2.2`: lease-expires-on and use-conflict-resolution (Kea 2.2 .. 2.4);
 * - `kea-2.6`: lease-expires-on and conflict-resolution-mode (Kea 2.6 .. 3.0); the default,
 *   because every Kea D2 from 2.2 on accepts it;
 * - `kea-3.2`: conflict-resolution-mode, no lease-expires-on (Kea 3.2 and later).
 * A missing lease-expires-on is written as 19700101000000 (Kea's zero value).
 */
export type NcrJsonDialect = 'kea-2.2' | 'kea-2.6' | 'kea-3.2';

/** Kea's exact `NameChangeRequest::toJSON()` text. */
export function ncrToJSON(ncr: NameChangeRequest, dialect: NcrJsonDialect = 'kea-2.6'): string {
  // The fqdn is in presentation form: printable ASCII, where only `"` and `\` need JSON escaping.
  // Kea writes it raw; escaping keeps the text valid JSON that reads back to the same name.
  const fqdn = /["\\]/.test(ncr.fqdn) ? JSON.stringify(ncr.fqdn).slice(1, -1) : ncr.fqdn;
  let s =
    `{"change-type":${ncr.changeType},"forward-change":${ncr.forwardChange},"reverse-change":${ncr.reverseChange},` +
    `"fqdn":"${fqdn}","ip-address":"${ncr.ipAddress}","dhcid":"${ncr.dhcidHex}",`;
  if (dialect !== 'kea-3.2') s += `"lease-expires-on":"${timeToText(ncr.leaseExpiresOn ?? 0)}",`;
  s += `"lease-length":${ncr.leaseLength},`;
  if (dialect === 'kea-2.2') s += `"use-conflict-resolution":${useConflictResolution(ncr.conflictResolutionMode)}}`;
  else s += `"conflict-resolution-mode":"${ncr.conflictResolutionMode}"}`;
  return s;
}

/** Field-by-field equality (Kea's operator==, plus lease-expires-on when both have it). */
export function ncrEquals(a: NameChangeRequest, b: NameChangeRequest): boolean {
  return (
    a.changeType === b.changeType &&
    a.forwardChange === b.forwardChange &&
    a.reverseChange === b.reverseChange &&
    a.fqdn === b.fqdn &&
    a.ipAddress === b.ipAddress &&
    a.dhcidHex === b.dhcidHex &&
    a.leaseExpiresOn === b.leaseExpiresOn &&
    a.leaseLength === b.leaseLength &&
    a.conflictResolutionMode === b.conflictResolutionMode
  );
}
