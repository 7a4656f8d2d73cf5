/**
 * The benchmark's observer of DNS UPDATEs, run in a worker thread of the
 * benchmark process (bench/d2-bench.ts), outside the daemon under test:
 *
 *  - mode `respond`: a fast UPDATE responder. Every UPDATE is answered NOERROR
 *    and, when signed, the answer is signed with TSIG (src/dns/tsig.ts) over the
 *    request MAC, as Kea and d2box require. The request's own MAC is not
 *    verified (BIND does that in the other mode): the responder must cost as
 *    little as possible, so requests are only walked, never fully decoded.
 *  - mode `proxy`: a UDP relay in front of a real BIND 9. Requests are passed on
 *    unchanged, answers passed back unchanged; nothing is answered by the relay.
 *
 * In both modes it counts UPDATEs per zone, and reports an NCR complete when
 * the answer to its reverse-zone UPDATE (the last step of every add and remove
 * transaction) is NOERROR: the NCR's index is read from the reverse owner name
 * (10.a.b.c → a·65536 + b·256 + c). Completions go to the parent in batches,
 * each with its process.hrtime time (CLOCK_MONOTONIC, shared by all threads).
 */
import dgram from 'node:dgram';
import { parentPort, workerData } from 'node:worker_threads';
import { signMessage, TsigKey } from '../src/dns/tsig.js';

export interface ResponderOptions {
  mode: 'respond' | 'proxy';
  /** The reverse zone whose UPDATEs complete NCRs, e.g. "10.in-addr.arpa". */
  reverseZone: string;
  key: { name: string; algorithm: string; secret: string };
  /** proxy mode: BIND's port on 127.0.0.1. */
  upstreamPort?: number;
}

/** Messages to the parent. */
export type ResponderMessage =
  | { type: 'ready'; port: number }
  | { type: 'done'; idx: number[]; t: number[] }
  | { type: 'counts'; seq: number; zones: Record<string, number>; rcodes: Record<string, number>; malformed: number; unsigned: number };

/** Messages from the parent. */
export type ResponderCommand = { type: 'counts'; seq: number; reset?: boolean } | { type: 'stop' };

const hr = (): number => Number(process.hrtime.bigint()) / 1e6; // ms, monotonic

/** Labels of the name at `pos`, following compression pointers; returns the labels (lowercased) and the offset after the name. */
function readName(msg: Buffer, pos: number): { labels: string[]; next: number } | null {
  const labels: string[] = [];
  let next = -1;
  for (let hops = 0; hops < 64; hops++) {
    if (pos >= msg.length) return null;
    const len = msg[pos]!;
    if (len === 0) return { labels, next: next < 0 ? pos + 1 : next };
    if ((len & 0xc0) === 0xc0) {
      if (pos + 1 >= msg.length) return null;
      if (next < 0) next = pos + 2;
      pos = ((len & 0x3f) << 8) | msg[pos + 1]!;
      continue;
    }
    if (pos + 1 + len > msg.length) return null;
    labels.push(msg.toString('latin1', pos + 1, pos + 1 + len).toLowerCase());
    pos += 1 + len;
  }
  return null;
}

/** Offset after the name at `pos` (no decoding). */
function skipName(msg: Buffer, pos: number): number {
  for (let i = 0; i < 128; i++) {
    if (pos >= msg.length) return -1;
    const len = msg[pos]!;
    if (len === 0) return pos + 1;
    if ((len & 0xc0) === 0xc0) return pos + 2;
    pos += 1 + len;
  }
  return -1;
}

interface Walked {
  id: number;
  zone: string;
  /** NCR index from the reverse owner name, or -1. */
  idx: number;
  /** End of the question section. */
  questionEnd: number;
  /** The request MAC, when signed. */
  mac: Buffer | undefined;
}

function walk(msg: Buffer, reverseLabels: number, reverseZone: string): Walked | null {
  if (msg.length < 12) return null;
  const id = msg.readUInt16BE(0);
  const qd = msg.readUInt16BE(4);
  const rrs = msg.readUInt16BE(6) + msg.readUInt16BE(8);
  const ar = msg.readUInt16BE(10);
  if (qd !== 1) return null;
  const q = readName(msg, 12);
  if (!q) return null;
  const zone = q.labels.join('.');
  let pos = q.next + 4;
  const questionEnd = pos;
  let idx = -1;
  let mac: Buffer | undefined;
  const total = rrs + ar;
  for (let i = 0; i < total; i++) {
    const start = pos;
    if (i === 0 && zone === reverseZone) {
      const owner = readName(msg, pos);
      if (!owner) return null;
      const l = owner.labels;
      if (l.length === 3 + reverseLabels) idx = Number(l[2]) * 65536 + Number(l[1]) * 256 + Number(l[0]);
    }
    pos = skipName(msg, pos);
    if (pos < 0 || pos + 10 > msg.length) return null;
    const type = msg.readUInt16BE(pos);
    const rdlen = msg.readUInt16BE(pos + 8);
    const rdata = pos + 10;
    pos = rdata + rdlen;
    if (pos > msg.length) return null;
    if (type === 250 && i === total - 1) {
      // TSIG: algorithm name, time (6), fudge (2), MAC size (2), MAC.
      const a = skipName(msg, rdata);
      if (a < 0 || a + 10 > pos) return null;
      const macLen = msg.readUInt16BE(a + 8);
      mac = Buffer.from(msg.subarray(a + 10, a + 10 + macLen));
    }
    void start;
  }
  return { id, zone, idx, questionEnd, mac };
}

