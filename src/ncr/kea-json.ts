/**
 * A JSON reader with exactly the grammar of Kea's `isc::data::Element::fromJSON`
 * (src/lib/cc/data.cc), the parser Kea's D2 runs on every NCR. It works on the
 * raw bytes of a frame, so strings come back byte for byte (as latin1 code
 * units, one char per byte), the way Kea's std::string holds them.
 *
 * Kea's dialect, which this reproduces:
 * - whitespace is " \b\f\n\r\t";
 * - numbers are the longest run of [0-9+-.eE]; with one of ".eE" it is a real
 *   (`boost::lexical_cast<double>`), otherwise an int64 (`lexical_cast<int64_t>`,
 *   so a leading `+` and leading zeros are accepted); anything else is an error;
 * - `true`/`false`/`null` are read as a run of letters that must be exactly that word;
 * - strings may hold raw control bytes; escapes are \" \/ \\ \b \f \n \r \t and
 *   \u00XX only (which yields the byte XX);
 * - a list may end with a trailing comma (`[1,]`), a map may not;
 * - duplicate keys: the last one wins; data after the value (other than
 *   whitespace) is an error.
 * Unlike Kea (recursive), nesting is handled with an explicit stack, so no input
 * can exhaust the call stack.
 */

/** A JSON number that Kea reads as a real (double), never accepted where an integer is expected. */
export class KeaReal {
  constructor(readonly value: number) {}
}

export type KeaValue = string | number | bigint | boolean | null | KeaReal | KeaValue[] | Map<string, KeaValue>;

export type KeaJsonResult = { ok: true; value: KeaValue } | { ok: false; error: string };

export function keaTypeName(v: KeaValue | undefined): string {
  if (v === undefined) return 'missing';
  if (v === null) return 'null';
  switch (typeof v) {
    case 'string':
      return 'string';
    case 'number':
    case 'bigint':
      return 'integer';
    case 'boolean':
      return 'boolean';
  }
  if (v instanceof KeaReal) return 'real';
  if (Array.isArray(v)) return 'list';
  return 'map';
}

class JsonError {
  constructor(readonly message: string) {}
}

const WS = new Uint8Array(256);
for (const c of [0x20, 0x08, 0x0c, 0x0a, 0x0d, 0x09]) WS[c] = 1;
const NUMCH = new Uint8Array(256);
for (const c of '0123456789+-.eE') NUMCH[c.charCodeAt(0)] = 1;

const INT_RE = /^[+-]?[0-9]+$/;
const REAL_RE = /^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;
const INT64_MAX = 9223372036854775807n;
const INT64_MIN = -9223372036854775808n;

function hexVal(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -1;
}

function describe(c: number): string {
  return c >= 0x21 && c < 0x7f ? `'${String.fromCharCode(c)}'` : `byte 0x${c.toString(16).padStart(2, '0')}`;
}

type Frame = { list: KeaValue[]; map?: undefined; key?: undefined } | { list?: undefined; map: Map<string, KeaValue>; key: string };

// Parser state lives in module variables (no closures per call: NCR intake is a hot path).
// The parser is synchronous and not re-entrant by construction.
let B: Uint8Array = new Uint8Array(0);
let P = 0;
let E = 0;
let S = 0;

function skipWs(): void {
  while (P < E && WS[B[P]!] === 1) P++;
}

// Kea's skipTo: skip whitespace, expect one of two chars, then skip whitespace after it.
function skipTo(a: number, b: number, what: string): number {
  while (P < E) {
    const c = B[P++]!;
    if (WS[c] === 1) continue;
    if (c === a || c === b) {
      skipWs();
      return c;
    }
    throw new JsonError(`${describe(c)} read, one of "${what}" expected at offset ${P - 1 - S}`);
  }
  throw new JsonError(`EOF read, one of "${what}" expected`);
}

function readString(): string {
  if (P >= E || B[P] !== 0x22) throw new JsonError(`string expected at offset ${P - S}`);
  P++;
  const s0 = P;
  // fast path: no escapes
  while (P < E) {
    const c = B[P]!;
    if (c === 0x22) {
      const s = latin1(B, s0, P);
      P++;
      return s;
    }
    if (c === 0x5c) break;
    P++;
  }
  if (P >= E) throw new JsonError('unterminated string');
  let out = latin1(B, s0, P);
  while (P < E) {
    let c = B[P++]!;
    if (c === 0x22) return out;
    if (c === 0x5c) {
      if (P >= E) throw new JsonError('unterminated string');
      const e = B[P++]!;
      switch (e) {
        case 0x22: c = 0x22; break;
        case 0x2f: c = 0x2f; break;
        case 0x5c: c = 0x5c; break;
        case 0x62: c = 0x08; break;
        case 0x66: c = 0x0c; break;
        case 0x6e: c = 0x0a; break;
        case 0x72: c = 0x0d; break;
        case 0x74: c = 0x09; break;
        case 0x75: {
          if (P + 4 > E || B[P] !== 0x30 || B[P + 1] !== 0x30) throw new JsonError('unsupported unicode escape');
          const h = hexVal(B[P + 2]!);
          const l = hexVal(B[P + 3]!);
          if (h < 0 || l < 0) throw new JsonError('not hexadecimal in unicode escape');
          c = (h << 4) | l;
          P += 4;
          break;
        }
        default:
          throw new JsonError(`bad escape \\${String.fromCharCode(e)}`);
      }
    }
    out += String.fromCharCode(c);
  }
  throw new JsonError('unterminated string');
}

