/**
 * Kea 3.x's `control-sockets`: a list of unix, http and https control
 * sockets (src/bin/d2/d2_parser.yy, src/lib/config/unix_command_config.cc,
 * http_command_config.cc, src/lib/http/basic_auth_config.cc), in the form
 * Kea's toElement() writes back for config-get and config-write.
 *
 * Kea's D2 grammar has no `http-headers`; its DHCP servers' does, with the
 * same HttpCommandConfig behind it, and the issue asks for it: d2box takes it.
 * Kea's current development branch refuses clear-text `user`/`password` in
 * `clients`; Kea 3.0 and its own examples (doc/examples/ddns/comments.json)
 * use them, so d2box accepts them and logs that a file is safer.
 */
import { z } from 'zod';
import { contextShape, foldComment, isIpAddress } from './common.js';

export const HTTP_DEFAULTS = { 'socket-address': '127.0.0.1', 'socket-port': 8000 } as const;

const HTTP_ONLY_KEYS = ['socket-address', 'socket-port', 'authentication', 'trust-anchor', 'cert-file', 'key-file', 'cert-required', 'http-headers'] as const;

const AuthClientSchema = z
  .object({
    user: z.string().optional(),
    'user-file': z.string().optional(),
    password: z.string().optional(),
    'password-file': z.string().optional(),
    ...contextShape,
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.user !== undefined && c['user-file'] !== undefined) ctx.addIssue({ code: 'custom', message: 'user and user-file are mutually exclusive' });
    if (c.password !== undefined && c['password-file'] !== undefined) ctx.addIssue({ code: 'custom', message: 'password and password-file are mutually exclusive' });
    const passwordFileOnly = c.user === undefined && c['user-file'] === undefined && c['password-file'] !== undefined && c.password === undefined;
    if (c.user === undefined && c['user-file'] === undefined && !passwordFileOnly) ctx.addIssue({ code: 'custom', message: 'user is required in clients items' });
    if (c.user === '') ctx.addIssue({ code: 'custom', path: ['user'], message: 'user must not be empty' });
    if (c.user?.includes(':')) ctx.addIssue({ code: 'custom', path: ['user'], message: `user must not contain a ':': '${c.user}'` });
  })
  .transform((c, ctx) => foldComment(c, ctx));
export type AuthClientConfig = z.output<typeof AuthClientSchema>;

const AuthenticationSchema = z
  .object({
    type: z.string({ error: (i) => (i.input === undefined ? 'type is required in authentication' : undefined) })
      .refine((t) => t === 'basic', { error: (i) => `only basic HTTP authentication is supported: type is '${String(i.input)}' not 'basic'` }),
    realm: z.string().default(''),
    directory: z.string().default(''),
    clients: z.array(AuthClientSchema).default([]),
    ...contextShape,
  })
  .strict()
  .transform((a, ctx) => foldComment(a, ctx));
export type AuthenticationConfig = z.output<typeof AuthenticationSchema>;

const HttpHeaderSchema = z
  .object({
    name: z.string().min(1, 'http header name must not be empty'),
    value: z.string(),
    ...contextShape,
  })
  .strict()
  .transform((h, ctx) => foldComment(h, ctx));

export const ControlSocketEntrySchema = z
  .object({
    'socket-type': z.string({ error: (i) => (i.input === undefined ? "Mandatory 'socket-type' parameter missing" : undefined) })
      .refine((t) => t === 'unix' || t === 'http' || t === 'https', { error: (i) => `unsupported 'socket-type' '${String(i.input)}' not 'unix', 'http' or 'https'` }),
    'socket-name': z.string().optional(),
    'socket-address': z.string().refine(isIpAddress, { error: (i) => `failed to convert '${String(i.input)}' to address` }).optional(),
    'socket-port': z.int().refine((p) => p >= 0 && p <= 65535, { error: (i) => `out of range value ${String(i.input)} specified for parameter 'socket-port'` }).optional(),
    'http-headers': z.array(HttpHeaderSchema).optional(),
    authentication: AuthenticationSchema.optional(),
    'trust-anchor': z.string().optional(),
    'cert-file': z.string().optional(),
    'key-file': z.string().optional(),
    'cert-required': z.boolean().optional(),
    ...contextShape,
  })
  .strict()
  .superRefine((s, ctx) => {
    const type = s['socket-type'];
    if (type === 'unix') {
      for (const k of HTTP_ONLY_KEYS) if (s[k] !== undefined) ctx.addIssue({ code: 'custom', path: [k], message: `parameter '${k}' is not supported by UNIX control sockets` });
      if (s['socket-name'] === undefined) ctx.addIssue({ code: 'custom', message: "Mandatory 'socket-name' parameter missing" });
      else if (s['socket-name'] === '') ctx.addIssue({ code: 'custom', path: ['socket-name'], message: "'socket-name' must not be empty" });
      return;
    }
    if (type !== 'http' && type !== 'https') return;
    if (s['socket-name'] !== undefined) ctx.addIssue({ code: 'custom', path: ['socket-name'], message: `parameter 'socket-name' is not supported by ${type.toUpperCase()} control sockets` });
    const tls = [s['trust-anchor'], s['cert-file'], s['key-file']].map((v) => v !== undefined && v !== '');
    if (!tls.some(Boolean)) {
      if (type === 'https') ctx.addIssue({ code: 'custom', message: 'no TLS setup for a HTTPS control socket' });
      // Kea 3.x refuses a control channel anyone on the network path could drive.
      else if (s.authentication === undefined) ctx.addIssue({ code: 'custom', message: 'Unsecured HTTP control channel: give it "authentication" or TLS ("trust-anchor", "cert-file", "key-file")' });
    } else {
      (['trust-anchor', 'cert-file', 'key-file'] as const).forEach((k, i) => {
        if (!tls[i]) ctx.addIssue({ code: 'custom', path: [k], message: `${k} parameter is missing or empty: all or none of TLS parameters must be set` });
      });
    }
  })
  .transform((s, ctx) => {
    const folded = foldComment(s, ctx);
    if (s['socket-type'] === 'unix') {
      return { ...(folded['user-context'] ? { 'user-context': folded['user-context'] } : {}), 'socket-type': 'unix' as const, 'socket-name': s['socket-name']! };
    }
    // Kea's HttpCommandConfig::toElement(): defaults written out, TLS keys only when TLS is on.
    const tls = s['trust-anchor'] !== undefined && s['trust-anchor'] !== '';
    return {
      ...(folded['user-context'] ? { 'user-context': folded['user-context'] } : {}),
      'socket-type': s['socket-type'] as 'http' | 'https',
      'socket-address': s['socket-address'] ?? HTTP_DEFAULTS['socket-address'],
      ...(s['http-headers']?.length ? { 'http-headers': s['http-headers'] } : {}),
      'socket-port': s['socket-port'] ?? HTTP_DEFAULTS['socket-port'],
      ...(s.authentication ? { authentication: s.authentication } : {}),
      ...(tls ? { 'trust-anchor': s['trust-anchor']!, 'cert-file': s['cert-file']!, 'key-file': s['key-file']!, 'cert-required': s['cert-required'] ?? true } : {}),
    };
  });

export type ControlSocketEntry = z.output<typeof ControlSocketEntrySchema>;
export type UnixSocketEntry = Extract<ControlSocketEntry, { 'socket-type': 'unix' }>;
export type HttpSocketEntry = Exclude<ControlSocketEntry, UnixSocketEntry>;

export const ControlSocketsSchema = z.array(ControlSocketEntrySchema);
