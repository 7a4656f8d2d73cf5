/**
 * Domain names (RFC 1035 §3.1, RFC 4343 case rules, RFC 4034 §6.2 canonical form).
 *
 * A {@link Name} is an absolute name held as its labels (raw bytes, case
 * preserved). It is parsed from presentation form (`fromText`, which accepts
 * `\.`, `\\` and `\DDD` escapes and treats every name as absolute, as Kea
 * does), encoded uncompressed (`toWire`) and decoded from a message with
 * compression pointers (`decodeName`), bounded against loops and overruns.
 */
import { DnsError, malformed, ok, type Result } from './errors.js';

export const MAX_LABEL_LENGTH = 63;
/** Maximum length of a name on the wire, including the root label. */
export const MAX_WIRE_LENGTH = 255;
/** More pointers than this in one name is a loop (a name has at most 127 labels). */
const MAX_POINTER_HOPS = 128;

const lowerByte = (b: number): number => (b >= 0x41 && b <= 0x5a ? b + 0x20 : b);

export class Name {
  /** Labels from the leftmost; the root label is implicit (never stored). */
  readonly labels: readonly Uint8Array[];
  /** Length of the uncompressed wire form, root label included. */
  readonly wireLength: number;

  private constructor(labels: readonly Uint8Array[]) {
    this.labels = labels;
    let n = 1;
    for (const l of labels) n += 1 + l.length;
    this.wireLength = n;
  }

  static readonly ROOT = new Name([]);

  /** Builds a name from raw labels; throws `invalid-argument` if a limit is broken. */
  static fromLabels(labels: readonly Uint8Array[]): Name {
    let n = 1;
    for (const l of labels) {
      if (l.length === 0) throw new DnsError('invalid-argument', 'empty label');
      if (l.length > MAX_LABEL_LENGTH) throw new DnsError('invalid-argument', `label longer than ${MAX_LABEL_LENGTH} octets`);
      n += 1 + l.length;
    }
    if (n > MAX_WIRE_LENGTH) throw new DnsError('invalid-argument', `name longer than ${MAX_WIRE_LENGTH} octets`);
    return new Name(labels.map((l) => Uint8Array.from(l)));
  }

  /** For decodeName: labels fresh from a message, already checked against every limit (not copied again). */
  static fromCheckedLabels(labels: Uint8Array[]): Name {
    return new Name(labels);
  }

