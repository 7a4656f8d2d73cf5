/**
 * Differential test against the real Kea 2.2 D2: every configuration under
 * test/fixtures/config/differential/ goes through `kea-dhcp-ddns -t` and through
 * parseD2Config; both must accept or both must reject, except for the few
 * deliberate differences listed below, where each side's verdict is asserted.
 * Where both reject, the reason must be Kea's too: the same line and column and
 * the same words, except where docs/migrating-from-kea.md lists the difference
 * (REASON_DIFFERS below, one entry per case, each naming the documented reason).
 * CI installs kea-dhcp-ddns-server through scripts/setup.sh.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parseD2Config } from '../src/config/d2-config.js';

const run = promisify(execFile);
const DIR = join(import.meta.dirname, 'fixtures/config/differential');
const EXAMPLE = join(import.meta.dirname, '../examples/kea-dhcp-ddns.conf');

/** file → [Kea's verdict, d2box's verdict, why d2box differs]. */
const DELIBERATE: Record<string, [boolean, boolean, string]> = {
  'cs_tcp.json': [true, false, 'Kea -t accepts any socket-type but fails when it opens the channel; d2box refuses at parse time'],
  'cs_noname.json': [true, false, 'same: a control-socket without socket-name fails when Kea starts'],
  'dom_dupcase.json': [true, false, 'two domains differing only in case are the same zone; Kea then matches either'],
  'dom_dupdot.json': [true, false, 'd2box treats a trailing dot as insignificant, so these are one zone'],
  'key_db_big.json': [true, false, 'digest-bits above the HMAC output size cannot be signed'],
  'hooks_sandbox.json': [false, true, 'the "sandbox" key is d2box\'s dialect (DESIGN.md)'],
  'log_oo_dash.json': [false, true, '`output-options` is Kea 2.5+\'s spelling, taken as Kea 3.x takes it'],
  'key_secretfile.json': [false, false, 'Kea 2.2 does not know `secret-file`; d2box (as Kea 2.6+) reads it, and /tmp/x is no secret'],
};

/**
 * Cases where both reject but the reason differs on purpose, each under one of the
 * groups docs/migrating-from-kea.md ("Error messages") explains.
 */
const GRAMMAR = 'Kea rejects with its bison grammar ("syntax error, unexpected …, expecting …"); d2box names the rule broken';
const KEA_TEXT_BROKEN = "Kea's text is broken there (a crash, an internal error, a raw control character, an unclosed parenthesis)";
const EMPTY_STRING_POSITION = 'for an empty string Kea points one column before its opening quote';
const REASON_DIFFERS: Record<string, string> = {
  'arr_leadcomma.json': GRAMMAR,
  'cs_empty.json': GRAMMAR,
  'cs_namenum.json': GRAMMAR,
  'dom_emptyservers.json': GRAMMAR,
  'dupd2.json': GRAMMAR,
  'empty.json': GRAMMAR,
  'empty_file.json': GRAMMAR,
  'emptyd2.json': GRAMMAR,
  'fmtx.json': GRAMMAR,
  'hooks_comment.json': GRAMMAR,
  'log_oo_comment.json': GRAMMAR,
  'log_oo_empty.json': GRAMMAR,
  'log_oo_unk.json': GRAMMAR,
  'loggers_empty.json': GRAMMAR,
  'map_leadcomma.json': GRAMMAR,
  'ncr_num.json': GRAMMAR,
  'other.json': GRAMMAR,
  'two_maps.json': GRAMMAR,
  'dom_noservers.json': KEA_TEXT_BROKEN,
  'log_dbg100.json': KEA_TEXT_BROKEN,
  'log_dbgneg.json': KEA_TEXT_BROKEN,
  'c_unclosed.json': KEA_TEXT_BROKEN,
  'ws_ff.json': KEA_TEXT_BROKEN,
  'str_ctrl.json': KEA_TEXT_BROKEN,
  'str_u0100.json': KEA_TEXT_BROKEN,
  'hooks_nolib.json': KEA_TEXT_BROKEN,
  'dom_emptyname.json': EMPTY_STRING_POSITION,
  'key_emptyname.json': EMPTY_STRING_POSITION,
  'key_emptysecret.json': EMPTY_STRING_POSITION,
  'srv_host.json': EMPTY_STRING_POSITION,
};

