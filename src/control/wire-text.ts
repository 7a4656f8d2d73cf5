/**
 * The text a command arrived as, kept beside its parsed `arguments` so that a
 * configuration error in config-test/config-set can name its place on the wire
 * as Kea does (`(<wire>:0:57)`): Kea parses the command once, keeping every
 * value's position, and checks the configuration's types on that tree.
 *
 * Keyed weakly by the `arguments` object, which reaches the handlers as is.
 */
import type { ConfigError } from '../config/d2-config.js';
import { parseKeaJson, pathKey, type SourcePos, type ValueKind } from '../config/kea-json.js';

const texts = new WeakMap<object, string>();

export function rememberWireText(request: unknown, text: string): void {
  const args = typeof request === 'object' && request !== null ? (request as { arguments?: unknown }).arguments : undefined;
  if (typeof args === 'object' && args !== null) texts.set(args, text);
}

export function wireTextOf(args: object): string | undefined {
  return texts.get(args);
}

/**
 * Kea's `<wire>:line:col` for a value found at 1-based `pos` (measured on Kea
 * 2.2's kea-dhcp-ddns): lines count from 0; on the first line the column is the
 * number of characters before the value, on the next ones one more (Kea's
 * column restarts at 1 after a newline); a map is placed after its `{`.
 */
export function keaWirePosition(pos: SourcePos, kind: ValueKind): string {
  const col = (pos.line === 1 ? pos.col - 1 : pos.col) + (kind === 'map' ? 1 : 0);
  return `<wire>:${pos.line - 1}:${col}`;
}

/**
 * Kea's text for a configuration that arrived as `args` and was refused with
 * `error`, where Kea's is known: a value of the wrong type is `invalid type
 * specified for parameter 'port' (<wire>:0:57)`. Otherwise undefined (d2box's
 * own text stands).
 */
export function keaWireError(args: object, error: ConfigError): string | undefined {
  const text = wireTextOf(args);
  const key = error.path[error.path.length - 1];
  if (text === undefined || typeof key !== 'string' || error.path.length < 2) return undefined;
  if (!/^syntax error, unexpected [^:]*, expecting (integer|constant string|boolean|\{|\[)$/.test(error.reason)) return undefined;
  let doc;
  try {
    doc = parseKeaJson(text, { file: '<wire>', allowInclude: false });
  } catch {
    return undefined;
  }
  const at = doc.info.get(pathKey(['arguments', ...error.path]));
  return at ? `invalid type specified for parameter '${key}' (${keaWirePosition(at.pos, at.kind)})` : undefined;
}
