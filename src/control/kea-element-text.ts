/**
 * JSON written the way Kea's Element writes it (src/lib/cc/data.cc), so that an
 * operator's scripts that grep Kea's answers (`"result": 0`) keep working:
 *
 * - `keaElementText`: Element::str(), what Kea's command sockets answer:
 *   `{ "arguments": { … }, "result": 0 }`, maps in key order (a std::map),
 *   `[ a, b ]`, empty containers `{  }` and `[  ]`, no newline at the end.
 * - `keaPrettyText`: isc::data::prettyPrint, what config-write writes: one map
 *   key per line indented by 2, lists of scalars on one line, `{ }`, `[ ]`.
 *
 * Strings are escaped as StringElement::toJSON: `"`, `\`, \b \f \n \r \t by
 * name, every other byte below 0x20 or from 0x7f up as `\u00XX` (so a UTF-8
 * character becomes one escape per byte, as Kea writes it), `/` as is. Map keys
 * are written unescaped, as Kea does. A number that is not an integer is
 * written as C++'s `ostream << double` does (6 significant digits).
 */

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

function escapeString(s: string): string {
  let out = '"';
  for (const byte of Buffer.from(s, 'utf8')) {
    switch (byte) {
      case 0x22:
        out += '\\"';
        break;
      case 0x5c:
        out += '\\\\';
        break;
      case 0x08:
        out += '\\b';
        break;
      case 0x0c:
        out += '\\f';
        break;
      case 0x0a:
        out += '\\n';
        break;
      case 0x0d:
        out += '\\r';
        break;
      case 0x09:
        out += '\\t';
        break;
      default:
        out += byte < 0x20 || byte >= 0x7f ? `\\u${byte.toString(16).padStart(4, '0')}` : String.fromCharCode(byte);
    }
  }
  return out + '"';
}

/** C++ `ostream << double` with the default precision: %g with 6 significant digits. */
function doubleText(n: number): string {
  if (Number.isNaN(n)) return 'nan';
  if (!Number.isFinite(n)) return n > 0 ? 'inf' : '-inf';
  if (n === 0) return Object.is(n, -0) ? '-0' : '0';
  const exponent = Math.floor(Math.log10(Math.abs(Number(n.toPrecision(6)))));
  if (exponent < -4 || exponent >= 6) {
    const [mantissa, exp] = n.toExponential(5).split('e') as [string, string];
    const trimmed = mantissa.includes('.') ? mantissa.replace(/0+$/, '').replace(/\.$/, '') : mantissa;
    const sign = exp.startsWith('-') ? '-' : '+';
    return `${trimmed}e${sign}${exp.replace(/^[+-]/, '').padStart(2, '0')}`;
  }
  const fixed = n.toFixed(Math.max(0, 5 - exponent));
  return fixed.includes('.') ? fixed.replace(/0+$/, '').replace(/\.$/, '') : fixed;
}

function scalarText(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'string') return escapeString(value);
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : doubleText(value);
  // Whatever else (a Date, a class instance) becomes what JSON would make of it.
  return escapeString(String(value));
}

/** The map's entries as Kea holds them: sorted, without the undefined ones JSON.stringify would drop. */
function entries(map: object): [string, unknown][] {
  const json = typeof (map as { toJSON?: unknown }).toJSON === 'function' ? (map as { toJSON: () => unknown }).toJSON() : map;
  if (typeof json !== 'object' || json === null) return [];
  return Object.entries(json)
    .filter(([, v]) => v !== undefined && typeof v !== 'function')
    .sort(([a], [b]) => byteOrder(a, b));
}

/** Element::str(). */
export function keaElementText(value: unknown): string {
  if (Array.isArray(value)) return `[ ${value.map((v) => keaElementText(v)).join(', ')} ]`;
  if (typeof value === 'object' && value !== null) {
    return `{ ${entries(value)
      .map(([k, v]) => `"${k}": ${keaElementText(v)}`)
      .join(', ')} }`;
  }
  return scalarText(value);
}

/** isc::data::prettyPrint(element, out, indent, step = 2). */
export function keaPrettyText(value: unknown, indent = 0, step = 2): string {
  if (Array.isArray(value)) {
    if (value.length === 0) return '[ ]';
    const first = value[0];
    const complex = typeof first === 'object' && first !== null;
    if (!complex) return `[ ${value.map((v) => keaPrettyText(v, indent + step, step)).join(', ')} ]`;
    const pad = ' '.repeat(indent + step);
    return `[\n${value.map((v) => pad + keaPrettyText(v, indent + step, step)).join(',\n')}\n${' '.repeat(indent)}]`;
  }
  if (typeof value === 'object' && value !== null) {
    const e = entries(value);
    if (e.length === 0) return '{ }';
    const pad = ' '.repeat(indent + step);
    return `{\n${e.map(([k, v]) => `${pad}"${k}": ${keaPrettyText(v, indent + step, step)}`).join(',\n')}\n${' '.repeat(indent)}}`;
  }
  return scalarText(value);
}
