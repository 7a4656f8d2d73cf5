/**
 * Every message ID the daemon can log is Kea 2.2's (Debian's kea-doc,
 * kea-messages.rst.txt: the authoritative list) or one of d2box's own, which carry a
 * D2BOX_ or HOOKS_ prefix and are listed in docs/log-messages.md.
 *
 * The IDs are found in the source, not listed by hand: every string literal in src/ and
 * workers/ shaped like an ID of Kea's families (DHCP_DDNS_, DCTL_, COMMAND_, HOOKS_, HTTP_,
 * D2BOX_), less the names of environment variables (read through process.env or listed as
 * variables), which share the D2BOX_ prefix. A log call whose ID is not a literal (a template
 * or a variable) is refused too, so that no ID can hide from this test.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const KEA_MESSAGES = '/usr/share/doc/kea/html/_sources/kea-messages.rst.txt';

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return /\.(ts|mts)$/.test(name) && !name.endsWith('.d.ts') ? [path] : [];
  });
}

const files = [...sources('src'), ...sources('workers')].map((path) => ({ path, text: readFileSync(path, 'utf8') }));

/** Names the source uses as environment variables. */
function environmentNames(): Set<string> {
  const names = new Set<string>();
  for (const { text } of files) {
    for (const m of text.matchAll(/process\.env\[\s*'([A-Z0-9_]+)'\s*\]|process\.env\.([A-Z0-9_]+)/g)) names.add((m[1] ?? m[2])!);
    for (const line of text.split('\n')) {
      if (!/\benv\b|VARIABLES/.test(line)) continue;
      for (const m of line.matchAll(/'((?:D2BOX|KEA)_[A-Z0-9_]+)'/g)) names.add(m[1]!);
    }
  }
  return names;
}

function loggedIds(): Map<string, string[]> {
  const env = environmentNames();
  const ids = new Map<string, string[]>();
  for (const { path, text } of files) {
    for (const m of text.matchAll(/'((?:DHCP_DDNS|DCTL|COMMAND|HOOKS|HTTP|D2BOX)_[A-Z0-9_]+)'/g)) {
      const id = m[1]!;
      if (env.has(id)) continue;
      ids.set(id, [...(ids.get(id) ?? []), path]);
    }
  }
  return ids;
}

function keaIds(): Set<string> {
  const text = readFileSync(KEA_MESSAGES, 'utf8');
  return new Set([...text.matchAll(/^\*\*([A-Z0-9_]+)\*\*$/gm)].map((m) => m[1]!));
}

function documentedIds(): Set<string> {
  // Only the table of d2box's own IDs; the table of renames above it names old IDs.
  const text = readFileSync('docs/log-messages.md', 'utf8').split("## d2box's own IDs")[1] ?? '';
  return new Set([...text.matchAll(/^\| `([A-Z0-9_]+)` \|/gm)].map((m) => m[1]!));
}

describe('message IDs', () => {
  it("Kea's list is the one expected (kea-doc 2.2 installed)", () => {
    const kea = keaIds();
    expect(kea.size).toBeGreaterThan(1000);
    expect(kea.has('DHCP_DDNS_FORWARD_REMOVE_RRS_REJECTED')).toBe(true);
  });

  it("every ID the daemon logs is Kea 2.2's or d2box's own, documented, with d2box's prefix", () => {
    const kea = keaIds();
    const documented = documentedIds();
    const ids = loggedIds();
    expect(ids.size).toBeGreaterThan(50);
    const unknown = [...ids].filter(([id]) => !kea.has(id) && !documented.has(id)).map(([id, where]) => `${id} (${where.join(', ')})`);
    expect(unknown).toEqual([]);
    // d2box's own IDs carry its prefixes; only Kea's (2.2, or 3.x where d2box has Kea 3's feature) go without.
    const ownWithoutPrefix = [...documented].filter((id) => !/^(D2BOX|HOOKS)_/.test(id) && !/Kea 3/.test(rowOf(id)));
    expect(ownWithoutPrefix).toEqual([]);
    // The documented list holds no ID the daemon no longer logs, and none that is Kea 2.2's.
    expect([...documented].filter((id) => !ids.has(id))).toEqual([]);
    expect([...documented].filter((id) => kea.has(id))).toEqual([]);
  });

  it('the IDs the issue named are gone, replaced by Kea 2.2 IDs', () => {
    const ids = loggedIds();
    for (const gone of ['DHCP_DDNS_FORWARD_REMOVE_REJECTED', 'DHCP_DDNS_NCR_LISTENING', 'DCTL_SHUTDOWN_REQUESTED', 'COMMAND_SOCKET_CLOSED', 'DCTL_CONTROL_SOCKET_OPEN_FAILED']) {
      expect(ids.has(gone), gone).toBe(false);
    }
    for (const kept of ['DHCP_DDNS_FORWARD_REMOVE_RRS_REJECTED', 'DHCP_DDNS_FORWARD_REMOVE_ADDRS_REJECTED', 'DCTL_SHUTDOWN_SIGNAL_RECVD', 'DHCP_DDNS_SHUTDOWN_COMMAND']) {
      expect(ids.has(kept), kept).toBe(true);
    }
  });

  it('no log call takes an ID this test cannot see (a template or a variable)', () => {
    const hidden: string[] = [];
    for (const { path, text } of files) {
      for (const m of text.matchAll(/\b(?:log|logger)\.(?:debug|info|warn|error|fatal)\(\s*([^\s'])/g)) {
        // A choice between literals (`a ? 'X' : 'Y'`) is seen like a literal.
        if (/^[^,`(]*?\?\s*'[A-Z0-9_]+'\s*:\s*'[A-Z0-9_]+'\s*,/.test(text.slice(m.index + m[0].length - 1, m.index + 300))) continue;
        const line = text.slice(0, m.index).split('\n').length;
        hidden.push(`${path}:${line}`);
      }
    }
    // The two sites that pass an ID on: each caller's literal is seen above.
    expect(hidden.filter((h) => !ALLOWED_INDIRECT.some((a) => h.startsWith(a)))).toEqual([]);
  });
});

/** Sites that log an ID handed to them by their callers, whose literals are in the source. */
const ALLOWED_INDIRECT = ['src/d2/d2-update-mgr.ts:', 'src/d2/name-change-transaction.ts:'];

function rowOf(id: string): string {
  return readFileSync('docs/log-messages.md', 'utf8').split('\n').find((l) => l.startsWith(`| \`${id}\` |`)) ?? '';
}
