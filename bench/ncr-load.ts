/**
 * The benchmark's NCR sender: the same for every daemon. It sends framed NCRs
 * (Kea's wire format, Kea 2.2 JSON) over UDP with at most `window` of them in
 * flight, and learns of completions only from outside the daemon — from the
 * UPDATE observer (bench/update-responder.ts), which sees each NCR's last
 * UPDATE answered. An NCR that does not complete within `lostAfterMs` is
 * counted lost and frees its slot (Kea's D2 acknowledges nothing and drops what
 * overflows its queue). Every loop is bounded in count and time.
 */
import dgram from 'node:dgram';
import { appendFileSync } from 'node:fs';
import { createNcr, type NameChangeRequest } from '../src/ncr/name-change-request.js';
import { encodeNcr } from '../src/ncr/wire.js';

/** Datagrams sent per turn of the event loop, at most. */
const BURST = 32;

export const hrMs = (): number => Number(process.hrtime.bigint()) / 1e6;

/** Indexes map to IPv4 10.a.b.c and FQDN h<index>.<zone>; index < 2^24. */
export function ncrFor(index: number, changeType: 0 | 1, forwardZone: string): NameChangeRequest {
  const a = (index >> 16) & 0xff;
  const b = (index >> 8) & 0xff;
  const c = index & 0xff;
  // RFC 4701 DHCID: identifier type 0x0002 (DUID), digest type 1, then a 32-octet digest (unique per index).
  const digest = Buffer.alloc(32);
  digest.writeUInt32BE(index, 0);
  digest.writeUInt32BE(0xd2b0c5, 28);
  const r = createNcr({
    changeType,
    forwardChange: true,
    reverseChange: true,
    fqdn: `h${index}.${forwardZone}`,
    ipAddress: `10.${a}.${b}.${c}`,
    dhcid: Buffer.concat([Buffer.from([0x00, 0x02, 0x01]), digest]),
    leaseExpiresOn: Math.floor(Date.now() / 1000) + 3600,
    leaseLength: 3600,
    conflictResolutionMode: 'check-with-dhcid',
  });
  if (!r.ok) throw new Error(`bench NCR ${index}: ${r.reason}`);
  return r.ncr;
}

export interface LoadOptions {
  port: number;
  /** First index and count; NCR i has index first+i. */
  first: number;
  count: number;
  changeType: 0 | 1;
  forwardZone: string;
  window: number;
  lostAfterMs: number;
  /** Bound on the whole phase. */
  deadlineMs: number;
}

export interface LoadResult {
  sent: number;
  completed: number;
  lost: number[];
  /** Completion latencies, ms, of the completed NCRs. */
  latencies: number[];
  startMs: number;
  endMs: number;
}

/** Completions reported by the observer. */
export interface CompletionSource {
  onDone(handler: ((idx: number[], t: number[]) => void) | undefined): void;
}

export async function runLoad(opts: LoadOptions, source: CompletionSource): Promise<LoadResult> {
  const frames: Buffer[] = [];
  for (let i = 0; i < opts.count; i++) frames.push(encodeNcr(ncrFor(opts.first + i, opts.changeType, opts.forwardZone), 'kea-2.2'));
  const sock = dgram.createSocket('udp4');
  sock.on('error', () => undefined);
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  sock.setSendBufferSize(4 * 1024 * 1024);

  const sentAt = new Float64Array(opts.count); // 0 = not sent
  const state = new Uint8Array(opts.count); // 0 waiting, 1 in flight, 2 done, 3 lost
  const latencies: number[] = [];
  /** D2BENCH_DUMP=file: each completion as "ms since the phase began, latency ms" (for looking at tails); the header gives the phase's start on the process.hrtime clock (CLOCK_MONOTONIC, the same in every process). */
  const dump: string[] | undefined = process.env['D2BENCH_DUMP'] ? [] : undefined;
  const lost: number[] = [];
  let next = 0;
  let inFlight = 0;
  let completed = 0;
  let oldest = 0; // lowest index that may still be in flight
  const startMs = hrMs();
  let endMs = startMs;

  // At most BURST datagrams per turn of the event loop: a whole window sent in one go
  // overflows the daemon's default socket receive buffer (about 166 NCRs at 208 KB)
  // before any daemon can read, and the kernel drops the rest.
  let burstScheduled = false;
  const fill = (): void => {
    let burst = 0;
    while (inFlight < opts.window && next < opts.count) {
      if (burst++ === BURST) {
        if (!burstScheduled) {
          burstScheduled = true;
          setImmediate(() => {
            burstScheduled = false;
            if (!finished) fill();
          });
        }
        return;
      }
      const i = next++;
      sentAt[i] = hrMs();
      state[i] = 1;
      inFlight++;
      sock.send(frames[i]!, opts.port, '127.0.0.1');
    }
  };

  let finished = false;
  return new Promise<LoadResult>((resolve) => {
    const finish = (): void => {
      if (finished) return;
      finished = true;
      clearInterval(tick);
      source.onDone(undefined);
      for (let i = 0; i < opts.count; i++) if (state[i] !== 2 && state[i] !== 3) lost.push(opts.first + i);
      if (dump) appendFileSync(process.env['D2BENCH_DUMP']!, `# phase ${opts.changeType} first ${opts.first} start ${startMs.toFixed(3)}\n${dump.join('\n')}\n`);
      sock.close();
      resolve({ sent: next, completed, lost, latencies, startMs, endMs });
    };
    source.onDone((idx, t) => {
      for (let k = 0; k < idx.length; k++) {
        const i = idx[k]! - opts.first;
        if (i < 0 || i >= opts.count || state[i] !== 1) continue; // another phase's, or counted already
        state[i] = 2;
        inFlight--;
        completed++;
        latencies.push(t[k]! - sentAt[i]!);
        if (dump) dump.push(`${(sentAt[i]! - startMs).toFixed(2)} ${(t[k]! - sentAt[i]!).toFixed(2)}`);
        if (t[k]! > endMs) endMs = t[k]!;
      }
      if (completed + lost.length >= opts.count) finish();
      else fill();
    });
    const tick = setInterval(() => {
      const now = hrMs();
      // Lost: in flight for longer than lostAfterMs (scan from the oldest, bounded by count).
      while (oldest < next && state[oldest] !== 1) oldest++;
      for (let i = oldest; i < next; i++) {
        if (state[i] === 1 && now - sentAt[i]! > opts.lostAfterMs) {
          state[i] = 3;
          inFlight--;
          lost.push(opts.first + i);
        }
        if (now - sentAt[i]! <= opts.lostAfterMs) break;
      }
      if (completed + lost.length >= opts.count || now - startMs > opts.deadlineMs) finish();
      else fill();
    }, 50);
    fill();
  });
}
