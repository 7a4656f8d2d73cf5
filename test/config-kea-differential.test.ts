/**
 * Differential test against the real Kea 2.2 D2: every configuration under
 * test/fixtures/config/differential/ goes through `kea-dhcp-ddns -t` and through
 * parseD2Config; both must accept or both must reject, except for the few
 * deliberate differences listed below, where each side's verdict is asserted.
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
    }
  });

  it('both accept the bundled example configuration', async () => {
    expect((await keaAccepts(EXAMPLE)).ok).toBe(true);
    const r = parseD2Config(readFileSync(EXAMPLE, 'utf8'), { file: EXAMPLE });
    expect(r.ok).toBe(true);
  });
});
