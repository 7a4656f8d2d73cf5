/**
 * `tsig-keys`: Kea's TSIGKeyInfo. Keys: name, algorithm, digest-bits, secret,
 * user-context, comment, and Kea 2.6+'s `secret-file` (the secret read from a
 * file when the configuration is parsed, as Kea does; config-get shows the
 * file, not the secret — d2-config.ts d2ConfigToJson). Kea 2.2 rejects
 * `secret-file`; Kea 3.x operators use it, so d2box takes it.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { contextShape, foldComment } from './common.js';
import { dnsNameError } from './domains.js';
import { parseTsigAlgorithm, TSIG_ALGORITHMS, type TsigAlgorithm } from '../dns/tsig.js';

/**
 * Decodes base64 as Kea's decoder: whitespace ignored, complete 4-character
 * groups required, padding bits must be zero. Returns bytes or Kea's complaint.
 */
export function decodeKeaBase64(secret: string): { ok: true; bytes: Buffer } | { ok: false; error: string } {
  const s = secret.replace(/[ \t\r\n]/g, '');
  const m = /^([A-Za-z0-9+/]*)(={0,2})$/.exec(s);
  if (!m) return { ok: false, error: 'attempt to decode a value not in base64 char set' };
  if (s.length % 4 !== 0) return { ok: false, error: `Incomplete input for base64: ${secret}` };
  const body = m[1]!;
  const pad = m[2]!.length;
  if (pad > 0) {
    const last = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.indexOf(body[body.length - 1]!);
    const unused = pad === 1 ? 0b11 : 0b1111;
    if ((last & unused) !== 0) return { ok: false, error: `Non 0 bits included in base64 padding: ${secret}` };
  }
  return { ok: true, bytes: Buffer.from(s, 'base64') };
}

export const TsigKeySchema = z
  .object({
    name: z.string().min(1, 'TSIG key name cannot be blank'),
    algorithm: z.string().min(1, 'TSIG key algorithm cannot be blank'),
    'digest-bits': z
      .int()
      .refine((n) => n === 0 || (n > 0 && n % 8 === 0), 'TSIG key digest-bits must either be zero or a positive, multiple of eight')
      .default(0),
    secret: z.string().min(1, 'TSIG key secret cannot be blank').optional(),
    'secret-file': z.string().min(1, 'TSIG key secret-file cannot be blank').optional(),
    ...contextShape,
  })
  .strict()
  .transform((k, ctx) => {
    // Kea: a secret-file wins over a secret.
    let secret = k.secret;
    if (k['secret-file'] !== undefined) {
      try {
        secret = readFileSync(k['secret-file'], 'utf8').trim();
        if (secret === '') ctx.addIssue({ code: 'custom', message: `tsig-key : Expected '${k['secret-file']}' to not be empty`, path: ['secret-file'] });
      } catch (e) {
        ctx.addIssue({ code: 'custom', message: `tsig-key : cannot read secret-file '${k['secret-file']}': ${(e as Error).message}`, path: ['secret-file'] });
        return z.NEVER;
      }
    } else if (secret === undefined) {
      ctx.addIssue({ code: 'invalid_type', expected: 'string', input: undefined, message: "missing parameter 'secret'", path: ['secret'] });
      return z.NEVER;
    }
    const nameErr = dnsNameError(k.name);
    if (nameErr) ctx.addIssue({ code: 'custom', message: `Cannot make D2TsigKey: ${nameErr}`, path: [] }); // Kea: at the key's map
    // The algorithm table lives with TSIG itself (src/dns/tsig.ts); names match case-insensitively, as Kea's.
    const alg = parseTsigAlgorithm(k.algorithm);
    if (!alg) {
      ctx.addIssue({ code: 'custom', message: `tsig-key : Unknown TSIG Key algorithm: ${k.algorithm}`, path: ['algorithm'] });
    } else {
      const bits = k['digest-bits'];
      const info = TSIG_ALGORITHMS[alg];
      if (bits > 0 && bits < info.minDigestBits) {
        ctx.addIssue({ code: 'custom', message: 'tsig-key: digest-bits too small :', path: ['digest-bits'] });
      } else if (bits > info.bits) {
        // Kea 2.2 accepts this and would sign with a MAC longer than the HMAC output.
        ctx.addIssue({ code: 'custom', message: `tsig-key: digest-bits too large : (${alg} produces ${info.bits} bits)`, path: ['digest-bits'] });
      }
    }
    const dec = decodeKeaBase64(secret ?? '');
    if (!dec.ok) {
      // Never echo a file's content: config-set could name any file the daemon can read.
      const fromFile = k['secret-file'] !== undefined;
      const message = fromFile ? `Cannot make D2TsigKey: the content of '${k['secret-file']}' is not a base64 secret` : `Cannot make D2TsigKey: ${dec.error}`;
      ctx.addIssue({ code: 'custom', message, path: fromFile ? ['secret-file'] : [] }); // Kea: at the key's map
    }
    return { ...foldComment(k, ctx), secret: secret ?? '', algorithm: alg ?? (k.algorithm as TsigAlgorithm) };
  });

export type TsigKeyConfig = z.output<typeof TsigKeySchema>;

export const TsigKeysSchema = z.array(TsigKeySchema).superRefine((keys, ctx) => {
  const seen = new Set<string>();
  keys.forEach((k, i) => {
    // Kea compares key names exactly ("k" and "K" are two keys).
    if (seen.has(k.name)) {
      ctx.addIssue({ code: 'custom', message: `Duplicate TSIG key name specified : ${k.name}`, path: [i, 'name'] });
    }
    seen.add(k.name);
  });
});

/** The key's secret as bytes (the schema guarantees it decodes). */
export function tsigSecretBytes(key: Pick<TsigKeyConfig, 'secret'>): Buffer {
  const d = decodeKeaBase64(key.secret);
  if (!d.ok) throw new Error(d.error);
  return d.bytes;
}
