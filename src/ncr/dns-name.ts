/**
 * Domain names in text form, read and printed exactly as Kea's `isc::dns::Name`
 * does (src/lib/dns/name.cc `stringParse`, labelsequence.cc `toText`), since an
 * NCR's fqdn is `Name(fqdn).toText()`:
 * - `.` and a lone `@` are the root name; `""` is an incomplete name;
 * - `\X` is a literal X, `\DDD` a decimal byte (exactly three digits, <= 255);
 *   a label may not start with `\[` (bitstring labels);
 * - empty labels (`a..b`, `.a`) are errors; a label holds at most 63 bytes and
 *   the wire form at most 255 bytes;
 * - case is kept; the printed form always ends with a dot, escapes `"();\@$` and
 *   `.` inside a label with a backslash and other bytes outside 0x21..0x7e as `\DDD`.
 * Input is a latin1 string: one char per byte, as Kea's std::string.
 */

export const MAX_WIRE = 255;
export const MAX_LABELLEN = 63;

export type DnsNameResult = { ok: true; text: string; wire: Uint8Array } | { ok: false; error: string };

const enum St {
  Init,
  Start,
  Ordinary,
  InitialEscape,
  Escape,
  EscDecimal,
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

export function parseDnsName(s: string): DnsNameResult {
  const n = s.length;
  const nd: number[] = [];
  let lastOffset = 0;
  let state = St.Init;
  let done = false;
  let count = 0;
  let digits = 0;
  let value = 0;
  let i = 0;
  while (nd.length < MAX_WIRE && i < n && !done) {
    const c = s.charCodeAt(i++) & 0xff;
    // emulate the C switch with fallthrough
    let st = state;
    if (st === St.Init) {
      let isRoot = false;
      if (c === 0x2e) {
        if (i !== n) return { ok: false, error: 'non terminating empty label' };
        isRoot = true;
      } else if (c === 0x40 && i === n) {
        isRoot = true;
      }
      if (isRoot) {
        nd.push(0);
        done = true;
        break;
      }
      st = St.Start;
    }
    if (st === St.Start) {
      lastOffset = nd.length;
      nd.push(0);
      count = 0;
      if (c === 0x5c) {
        state = St.InitialEscape;
        continue;
      }
      state = St.Ordinary;
      st = St.Ordinary;
    }
    if (st === St.Ordinary) {
      if (c === 0x2e) {
        if (count === 0) return { ok: false, error: 'duplicate period' };
        nd[lastOffset] = count;
        lastOffset = nd.length;
        if (i === n) {
          nd.push(0);
          done = true;
        }
        state = St.Start;
      } else if (c === 0x5c) {
        state = St.Escape;
      } else {
        if (++count > MAX_LABELLEN) return { ok: false, error: 'label is too long' };
        nd.push(c);
      }
      continue;
    }
    if (st === St.InitialEscape) {
      if (c === 0x5b) return { ok: false, error: 'invalid label type (bitstring label)' };
      st = St.Escape;
    }
    if (st === St.Escape) {
      if (!isDigit(c)) {
        if (++count > MAX_LABELLEN) return { ok: false, error: 'label is too long' };
        nd.push(c);
        state = St.Ordinary;
        continue;
      }
      digits = 0;
      value = 0;
      state = St.EscDecimal;
      st = St.EscDecimal;
    }
    if (st === St.EscDecimal) {
      if (!isDigit(c)) return { ok: false, error: 'mixture of escaped digit and non-digit' };
      value = value * 10 + (c - 0x30);
      digits++;
      if (digits === 3) {
        if (value > 255) return { ok: false, error: 'escaped decimal is too large' };
        if (++count > MAX_LABELLEN) return { ok: false, error: 'label is too long' };
        nd.push(value);
        state = St.Ordinary;
      }
    }
  }
  if (!done) {
    if (nd.length === MAX_WIRE) return { ok: false, error: 'name is too long' };
    if (state !== St.Ordinary) return { ok: false, error: n === 0 ? 'incomplete textual name <empty>' : 'incomplete textual name' };
    nd[lastOffset] = count;
    nd.push(0);
  }
  const wire = Uint8Array.from(nd);
  return { ok: true, text: wireToText(wire), wire };
}

/** Kea's LabelSequence::toText(false) of an absolute wire-form name. */
export function wireToText(wire: Uint8Array): string {
  let out = '';
  let p = 0;
  while (p < wire.length) {
    const len = wire[p++]!;
    if (len === 0) {
      if (out === '' || true) out += '.';
      break;
    }
    if (out !== '') out += '.';
    for (let k = 0; k < len; k++) {
      const c = wire[p++]!;
      switch (c) {
        case 0x22:
        case 0x28:
        case 0x29:
        case 0x2e:
        case 0x3b:
        case 0x5c:
        case 0x40:
        case 0x24:
          out += '\\' + String.fromCharCode(c);
          break;
        default:
          if (c > 0x20 && c < 0x7f) out += String.fromCharCode(c);
          else out += '\\' + String(c).padStart(3, '0');
      }
    }
  }
  return out;
}
