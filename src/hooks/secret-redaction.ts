/**
 * SecretRedaction: what a library without `"see-secrets": true` is shown in
 * place of TSIG secrets, and how the keys it hands back are made whole again.
 *
 * Every property named `secret` (or `secret-file`) is removed from the
 * configuration snapshots (json_config, server_config) and from the arguments
 * of each callout. select_key's tsig_key travels without its secret; the key a
 * library sets there is taken by its name and must be a key of the
 * configuration, whose secret the host puts back. A library can name a key; it
 * can neither read one nor bring its own. A library that sees secrets names a
 * key the same way (restoreKey), and may also bring its own.
 */
import type { SerializedError } from './protocol.js';

const SECRET_PROPERTIES = new Set(['secret', 'secret-file']);
/** Deeper than any configuration or command answer d2box builds. */
const MAX_DEPTH = 32;

/** A configured key as select_key takes it (Kea's D2TsigKey by value). */
interface KeyArgument {
  name: string;
  algorithm: string;
  secret: string;
  'digest-bits'?: number;
}

export class SecretRedaction {
  private keys = new Map<string, KeyArgument>();

  /** Learns the configured keys (Kea's `tsig-keys`) from the unredacted JSON configuration. */
  setConfiguration(jsonConfig: unknown): void {
    const keys = new Map<string, KeyArgument>();
    for (const entry of findTsigKeys(jsonConfig, 0)) {
      if (typeof entry !== 'object' || entry === null) continue;
      const { name, algorithm, secret } = entry as Record<string, unknown>;
      if (typeof name !== 'string' || typeof algorithm !== 'string' || typeof secret !== 'string') continue;
      const key: KeyArgument = { name, algorithm, secret };
      const bits = (entry as Record<string, unknown>)['digest-bits'];
      if (typeof bits === 'number' && bits > 0) key['digest-bits'] = bits;
      keys.set(keyId(name), key);
    }
    this.keys = keys;
  }

  /** A copy of `value` without secrets; `value` itself is left alone (it may be frozen or shared). */
  redact<T>(value: T): T {
    return strip(value, 0) as T;
  }

  /**
   * The library's changes to select_key's tsig_key, made whole: null stays null
   * (no key); a key by name becomes the configured key of that name.
   */
  restoreKey(chosen: unknown): { key: KeyArgument | null } | { error: SerializedError } {
    if (chosen === null) return { key: null };
    const name = typeof chosen === 'object' && chosen !== null ? (chosen as { name?: unknown }).name : undefined;
    if (typeof name !== 'string') {
      return { error: { kind: 'invalid-argument', name: 'InvalidArgument', message: 'tsig_key must be null or name a configured key' } };
    }
    const key = this.keys.get(keyId(name));
    if (!key) {
      return {
        error: {
          kind: 'invalid-argument',
          name: 'InvalidArgument',
          message: `tsig_key names ${JSON.stringify(name)}, which is not a key of the configuration (tsig-keys: ${this.keyList()})`,
        },
      };
    }
    return { key: { ...key } };
  }

  private keyList(): string {
    if (this.keys.size === 0) return 'none';
    const names = [...this.keys.values()].slice(0, 8).map((k) => JSON.stringify(k.name));
    return names.join(', ') + (this.keys.size > names.length ? `, and ${this.keys.size - names.length} more` : '');
  }
}

/** Key names are DNS names: compared without case and without the final dot. */
function keyId(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

function findTsigKeys(value: unknown, depth: number): unknown[] {
  if (depth > 2 || typeof value !== 'object' || value === null || Array.isArray(value)) return [];
  const record = value as Record<string, unknown>;
  if (Array.isArray(record['tsig-keys'])) return record['tsig-keys'];
  for (const child of Object.values(record)) {
    const found = findTsigKeys(child, depth + 1);
    if (found.length > 0) return found;
  }
  return [];
}

function strip(value: unknown, depth: number): unknown {
  if (typeof value !== 'object' || value === null || depth > MAX_DEPTH) return value;
  if (Array.isArray(value)) return value.map((item) => strip(item, depth + 1));
  if (value instanceof Map) return new Map([...value].filter(([key]) => !SECRET_PROPERTIES.has(key)).map(([key, child]) => [key, strip(child, depth + 1)]));
  if (value instanceof Set) return new Set([...value].map((item) => strip(item, depth + 1)));
  if (ArrayBuffer.isView(value) || value instanceof Date) return value;
  const copy: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value as Record<string, unknown>)) {
    if (SECRET_PROPERTIES.has(key)) continue;
    copy[key] = strip(child, depth + 1);
  }
  return copy;
}