  /**
   * Parses presentation form as Kea's isc::dns::Name does, or returns an error.
   * A trailing dot is optional; `.` and a lone `@` are the root. `text` is
   * latin1, one char per byte: any byte may appear raw or escaped (`\X`,
   * `\DDD`), and a label may not start with `\[` (bitstring labels).
   */
  static parse(text: string): Result<Name> {
    if (text === '.' || text === '@') return ok(Name.ROOT);
    if (text.length === 0) return malformed('empty name');
    const plain = parsePlain(text);
    if (plain) return ok(plain);
    const labels: Uint8Array[] = [];
    let cur: number[] = [];
    let total = 1;
    // Kea's texts (isc::dns::Name's exceptions), which configuration errors repeat.
    const endLabel = (): Result<null> => {
      if (cur.length === 0) return malformed(labels.length === 0 ? `non terminating empty label in ${text}` : `duplicate period in ${text}`);
      if (cur.length > MAX_LABEL_LENGTH) return malformed(`label is too long in ${text}`);
      total += 1 + cur.length;
      if (total > MAX_WIRE_LENGTH) return malformed(`name is too long: ${text}`);
      labels.push(Uint8Array.from(cur));
      cur = [];
      return ok(null);
    };
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 0x2e /* . */) {
        const r = endLabel();
        if (!r.ok) return r;
        if (i === text.length - 1) return ok(new Name(labels));
      } else if (c === 0x5c /* \ */) {
        if (i + 1 >= text.length) return malformed(`incomplete escape in ${text}`);
        const d1 = text.charCodeAt(i + 1);
        if (d1 === 0x5b /* [ */ && cur.length === 0) return malformed(`bitstring labels are not supported: "${text}"`);
        if (d1 >= 0x30 && d1 <= 0x39) {
          const digits = text.slice(i + 1, i + 4);
          if (!/^[0-9]{3}$/.test(digits)) return malformed(`bad \\DDD escape in "${text}"`);
          const v = Number(digits);
          if (v > 255) return malformed(`escaped decimal is too large in ${text}`);
          cur.push(v);
          i += 3;
        } else {
          if (d1 > 0xff) return malformed(`character outside latin1 in "${text}"`);
          cur.push(d1);
          i += 1;
        }
      } else {
        if (c > 0xff) return malformed(`character outside latin1 in name "${text}"`);
        cur.push(c);
      }
    }
    const r = endLabel();
    if (!r.ok) return r;
    return ok(new Name(labels));
  }

  /** Parses presentation form; throws `invalid-argument` on bad input. */
  static fromText(text: string): Name {
    const r = Name.parse(text);
    if (!r.ok) throw new DnsError('invalid-argument', r.error.message);
    return r.value;
  }

  /** Presentation form, absolute (trailing dot), with escapes where needed. */
  toText(): string {
    if (this.labels.length === 0) return '.';
    let s = '';
    for (const l of this.labels) {
      for (const b of l) {
        if (b === 0x2e || b === 0x5c || b === 0x22 || b === 0x28 || b === 0x29 || b === 0x3b || b === 0x40 || b === 0x24) {
          s += '\\' + String.fromCharCode(b);
        } else if (b < 0x21 || b > 0x7e) {
          s += '\\' + String(b).padStart(3, '0');
        } else {
          s += String.fromCharCode(b);
        }
      }
      s += '.';
    }
    return s;
  }

  toString(): string {
    return this.toText();
  }

  /** Canonical form (RFC 4034 §6.2): ASCII letters lowercased. */
  canonical(): Name {
    return new Name(this.labels.map((l) => l.map(lowerByte)));
  }

  /** Case-insensitive comparison (RFC 4343). */
  equals(other: Name): boolean {
    if (this.labels.length !== other.labels.length || this.wireLength !== other.wireLength) return false;
    for (let i = 0; i < this.labels.length; i++) {
      const a = this.labels[i]!;
      const b = other.labels[i]!;
      if (a.length !== b.length) return false;
      for (let j = 0; j < a.length; j++) if (lowerByte(a[j]!) !== lowerByte(b[j]!)) return false;
    }
    return true;
  }

  /** True when this name is `other` or below it. */
  isSubdomainOf(other: Name): boolean {
    const k = other.labels.length;
    if (k > this.labels.length) return false;
    const tail = new Name(this.labels.slice(this.labels.length - k));
    return tail.equals(other);
  }

  /** Uncompressed wire form. */
  toWire(): Buffer {
    const out = Buffer.allocUnsafe(this.wireLength);
    this.writeTo(out, 0);
    return out;
  }

  /** Writes the uncompressed wire form at `offset`; returns the offset after it. */
  writeTo(buf: Uint8Array, offset: number): number {
    let o = offset;
    for (const l of this.labels) {
      buf[o++] = l.length;
      buf.set(l, o);
      o += l.length;
    }
    buf[o++] = 0;
    return o;
  }
}

/**
 * The common case of {@link Name.parse} without a byte array per character and
 * a copy per label: a name with no escape, every label 1..63 latin1 characters,
 * at most 255 octets on the wire. Its labels are views of one buffer. Anything
 * else (escapes, an empty or long label, a long name, a character above 0xff)
 * returns undefined and goes to the full parser, which gives Kea's texts.
 */
function parsePlain(text: string): Name | undefined {
  const n = text.length;
  if (n > MAX_WIRE_LENGTH) return undefined;
  let labelStart = 0;
  let count = 0;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x2e) {
      const len = i - labelStart;
      if (len === 0 || len > MAX_LABEL_LENGTH) return undefined;
      labelStart = i + 1;
      count++;
    } else if (c === 0x5c || c > 0xff) {
      return undefined;
    }
  }
  const last = n - labelStart; // 0 when the name ends with a dot
  if (last > MAX_LABEL_LENGTH) return undefined;
  if (last > 0) count++;
  // Wire length: each label's length octet and bytes, plus the root octet.
  const wire = last > 0 ? n + 2 : n + 1;
  if (wire > MAX_WIRE_LENGTH) return undefined;
  const bytes = Buffer.from(text, 'latin1');
  const labels: Uint8Array[] = new Array(count);
  let start = 0;
  let k = 0;
  for (let i = 0; i <= n; i++) {
    if (i === n || bytes[i] === 0x2e) {
      if (i > start) labels[k++] = bytes.subarray(start, i);
      start = i + 1;
    }
  }
  return Name.fromCheckedLabels(labels);
}