function main(): void {
  const opts = workerData as ResponderOptions;
  const port = parentPort!;
  const key = TsigKey.create({ name: opts.key.name, algorithm: opts.key.algorithm, secret: opts.key.secret });
  const reverseZone = opts.reverseZone.replace(/\.$/, '').toLowerCase();
  const reverseLabels = reverseZone.split('.').length;
  const zones: Record<string, number> = {};
  const rcodes: Record<string, number> = {};
  let malformed = 0;
  let unsigned = 0;
  let doneIdx: number[] = [];
  let doneT: number[] = [];
  let flushScheduled = false;
  const flush = (): void => {
    flushScheduled = false;
    if (doneIdx.length === 0) return;
    port.postMessage({ type: 'done', idx: doneIdx, t: doneT } satisfies ResponderMessage);
    doneIdx = [];
    doneT = [];
  };
  const complete = (idx: number): void => {
    doneIdx.push(idx);
    doneT.push(hr());
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flush);
    }
  };

  const sock = dgram.createSocket('udp4');
  let upstream: dgram.Socket | undefined;
  /** proxy: request id → where to send the answer and which NCR it completes. */
  const waiting = new Map<number, { address: string; port: number; idx: number }>();

  sock.on('message', (msg, rinfo) => {
    const w = walk(msg, reverseLabels, reverseZone);
    if (!w) {
      malformed++;
      return;
    }
    zones[w.zone] = (zones[w.zone] ?? 0) + 1;
    if (opts.mode === 'proxy') {
      waiting.set(w.id, { address: rinfo.address, port: rinfo.port, idx: w.idx });
      upstream!.send(msg, opts.upstreamPort!, '127.0.0.1');
      return;
    }
    // respond: header (QR, opcode UPDATE, NOERROR; 1 zone record), the zone record copied, TSIG.
    const body = Buffer.allocUnsafe(w.questionEnd);
    msg.copy(body, 0, 0, w.questionEnd);
    body[2] = 0x80 | (5 << 3);
    body[3] = 0;
    body.writeUInt16BE(1, 4);
    body.writeUInt16BE(0, 6);
    body.writeUInt16BE(0, 8);
    body.writeUInt16BE(0, 10);
    let out: Buffer = body;
    if (w.mac) out = signMessage(body, key, { requestMac: w.mac }).wire;
    else unsigned++;
    sock.send(out, rinfo.port, rinfo.address);
    rcodes['NOERROR'] = (rcodes['NOERROR'] ?? 0) + 1;
    if (w.idx >= 0) complete(w.idx);
  });

  const bound = (p: number): void => port.postMessage({ type: 'ready', port: p } satisfies ResponderMessage);
  if (opts.mode === 'proxy') {
    upstream = dgram.createSocket('udp4');
    upstream.on('message', (msg) => {
      if (msg.length < 12) return;
      const id = msg.readUInt16BE(0);
      const to = waiting.get(id);
      if (!to) return;
      waiting.delete(id);
      const rcode = msg[3]! & 0x0f;
      const name = rcode === 0 ? 'NOERROR' : `RCODE${rcode}`;
      rcodes[name] = (rcodes[name] ?? 0) + 1;
      sock.send(msg, to.port, to.address);
      if (rcode === 0 && to.idx >= 0) complete(to.idx);
    });
    upstream.bind(0, '127.0.0.1');
  }
  sock.bind(0, '127.0.0.1', () => bound(sock.address().port));

  port.on('message', (cmd: ResponderCommand) => {
    if (cmd.type === 'counts') {
      flush();
      port.postMessage({ type: 'counts', seq: cmd.seq, zones: { ...zones }, rcodes: { ...rcodes }, malformed, unsigned } satisfies ResponderMessage);
      if (cmd.reset) {
        for (const k of Object.keys(zones)) delete zones[k];
        for (const k of Object.keys(rcodes)) delete rcodes[k];
        malformed = 0;
        unsigned = 0;
        waiting.clear();
      }
    } else if (cmd.type === 'stop') {
      flush();
      sock.close();
      upstream?.close();
      port.close();
    }
  });
}

if (parentPort && workerData && (workerData as { mode?: string }).mode) main();