interface Reason {
  /** line:column, or null when the text carries none. */
  at: string | null;
  text: string;
}

/**
 * Kea's last line, as `kea-dhcp-ddns -t` prints it: "Syntax check failed with: FILE:L.C[-C]: TEXT"
 * (its grammar; L:C for JSON errors) or "Error encountered: TEXT (FILE:L:C)" (its checks).
 */
function keaReason(out: string): Reason {
  const line = out.trim().split('\n').filter(Boolean).pop() ?? '';
  const s = line.replace(/^Syntax check failed with: /, '').replace(/^Error encountered: /, '');
  let m = /^\S+?:(\d+)[.:](\d+)(?:-\d+)?: (.*)$/.exec(s);
  if (m) return { at: `${m[1]}:${m[2]}`, text: m[3]! };
  m = /^(.*?) ?\(\S+?:(\d+):(\d+)\)$/.exec(s);
  if (m) return { at: `${m[2]}:${m[3]}`, text: m[1]! };
  return { at: null, text: s };
}

/** d2box's error: "FILE:L:C: TEXT (at JSON/PATH)"; the path is d2box's addition, the rest must be Kea's. */
function ourReason(error: string): Reason {
  const m = /^\S+?:(\d+):(\d+): (.*?)(?: \(at [^)]*\))?$/.exec(error);
  return m ? { at: `${m[1]}:${m[2]}`, text: m[3]! } : { at: null, text: error };
}

async function keaAccepts(file: string): Promise<{ ok: boolean; out: string }> {
  try {
    const r = await run('kea-dhcp-ddns', ['-t', file], { cwd: DIR, env: { ...process.env, KEA_LOCKFILE_DIR: 'none' } });
    return { ok: true, out: r.stdout + r.stderr };
  } catch (err) {
    const e = err as { code?: unknown; stdout?: string; stderr?: string };
    if (e.code === 'ENOENT') throw new Error('kea-dhcp-ddns is not installed (scripts/setup.sh installs kea-dhcp-ddns-server)');
    return { ok: false, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

function oursAccepts(file: string): { ok: boolean; out: string } {
  const r = parseD2Config(readFileSync(join(DIR, file), 'utf8'), { file, baseDir: DIR });
  return { ok: r.ok, out: r.ok ? 'ok' : r.error };
}

const files = readdirSync(DIR).filter((f) => f.endsWith('.json')).sort();

describe('kea-dhcp-ddns -t and parseD2Config agree', () => {
  it('has both good and bad cases', () => {
    expect(files.length).toBeGreaterThan(100);
  });

  it.each(files)('%s', async (file) => {
    const kea = await keaAccepts(file);
    const ours = oursAccepts(file);
    const deliberate = DELIBERATE[file];
    if (deliberate) {
      expect({ kea: kea.ok, ours: ours.ok }, `${deliberate[2]}\nkea: ${kea.out}\nours: ${ours.out}`).toEqual({ kea: deliberate[0], ours: deliberate[1] });
    } else {
      expect(ours.ok, `kea ${kea.ok ? 'accepts' : 'rejects'}: ${kea.out.trim().split('\n').pop()}\nours: ${ours.out}`).toBe(kea.ok);
      if (kea.ok) return;
      const differs = REASON_DIFFERS[file];
      if (differs) {
        // Listed: still check that it is different, so the list does not outlive the difference.
        expect(ourReason(ours.out), `listed as "${differs}" but the reasons agree now: drop it from REASON_DIFFERS`).not.toEqual(keaReason(kea.out));
      } else {
        expect(ourReason(ours.out), `Kea: ${kea.out.trim().split('\n').pop()}\nours: ${ours.out}`).toEqual(keaReason(kea.out));
      }
    }
  });

  it('both accept the bundled example configuration', async () => {
    expect((await keaAccepts(EXAMPLE)).ok).toBe(true);
    const r = parseD2Config(readFileSync(EXAMPLE, 'utf8'), { file: EXAMPLE });
    expect(r.ok).toBe(true);
  });
});
