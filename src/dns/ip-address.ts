/**
 * IP address text, read and printed as Kea's `IOAddress` does (asio over glibc
 * `inet_pton`/`inet_ntop`): IPv6 is tried first, then IPv4.
 * - IPv4: exactly four decimal octets 0..255, no leading zeros ("01" is refused);
 * - IPv6: 1..4 hex digits per group, one `::`, an optional trailing dotted quad;
 * - printed IPv6 is lowercase, the longest (first on a tie) run of two or more
 *   zero groups shortened to `::`, and `::a.b.c.d` / `::ffff:a.b.c.d` forms kept
 *   as glibc prints them.
 * Scoped addresses (`fe80::1%eth0`) are refused: asio would accept them, but an
 * NCR's address names a lease, never an interface.
 */

export type IpParseResult = { ok: true; family: 4 | 6; bytes: Uint8Array; text: string } | { ok: false };

export function parseIPv4(s: string): Uint8Array | undefined {
  const out = new Uint8Array(4);
  let octets = 0;
  let sawDigit = false;
  let cur = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x30 && c <= 0x39) {
      if (sawDigit && cur === 0) return undefined; // leading zero
      cur = cur * 10 + (c - 0x30);
      if (cur > 255) return undefined;
      if (!sawDigit) {
        if (++octets > 4) return undefined;
        sawDigit = true;
      }
    } else if (c === 0x2e && sawDigit) {
      if (octets === 4) return undefined;
      out[octets - 1] = cur;
      cur = 0;
      sawDigit = false;
    } else {
      return undefined;
    }
  }
  if (octets < 4 || !sawDigit) return undefined;
  out[3] = cur;
  return out;
}

function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

/** glibc inet_pton6. */
export function parseIPv6(s: string): Uint8Array | undefined {
  const tmp = new Uint8Array(16);
  let tp = 0;
  let colonp = -1;
  let i = 0;
  const n = s.length;
  if (n > 0 && s.charCodeAt(0) === 0x3a) {
    if (n < 2 || s.charCodeAt(1) !== 0x3a) return undefined;
    i = 1;
  }
  let curtok = i;
  let sawXdigit = false;
  let val = 0;
  let digits = 0;
  while (i < n) {
    const c = s.charCodeAt(i++);
    const d = hexDigit(c);
    if (d >= 0) {
      if (++digits > 4) return undefined;
      val = (val << 4) | d;
      sawXdigit = true;
      continue;
    }
    if (c === 0x3a) {
      curtok = i;
      if (!sawXdigit) {
        if (colonp !== -1) return undefined;
        colonp = tp;
        continue;
      } else if (i === n) {
        return undefined;
      }
      if (tp + 2 > 16) return undefined;
      tmp[tp++] = (val >> 8) & 0xff;
      tmp[tp++] = val & 0xff;
      sawXdigit = false;
      digits = 0;
      val = 0;
      continue;
    }
    if (c === 0x2e && tp + 4 <= 16) {
      const v4 = parseIPv4(s.slice(curtok));
      if (v4 === undefined) return undefined;
      tmp.set(v4, tp);
      tp += 4;
      sawXdigit = false;
      break;
    }
    return undefined;
  }
  if (sawXdigit) {
    if (tp + 2 > 16) return undefined;
    tmp[tp++] = (val >> 8) & 0xff;
    tmp[tp++] = val & 0xff;
  }
  if (colonp !== -1) {
    if (tp === 16) return undefined;
    const nmove = tp - colonp;
    for (let k = 1; k <= nmove; k++) {
      tmp[16 - k] = tmp[colonp + nmove - k]!;
      tmp[colonp + nmove - k] = 0;
    }
    tp = 16;
  }
  if (tp !== 16) return undefined;
  return tmp;
}

/** glibc inet_ntop6. */
export function formatIPv6(b: Uint8Array): string {
  const w: number[] = [];
  for (let k = 0; k < 8; k++) w.push((b[2 * k]! << 8) | b[2 * k + 1]!);
  let bestBase = -1;
  let bestLen = 0;
  let curBase = -1;
  let curLen = 0;
  for (let k = 0; k < 8; k++) {
    if (w[k] === 0) {
      if (curBase === -1) {
        curBase = k;
        curLen = 1;
      } else curLen++;
    } else if (curBase !== -1) {
      if (bestBase === -1 || curLen > bestLen) {
        bestBase = curBase;
        bestLen = curLen;
      }
      curBase = -1;
    }
  }
  if (curBase !== -1 && (bestBase === -1 || curLen > bestLen)) {
    bestBase = curBase;
    bestLen = curLen;
  }
  if (bestBase !== -1 && bestLen < 2) bestBase = -1;
  let out = '';
  for (let k = 0; k < 8; k++) {
    if (bestBase !== -1 && k >= bestBase && k < bestBase + bestLen) {
      if (k === bestBase) out += ':';
      continue;
    }
    if (k !== 0) out += ':';
    if (k === 6 && bestBase === 0 && (bestLen === 6 || (bestLen === 5 && w[5] === 0xffff))) {
      out += `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
      break;
    }
    out += w[k]!.toString(16);
  }
  if (bestBase !== -1 && bestBase + bestLen === 8) out += ':';
  return out;
}

/** `fe80::1%eth0` → `fe80::1`: where a zone may be written but does not matter (configuration, RDATA). */
export function withoutZone(address: string): string {
  const zone = address.indexOf('%');
  return zone < 0 ? address : address.slice(0, zone);
}

export function parseIpAddress(s: string): IpParseResult {
  if (s.length === 0 || s.length > 45) return { ok: false };
  const v6 = parseIPv6(s);
  if (v6 !== undefined) return { ok: true, family: 6, bytes: v6, text: formatIPv6(v6) };
  const v4 = parseIPv4(s);
  if (v4 !== undefined) return { ok: true, family: 4, bytes: v4, text: `${v4[0]}.${v4[1]}.${v4[2]}.${v4[3]}` };
  return { ok: false };
}