/**
 * Decodes the name at `offset` of a whole message `msg`, following compression
 * pointers. Returns the name and the offset just after it in the original
 * position (after the first pointer, if any). Never throws.
 *
 * Protection: every pointer must point strictly before the position it was
 * read from (so a chain cannot loop), the number of hops is bounded, every
 * read is bounds-checked, and the decoded name must fit in 255 octets.
 */
export function decodeName(msg: Uint8Array, offset: number): Result<{ name: Name; next: number }> {
  const labels: Uint8Array[] = [];
  let pos = offset;
  let next = -1;
  let total = 1;
  let hops = 0;
  for (;;) {
    if (pos >= msg.length) return malformed(`name at ${offset} runs past the end of the message`);
    const len = msg[pos]!;
    if (len === 0) {
      if (next < 0) next = pos + 1;
      break;
    }
    const kind = len & 0xc0;
    if (kind === 0xc0) {
      if (pos + 1 >= msg.length) return malformed(`truncated compression pointer at ${pos}`);
      const target = ((len & 0x3f) << 8) | msg[pos + 1]!;
      if (target >= pos) return malformed(`compression pointer at ${pos} does not point backwards (${target})`);
      if (++hops > MAX_POINTER_HOPS) return malformed(`too many compression pointers in name at ${offset}`);
      if (next < 0) next = pos + 2;
      pos = target;
      continue;
    }
    if (kind !== 0) return malformed(`unsupported label type 0x${kind.toString(16)} at ${pos}`);
    if (pos + 1 + len > msg.length) return malformed(`label at ${pos} runs past the end of the message`);
    total += 1 + len;
    if (total > MAX_WIRE_LENGTH) return malformed(`name at ${offset} longer than ${MAX_WIRE_LENGTH} octets`);
    labels.push(msg.slice(pos + 1, pos + 1 + len));
    pos += 1 + len;
  }
  // Every label is 1..63 octets (a length byte below 0x40, non-zero) and the total is checked above.
  return ok({ name: Name.fromCheckedLabels(labels), next });
}

/**
 * Where the name at `offset` of `msg` ends (the offset just after it), with
 * exactly the checks of {@link decodeName} but nothing allocated; -1 where
 * decodeName would return an error.
 */
export function skipName(msg: Uint8Array, offset: number): number {
  let pos = offset;
  let next = -1;
  let total = 1;
  let hops = 0;
  for (;;) {
    if (pos >= msg.length) return -1;
    const len = msg[pos]!;
    if (len === 0) return next < 0 ? pos + 1 : next;
    const kind = len & 0xc0;
    if (kind === 0xc0) {
      if (pos + 1 >= msg.length) return -1;
      const target = ((len & 0x3f) << 8) | msg[pos + 1]!;
      if (target >= pos) return -1;
      if (++hops > MAX_POINTER_HOPS) return -1;
      if (next < 0) next = pos + 2;
      pos = target;
      continue;
    }
    if (kind !== 0) return -1;
    if (pos + 1 + len > msg.length) return -1;
    total += 1 + len;
    if (total > MAX_WIRE_LENGTH) return -1;
    pos += 1 + len;
  }
}

/**
 * True when the name written at `offset` of `msg`, uncompressed, equals `name`
 * (case-insensitively, RFC 4343). A compressed name is never equal here (the
 * caller decodes it the long way). The bytes must already have passed {@link skipName}.
 */
export function wireNameEquals(msg: Uint8Array, offset: number, name: Name): boolean {
  let pos = offset;
  for (const l of name.labels) {
    if (msg[pos] !== l.length) return false;
    pos++;
    for (let j = 0; j < l.length; j++) if (lowerByte(msg[pos + j]!) !== lowerByte(l[j]!)) return false;
    pos += l.length;
  }
  return msg[pos] === 0;
}
