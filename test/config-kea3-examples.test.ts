/**
 * `d2box -t` takes the configurations a Kea 3.x operator writes. Kea's own
 * D2 examples (doc/examples/ddns/ in Kea's source) are not copied here; these
 * are small configurations written for this test with the same 3.x syntax:
 * control-sockets with unix, http and https entries, authentication with
 * inline and file credentials, comments in every map, a bare socket name.
 * Kea's examples that also load Kea's C++ hook libraries (ddns-server-commands.so,
 * libddns_gss_tsig.so) use more than D2 itself offers and are not claimed.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, tempDir } from './control-daemon.js';

const tmp = tempDir('d2box-kea3-');
afterAll(() => tmp.cleanup());
const socketDir = join(tmp.dir, 'run');
mkdirSync(socketDir);
const secretFile = join(tmp.dir, 'tsig.secret');
writeFileSync(secretFile, 'LSWXnfkKZjdPJI5QxlpnfQ==\n');

function check(name: string, text: string) {
  const file = join(tmp.dir, name);
  writeFileSync(file, text);
  return spawnSync(process.execPath, [CLI, '-t', file], {
    encoding: 'utf8',
    timeout: 20_000,
    env: { ...process.env, D2BOX_CONTROL_SOCKET_DIR: socketDir },
  });
}

// Like Kea's comments.json: a comment in every map, a unix socket by bare name, HTTP with basic authentication on ::1.
const COMMENTED = `{
"DhcpDdns": {
    "comment": "the DDNS server of the lab",
    "ip-address": "127.0.0.1",
    "port": 53001,
    "dns-server-timeout": 1000,
    "control-sockets": [
        { "socket-type": "unix", "socket-name": "d2-ctrl", "user-context": { "comment": "the local socket" } },
        {
            "comment": "operators over HTTP",
            "socket-type": "http",
            "socket-address": "::1",
            "socket-port": 8053,
            "authentication": {
                "comment": "basic authentication",
                "type": "basic",
                "clients": [ { "comment": "the operator", "user": "ops", "password": "a-long-one" } ]
            }
        }
    ],
    "forward-ddns": { "ddns-domains": [ {
        "comment": "the lab zone", "name": "lab.example.", "key-name": "lab.key",
        "dns-servers": [ { "comment": "its primary", "ip-address": "192.0.2.53" } ]
    } ] },
    "tsig-keys": [ { "comment": "the lab key", "name": "lab.key", "algorithm": "HMAC-SHA256", "secret": "LSWXnfkKZjdPJI5QxlpnfQ==" } ],
    "loggers": [ { "comment": "one logger", "name": "kea-dhcp-ddns", "severity": "info" } ]
}
}`;

// Like Kea's all-keys.json without its C++ hook library: https with a client certificate, every authentication key,
// a TSIG key from a secret-file, the output-options spelling.
// -t does not open the TLS or credential files (neither does Kea's): they need not exist.
const ALL_SOCKET_KEYS = `{
"DhcpDdns": {
    "ip-address": "127.0.0.1",
    "port": 53001,
    "dns-server-timeout": 100,
    "ncr-protocol": "UDP",
    "ncr-format": "JSON",
    "control-sockets": [
        { "socket-type": "unix", "socket-name": "d2-ctrl" },
        {
            "socket-type": "https",
            "socket-address": "127.0.0.1",
            "socket-port": 8053,
            "trust-anchor": "/etc/d2box/ca.pem",
            "cert-file": "/etc/d2box/d2.pem",
            "key-file": "/etc/d2box/d2.key",
            "cert-required": true,
            "authentication": {
                "type": "basic",
                "realm": "d2box",
                "directory": "/etc/d2box/creds",
                "clients": [
                    { "user": "admin", "password": "a-long-one" },
                    { "user-file": "user", "password-file": "password" },
                    { "password-file": "user-and-password" }
                ]
            }
        }
    ],
    "forward-ddns": { "ddns-domains": [ { "name": "example.com.", "key-name": "from-file",
        "dns-servers": [ { "ip-address": "2001:db8:1::10", "port": 7802 } ] } ] },
    "reverse-ddns": { "ddns-domains": [] },
    "tsig-keys": [ { "name": "from-file", "algorithm": "HMAC-SHA1", "secret-file": "SECRET_FILE" } ],
    "loggers": [ { "name": "kea-dhcp-ddns", "severity": "INFO", "debuglevel": 99,
        "output-options": [ { "output": "stdout", "flush": true, "maxsize": 10240000, "maxver": 1,
                              "pattern": "%D{%Y-%m-%d %H:%M:%S.%q} %-5p [%c/%i] %m\\n" } ] } ],
    "user-context": { }
}
}`;

// Like Kea's template.json: little more than the defaults, an empty control-sockets list.
const MINIMAL = `{ "DhcpDdns": { "ip-address": "127.0.0.1", "port": 53001, "control-sockets": [ ],
    "forward-ddns": { "ddns-domains": [ ] }, "reverse-ddns": { "ddns-domains": [ ] } } }`;

describe('d2box -t with Kea 3.x configurations', () => {
  it.each([
    ['commented.json', COMMENTED],
    ['all-socket-keys.json', ALL_SOCKET_KEYS.replace('SECRET_FILE', secretFile)],
    ['minimal.json', MINIMAL],
  ])('accepts %s', (name, text) => {
    const r = check(name, text);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it.each([
    ['an unknown socket type', { 'socket-type': 'tcp', 'socket-name': 'x' }, /unsupported 'socket-type' 'tcp' not 'unix', 'http' or 'https'/],
    ['an http key on a unix socket', { 'socket-type': 'unix', 'socket-name': 'x', 'socket-port': 8000 }, /parameter 'socket-port' is not supported by UNIX control sockets/],
    ['a socket-name on an http socket', { 'socket-type': 'http', 'socket-name': 'x', authentication: { type: 'basic' } }, /parameter 'socket-name' is not supported by HTTP control sockets/],
    ['https without TLS', { 'socket-type': 'https' }, /no TLS setup for a HTTPS control socket/],
    ['half a TLS setup', { 'socket-type': 'https', 'trust-anchor': '/ca.pem', 'cert-file': '/c.pem' }, /key-file parameter is missing or empty: all or none of TLS parameters must be set/],
    ['http with neither authentication nor TLS', { 'socket-type': 'http' }, /Unsecured HTTP control channel/],
    ['an authentication type other than basic', { 'socket-type': 'http', authentication: { type: 'digest' } }, /only basic HTTP authentication is supported: type is 'digest' not 'basic'/],
    ['an unknown key', { 'socket-type': 'http', authentication: { type: 'basic' }, 'socket-timeout': 5 }, /got unexpected keyword "socket-timeout" in control-sockets map/],
    ['a unix socket outside the socket directory', { 'socket-type': 'unix', 'socket-name': '/var/tmp/d2-ctrl' }, /'socket-name' is invalid: invalid path specified: '\/var\/tmp', supported path is '.*\/run'/],
  ])('refuses %s, saying why', (_what, socket, why) => {
    const r = check('bad.json', JSON.stringify({ DhcpDdns: { 'control-sockets': [socket] } }));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(why);
  });
});
