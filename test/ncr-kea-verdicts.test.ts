import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeNcr } from '../src/ncr/wire.js';
import { CASES, caseDatagram } from './fixtures/ncr/cases.js';

// Recorded by test/fixtures/ncr/kea-diff.ts against Debian's kea-dhcp-ddns 2.2.0 on loopback:
// accept = Kea sent a DNS UPDATE for the NCR, reject = DHCP_DDNS_INVALID_NCR, crash = the process exited.
const recorded = JSON.parse(readFileSync(new URL('./fixtures/ncr/kea-2.2.0-verdicts.json', import.meta.url), 'utf8')) as {
  kea: string;
  verdicts: Record<string, { verdict: string; detail?: string }>;
};

describe('NCR verdicts: each case as d2box expects it, and as real Kea 2.2.0 judged it', () => {
  it('every case was run through real Kea', () => {
    expect(recorded.kea).toBe('2.2.0');
    for (const c of CASES) expect(recorded.verdicts[c.name], c.name).toBeDefined();
  });

  for (const c of CASES) {
    it(c.name, () => {
      const r = decodeNcr(caseDatagram(c));
      if (c.expect === 'accept') {
        expect(r.ok, r.ok ? '' : r.reason).toBe(true);
      } else {
        expect(r.ok).toBe(false);
        if (!r.ok) {
          expect(r.code).toBe(c.expect.code);
          expect(r.field).toBe(c.expect.field);
          if (c.expect.field) expect(r.reason).toContain(c.expect.field);
        }
      }
      const kea = recorded.verdicts[c.name]!.verdict;
      const ours = c.expect === 'accept' ? 'accept' : 'reject';
      if (c.deviation === undefined) {
        expect(kea, `Kea ${kea}, d2box ${ours}`).toBe(ours);
      } else {
        // a documented deviation: Kea really does differ (or crash) here
        expect(kea === 'crash' || kea !== ours, c.deviation).toBe(true);
      }
    });
  }
});