function readNumber(): KeaValue {
  const s0 = P;
  let simple = true; // digits only, at most 15 of them
  let v = 0;
  while (P < E) {
    const c = B[P]!;
    if (NUMCH[c] !== 1) break;
    if (c >= 0x30 && c <= 0x39) v = v * 10 + (c - 0x30);
    else simple = false;
    P++;
  }
  if (simple && P - s0 <= 15) return v;
  const tok = latin1(B, s0, P);
  if (INT_RE.test(tok)) {
    if (tok.length <= 15) return Number(tok);
    const big = BigInt(tok);
    if (big > INT64_MAX || big < INT64_MIN) throw new JsonError(`number overflow: ${tok}`);
    return Number.isSafeInteger(Number(big)) ? Number(big) : big;
  }
  if (REAL_RE.test(tok) && /[.eE]/.test(tok)) {
    const r = Number(tok);
    if (!Number.isFinite(r)) throw new JsonError(`number overflow: ${tok}`);
    return new KeaReal(r);
  }
  throw new JsonError(`bad number: ${tok}`);
}

function readScalar(c: number): KeaValue {
  if (NUMCH[c] === 1 && c !== 0x65 && c !== 0x45) return readNumber();
  if (c === 0x74 || c === 0x66 || c === 0x6e) {
    const s0 = P;
    while (P < E && isAlpha(B[P]!)) P++;
    const n = P - s0;
    if (c === 0x74 && n === 4 && B[s0 + 1] === 0x72 && B[s0 + 2] === 0x75 && B[s0 + 3] === 0x65) return true;
    if (c === 0x66 && n === 5 && B[s0 + 1] === 0x61 && B[s0 + 2] === 0x6c && B[s0 + 3] === 0x73 && B[s0 + 4] === 0x65) return false;
    if (c === 0x6e && n === 4 && B[s0 + 1] === 0x75 && B[s0 + 2] === 0x6c && B[s0 + 3] === 0x6c) return null;
    throw new JsonError(`bad ${c === 0x6e ? 'null' : 'boolean'} value: ${latin1(B, s0, P)}`);
  }
  if (c === 0x22) return readString();
  throw new JsonError(`unexpected character ${describe(c)} at offset ${P - S}`);
}

function parseValue(): KeaValue {
  const stack: Frame[] = [];
  // state: 0 = expect a value, 1 = `value` is complete
  let state = 0;
  let value: KeaValue = null;
  for (;;) {
    if (state === 0) {
      skipWs();
      if (P >= E) throw new JsonError('nothing read');
      const c = B[P]!;
      if (c === 0x5b) {
        P++;
        skipWs();
        const list: KeaValue[] = [];
        if (P < E && B[P] === 0x5d) {
          P++;
          value = list;
          state = 1;
        } else {
          stack.push({ list });
        }
        continue;
      }
      if (c === 0x7b) {
        P++;
        skipWs();
        if (P >= E) throw new JsonError('unterminated map, <string> or } expected');
        const map = new Map<string, KeaValue>();
        if (B[P] === 0x7d) {
          P++;
          value = map;
          state = 1;
          continue;
        }
        const key = readString();
        skipTo(0x3a, 0x3a, ':');
        stack.push({ map, key });
        continue;
      }
      value = readScalar(c);
      state = 1;
      continue;
    }
    const top = stack[stack.length - 1];
    if (top === undefined) return value;
    if (top.list !== undefined) {
      top.list.push(value);
      const c = skipTo(0x2c, 0x5d, ',]');
      if (c === 0x5d || (P < E && B[P] === 0x5d)) {
        if (c !== 0x5d) P++; // Kea accepts a trailing comma in a list
        stack.pop();
        value = top.list;
        continue; // state stays 1
      }
      state = 0;
      continue;
    }
    top.map.set(top.key, value);
    const c = skipTo(0x2c, 0x7d, ',}');
    if (c === 0x7d) {
      stack.pop();
      value = top.map;
      continue;
    }
    (top as { key: string }).key = readString();
    skipTo(0x3a, 0x3a, ':');
    state = 0;
  }
}

/**
 * Parse `buf[start, end)` as Kea would. Never throws.
 */
export function parseKeaJson(buf: Uint8Array, start = 0, end = buf.length): KeaJsonResult {
  B = buf;
  P = start;
  E = end;
  S = start;
  try {
    const value = parseValue();
    skipWs();
    if (P < E) throw new JsonError(`extra data at offset ${P - S}`);
    return { ok: true, value };
  } catch (e) {
    if (e instanceof JsonError) return { ok: false, error: e.message };
    return { ok: false, error: `parser failure: ${String(e)}` };
  } finally {
    B = EMPTY;
  }
}

const EMPTY = new Uint8Array(0);

function isAlpha(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

const latin1Slice = (Buffer.prototype as unknown as { latin1Slice(this: Uint8Array, a: number, b: number): string }).latin1Slice;

/** Bytes as a string of the same length, one char per byte (Kea's std::string view of them). */
function latin1(buf: Uint8Array, a: number, b: number): string {
  return latin1Slice.call(buf, a, b);
}
