/**
 * Log text that cannot forge a log line. A log line is one line of the
 * daemon's pattern; text a hook library controls (console output, log
 * messages, error names, messages and stacks, the names it registers) could
 * otherwise end that line and start one of its own that looks like the
 * daemon's, or move the cursor and repaint a terminal with ANSI escapes.
 *
 * Such characters are rendered visibly instead: `\n`, `\r`, `\t`, other C0
 * controls, DEL and the C1 controls (0x9b is a one-byte CSI for some
 * terminals) as `\xNN`; the Unicode line and paragraph separators and the
 * bidirectional overrides (which reorder what a reader sees) as `\u{NNNN}`.
 *
 * - escapeUntrusted: a library's text. The backslash becomes `\\` too, so that
 *   text which already spells an escape cannot pass for one rendered here.
 * - quoteUntrusted: a library's text inside a daemon message: escaped, cut to a
 *   length, in double quotes (a quote inside is escaped), so where it starts
 *   and ends is plain.
 * - escapeControls: the logger's backstop for every line, the daemon's own
 *   included: control characters only, backslashes left as they are.
 */

const CONTROLS = '\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069';
const HAS_CONTROL = new RegExp(`[${CONTROLS}]`);
const CONTROL = new RegExp(`[${CONTROLS}]`, 'g');
const HAS_UNTRUSTED = new RegExp(`[\\\\${CONTROLS}]`);
const UNTRUSTED = new RegExp(`[\\\\${CONTROLS}]`, 'g');
const UNTRUSTED_IN_QUOTES = new RegExp(`[\\\\"${CONTROLS}]`, 'g');

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\\': '\\\\', '"': '\\"' };

function render(c: string): string {
  const named = NAMED[c];
  if (named) return named;
  const code = c.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
}

/** A library's text on one line, with nothing a terminal or a reader of the log would take for structure. */
export function escapeUntrusted(text: string): string {
  return HAS_UNTRUSTED.test(text) ? text.replace(UNTRUSTED, render) : text;
}

/**
 * A library's text inside a daemon message: escaped, at most `maxChars` long, in double
 * quotes. What claims to be text need not be (a process-mode library writes its messages
 * itself): anything else is shown as what String() makes of it, or not at all.
 */
export function quoteUntrusted(value: unknown, maxChars = 1024): string {
  let text: string;
  try {
    text = typeof value === 'string' ? value : String(value);
  } catch {
    text = '(not text)';
  }
  const cut = text.length > maxChars ? text.slice(0, maxChars) : text;
  const more = text.length - cut.length;
  return `"${cut.replace(UNTRUSTED_IN_QUOTES, render)}"${more > 0 ? `…(${more} more chars)` : ''}`;
}

/** Any log text on one line: control characters rendered visibly, nothing else changed. */
export function escapeControls(text: string): string {
  return HAS_CONTROL.test(text) ? text.replace(CONTROL, render) : text;
}
