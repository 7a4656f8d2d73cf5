import { describe, expect, it } from 'vitest';
import type { RemoteInfo } from 'node:dgram';
import { decodeNcr } from '../src/ncr/wire.js';
import { NcrListener } from '../src/ncr/ncr-listener.js';
import { Logger, stderrSink } from '../src/log/logger.js';
import { CASES, caseDatagram } from './fixtures/ncr/cases.js';

// xorshift32: deterministic, so a failure reproduces
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x100000000;
  };
}

const rinfo: RemoteInfo = { address: '127.0.0.1', family: 'IPv4', port: 9, size: 0 };
const valid = CASES.filter((c) => c.expect === 'accept').map(caseDatagram);

function mutate(r: () => number, src: Buffer): Buffer {
  const b = Buffer.from(src);
  const kind = Math.floor(r() * 5);
  const n = 1 + Math.floor(r() * 4);
  if (kind === 0) for (let i = 0; i < n; i++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256); // byte flips
  if (kind === 1) return b.subarray(0, Math.floor(r() * b.length)); // truncation
  if (kind === 2) {
    // splice JSON-significant characters
    const chars = '{}[]",:\\0-+.eE \n';
    for (let i = 0; i < n; i++) b[2 + Math.floor(r() * (b.length - 2))] = chars.charCodeAt(Math.floor(r() * chars.length));
  }
  if (kind === 3) b.writeUInt16BE(Math.floor(r() * 65536), 0); // length prefix
  if (kind === 4) {
    // duplicate a slice
    const a = 2 + Math.floor(r() * (b.length - 2));
    const e = Math.min(b.length, a + Math.floor(r() * 20));
    return Buffer.concat([b, b.subarray(a, e)]);
  }
  return b;
}

describe('NCR decoder fuzz', () => {
  it('random bytes and mutated valid frames: never throws, every datagram counted once', () => {
    const r = rng(0xd2b0c5);
    const lines: string[] = [];
    Logger.setSink((rec) => lines.push(rec.id));
    let accepted = 0;
    let rejected = 0;
    const listener = new NcrListener({
      onNcr: () => accepted++,
      onInvalid: (e) => {
        expect(e.reason.length).toBeGreaterThan(0);
        rejected++;
      },
    });
    const N = 20000;
    try {
      for (let i = 0; i < N; i++) {
        let d: Buffer;
        if (i % 4 === 0) {
          d = Buffer.alloc(Math.floor(r() * 300));
          for (let k = 0; k < d.length; k++) d[k] = Math.floor(r() * 256);
          if (i % 8 === 0 && d.length >= 2) d.writeUInt16BE(d.length - 2, 0); // a plausible prefix
        } else {
          d = mutate(r, valid[Math.floor(r() * valid.length)]!);
        }
        const res = decodeNcr(d); // must not throw
        expect(typeof res.ok).toBe('boolean');
        listener.handle(d, rinfo);
      }
    } finally {
      Logger.setSink(stderrSink);
    }
    const s = listener.stats();
    expect(accepted + rejected).toBe(N);
    expect(s.received + s.invalid).toBe(N);
    expect(s.received).toBe(accepted);
    expect(Object.values(s.invalidByCode).reduce((a, b) => a + b, 0)).toBe(s.invalid);
    // mutation produced both outcomes, and every reason was logged once at most
    expect(accepted).toBeGreaterThan(0);
    expect(rejected).toBeGreaterThan(N / 2);
    const invalidLogs = lines.filter((l) => l === 'DHCP_DDNS_INVALID_NCR').length;
    expect(invalidLogs).toBeLessThanOrEqual(10 * 12);
    expect(invalidLogs).toBeLessThan(rejected / 10);
  });
});
