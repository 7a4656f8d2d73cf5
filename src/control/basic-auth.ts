/**
 * HTTP basic authentication of a control socket, as Kea's BasicHttpAuthConfig
 * (src/lib/http/basic_auth_config.cc): credentials from `clients`, each a
 * `user` or `user-file` and a `password` or `password-file` (files read
 * relative to `directory`, trailing newline dropped), or a `password-file`
 * alone holding `user:password`.
 *
 * The check compares SHA-256 digests of the whole `user:password` with
 * timingSafeEqual against every configured client, so neither how much of a
 * guess was right nor which client matched shows in the time it takes.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import type { AuthenticationConfig } from '../config/control-sockets.js';

export interface BasicAuth {
  realm: string;
  /** True when the Authorization header names a configured client. */
  check(header: string | undefined): boolean;
}

/** A credential file's content, as Kea's getFileContent: the first line. */
function readCredential(directory: string, file: string): string {
  const path = isAbsolute(file) || directory === '' ? file : join(directory, file);
  const text = readFileSync(path, 'utf8');
  return text.replace(/\r?\n[\s\S]*$/, '');
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** Reads every credential file now: a missing one fails the configuration, as in Kea. */
export function loadBasicAuth(config: AuthenticationConfig): BasicAuth {
  const secrets: Buffer[] = [];
  for (const c of config.clients) {
    let user: string;
    let password: string;
    if (c.user === undefined && c['user-file'] === undefined) {
      const content = readCredential(config.directory, c['password-file']!);
      const colon = content.indexOf(':');
      if (colon < 0) throw new Error(`can't find the user id part in password-file '${c['password-file']}'`);
      user = content.slice(0, colon);
      password = content.slice(colon + 1);
    } else {
      user = c.user ?? readCredential(config.directory, c['user-file']!);
      password = c.password ?? (c['password-file'] !== undefined ? readCredential(config.directory, c['password-file']) : '');
    }
    if (user === '') throw new Error(`user must not be empty${c['user-file'] ? ` from user-file '${c['user-file']}'` : ''}`);
    if (user.includes(':')) throw new Error(`user must not contain a ':'${c['user-file'] ? ` from user-file '${c['user-file']}'` : ''}`);
    secrets.push(digest(`${user}:${password}`));
  }
  return {
    realm: config.realm,
    check(header) {
      // Kea: no clients configured means no check.
      if (secrets.length === 0) return true;
      const value = header?.trim() ?? '';
      if (value.length < 8 || value.slice(0, 6).toLowerCase() !== 'basic ') return false;
      const given = digest(Buffer.from(value.slice(6).trim(), 'base64').toString('utf8'));
      let match = false;
      for (const s of secrets) match = timingSafeEqual(s, given) || match;
      return match;
    },
  };
}
