/**
 * DnsClient against scripted UDP servers on loopback: matching by ID and
 * source, TSIG on answers, malformed answers, stray and garbage datagrams,
 * many requests in flight, close() and no leaked sockets or timers.
 */
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  D2UpdateMessage,
  decodeMessage,
  DnsClient,
  encodeMessage,
  Opcode,
  Rcode,
  rdataA,
  signMessage,
  TsigKey,
  type DecodedMessage,
} from '../src/dns/index.js';

type Responder = (req: Buffer, msg: DecodedMessage | null, send: (b: Buffer, from?: dgram.Socket) => void) => void;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function udp(): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => s.close(() => r())));
  return s;
}

/** A fake DNS server; `respond` decides what to send back (or nothing). */
async function fakeServer(respond: Responder) {
  const s = await udp();
  const received: Buffer[] = [];
  s.on('message', (m, rinfo) => {
    received.push(m);
    const d = decodeMessage(m);
    respond(m, d.ok ? d.value : null, (b, from = s) => from.send(b, rinfo.port, rinfo.address));
  });
  return { socket: s, addr: { address: '127.0.0.1', port: s.address().port }, received };
}

function client(timeoutMs = 2000): DnsClient {
  const c = new DnsClient({ timeoutMs });
  cleanups.push(() => c.close());
  return c;
}

const key = TsigKey.create({ name: 'k1', algorithm: 'HMAC-SHA256', secret: randomBytes(32) });
const upd = (host = 'h') => new D2UpdateMessage().setZone('example.com').addRR(`${host}.example.com`, 300, rdataA('192.0.2.1'));
const answerTo = (m: DecodedMessage, rcode: number = Rcode.NOERROR) => encodeMessage({ ...m, qr: true, rcode, answer: [], authority: [], additional: [] });
const signedAnswer = (m: DecodedMessage, rcode: number = Rcode.NOERROR, k = key) => signMessage(answerTo(m, rcode), k, { requestMac: m.tsig!.rdata.mac }).wire;

describe('DnsClient', () => {
  it('unsigned: resolves with the answer\'s rcode and the decoded response', async () => {
    const srv = await fakeServer((_r, m, send) => m && send(answerTo(m, Rcode.YXDOMAIN)));
    const c = client();
    const r = await c.update(srv.addr, upd());
    expect(r.status).toBe('success');
    expect(r.status === 'success' && r.rcode).toBe(Rcode.YXDOMAIN);
    expect(r.status === 'success' && r.signed).toBe(false);
    expect(srv.received).toHaveLength(1);
    expect(srv.received[0]!.readUInt16BE(0)).toBe(r.id);
    expect(c.stats).toMatchObject({ sent: 1, unsigned: 1, success: 1, error: 0 });
  });

  it('signed: verifies the signed answer with the request MAC', async () => {
    const srv = await fakeServer((_r, m, send) => m && send(signedAnswer(m)));
    const r = await client().update(srv.addr, upd(), { key });
    expect(r.status).toBe('success');
    expect(r.status === 'success' && r.signed && r.response.tsig?.rdata.mac.length).toBe(32);
  });

  it('signed request, unsigned answer: tsig-error (FORMERR), as Kea', async () => {
    const srv = await fakeServer((_r, m, send) => m && send(answerTo(m)));
    const c = client();
    const r = await c.update(srv.addr, upd(), { key });
    expect(r.status).toBe('tsig-error');
    expect(r.status !== 'success' && r.tsigError).toBe(Rcode.FORMERR);
    expect(r.status !== 'success' && r.response?.rcode).toBe(Rcode.NOERROR);
    expect(c.stats).toMatchObject({ sent: 1, signed: 1, success: 0, error: 1 });
  });

  it('signed request, answer signed with another secret or over another request MAC: BADSIG', async () => {
    const other = TsigKey.create({ name: 'k1', algorithm: 'HMAC-SHA256', secret: randomBytes(32) });
    const srv = await fakeServer((_r, m, send) => m && send(signedAnswer(m, Rcode.NOERROR, other)));
    const r = await client().update(srv.addr, upd(), { key });
    expect(r.status !== 'success' && r.tsigError).toBe(Rcode.BADSIG);
    const srv2 = await fakeServer((_r, m, send) => m && send(signMessage(answerTo(m), key, { requestMac: randomBytes(32) }).wire));
    const r2 = await client().update(srv2.addr, upd(), { key });
    expect(r2.status !== 'success' && r2.tsigError).toBe(Rcode.BADSIG);
  });

  it('ignores answers with another id or from another port, then takes the right one', async () => {
    const impostor = await udp();
    const srv = await fakeServer((_r, m, send) => {
      if (!m) return;
      send(answerTo({ ...m, id: (m.id + 1) & 0xffff }, Rcode.REFUSED)); // wrong id
      send(answerTo(m, Rcode.REFUSED), impostor); // right id, wrong source port
      setTimeout(() => send(answerTo(m, Rcode.NOERROR)), 20);
    });
    const c = client();
    const r = await c.update(srv.addr, upd());
    expect(r.status === 'success' && r.rcode).toBe(Rcode.NOERROR);
    expect(c.stats.stray).toBe(2);
  });

  it('malformed answers from the server are reported as malformed', async () => {
    const variants: ((m: DecodedMessage, raw: Buffer) => Buffer)[] = [
      (m) => Buffer.concat([answerTo(m), Buffer.from([1, 2, 3])]), // trailing garbage
      (m, raw) => { const b = Buffer.from(raw.subarray(0, 14)); b[2] |= 0x80; b.writeUInt16BE(m.id, 0); return b; }, // truncated
      (m) => encodeMessage({ ...m, qr: true, opcode: Opcode.QUERY, additional: [] }), // not an UPDATE
      (m) => encodeMessage({ ...m, qr: false, additional: [] }), // QR clear
    ];
    for (const v of variants) {
      const srv = await fakeServer((raw, m, send) => m && send(v(m, raw)));
      const r = await client().update(srv.addr, upd());
      expect(r.status).toBe('malformed');
    }
  });

  it('survives a flood of garbage from the server\'s address, with and without matching ids', async () => {
    let n = 0;
    const srv = await fakeServer((_r, m, send) => {
      if (!m) return;
      for (let i = 0; i < 200; i++) {
        const junk = randomBytes(1 + (i % 60));
        if (i % 2 === 0 && junk.length >= 2) junk.writeUInt16BE((m.id + 1 + i) & 0xffff, 0);
        send(junk);
        n++;
      }
      setTimeout(() => send(answerTo(m)), 50);
    });
    const c = client();
    const r = await c.update(srv.addr, upd());
    expect(n).toBe(200);
    expect(r.status === 'success' && r.rcode).toBe(Rcode.NOERROR);
    // A matching id with garbage after it settles as malformed instead.
    const srv2 = await fakeServer((raw, _m, send) => send(Buffer.concat([raw.subarray(0, 2), randomBytes(40)])));
    const r2 = await c.update(srv2.addr, upd());
    expect(r2.status).toBe('malformed');
  });

  it('keeps many updates in flight on one socket, answered out of order', async () => {
    const pending: DecodedMessage[] = [];
    const N = 40;
    const srv = await fakeServer((_r, m, send) => {
      if (!m) return;
      pending.push(m);
      if (pending.length === N) {
        // Answer in reverse order; the rcode tells which request it belongs to.
        for (const p of pending.reverse()) {
          const host = p.authority[0]!.name.labels[0]!;
          send(signedAnswer(p, Number(Buffer.from(host).toString().slice(1)) % 11));
        }
      }
    });
    const c = client(5000);
    const outcomes = await Promise.all(Array.from({ length: N }, (_, i) => c.update(srv.addr, upd(`h${i}`), { key })));
    expect(outcomes.map((o) => o.status === 'success' && o.rcode)).toEqual(Array.from({ length: N }, (_, i) => i % 11));
    expect(new Set(outcomes.map((o) => o.id)).size).toBe(N);
    expect(c.localPort()).toBeGreaterThan(0);
    expect(new Set(srv.received.map(() => c.localPort())).size).toBe(1);
    expect(c.inFlight).toBe(0);
  });

  it('answers and timeouts interleaved over rounds: each update settles once, inFlight counts what still waits', async () => {
    // Answers every other request; the rest time out. IDs come free as updates end and are reused.
    let n = 0;
    const srv = await fakeServer((_r, m, send) => {
      if (m && n++ % 2 === 0) send(answerTo(m));
    });
    const c = client(150);
    for (let round = 0; round < 3; round++) {
      n = 0;
      const all = Array.from({ length: 20 }, (_, i) => c.update(srv.addr, upd(`r${round}h${i}`)));
      await new Promise((r) => setTimeout(r, 50));
      expect(c.inFlight).toBe(10); // the answered half has settled, the other half waits for its timeout
      const outcomes = await Promise.all(all);
      expect(outcomes.filter((o) => o.status === 'success')).toHaveLength(10);
      expect(outcomes.filter((o) => o.status === 'timeout')).toHaveLength(10);
      expect(c.inFlight).toBe(0);
    }
    expect(c.stats).toMatchObject({ sent: 60, success: 30, timeout: 30, error: 0 });
  });

  it('times out, and a late answer after the timeout is ignored', async () => {
    let send!: (b: Buffer) => void;
    let req!: DecodedMessage;
    const srv = await fakeServer((_r, m, s) => { if (m) { req = m; send = s; } });
    const c = client(100);
    const r = await c.update(srv.addr, upd());
    expect(r.status).toBe('timeout');
    expect(c.inFlight).toBe(0);
    send(answerTo(req));
    const r2 = await c.update(srv.addr, upd(), { timeoutMs: 100 }); // keeps working; the late answer is stray
    expect(r2.status).toBe('timeout');
    expect(c.stats).toMatchObject({ timeout: 2, success: 0 });
    expect(c.stats.stray).toBeGreaterThanOrEqual(1);
  });

  it('close() settles requests in flight as stopped and leaves no socket or timer behind', async () => {
    const srv = await fakeServer(() => undefined);
    // The client's own timers, told apart by their 60 s delay: counting the process's
    // timers would count whatever else runs in this worker meanwhile.
    const DELAY_MS = 60_000;
    const live = new Set<unknown>();
    const realSetTimeout = globalThis.setTimeout;
    const realClearTimeout = globalThis.clearTimeout;
    const setSpy = vi.spyOn(globalThis, 'setTimeout').mockImplementation(((fn: () => void, ms?: number, ...rest: unknown[]) => {
      const timer = realSetTimeout(fn, ms, ...rest);
      if (ms !== undefined && ms > DELAY_MS - 1000) live.add(timer);
      return timer;
    }) as typeof setTimeout);
    const clearSpy = vi.spyOn(globalThis, 'clearTimeout').mockImplementation(((timer?: NodeJS.Timeout) => {
      live.delete(timer);
      realClearTimeout(timer);
    }) as typeof clearTimeout);
    try {
      const c = new DnsClient({ timeoutMs: DELAY_MS });
      const p = [c.update(srv.addr, upd()), c.update(srv.addr, upd(), { key })];
      await new Promise((r) => realSetTimeout(r, 20));
      expect(c.inFlight).toBe(2);
      expect(live.size).toBe(1); // one timer serves both updates
      const port = c.localPort()!;
      expect(port).toBeGreaterThan(0);
      await c.close();
      const outcomes = await Promise.all(p);
      expect(outcomes.map((o) => o.status)).toEqual(['stopped', 'stopped']);
      expect((await c.update(srv.addr, upd())).status).toBe('stopped');
      expect(live.size).toBe(0);
      // The client's socket is closed: its port can be bound again.
      const again = dgram.createSocket('udp4');
      await new Promise<void>((res, rej) => { again.once('error', rej); again.bind(port, () => res()); });
      await new Promise<void>((r) => again.close(() => r()));
    } finally {
      setSpy.mockRestore();
      clearSpy.mockRestore();
    }
  });

  it('refuses invalid requests as values', async () => {
    const c = client();
    const noZone = new D2UpdateMessage().addRR('h.example.com', 1, rdataA('192.0.2.1'));
    expect((await c.update({ address: '127.0.0.1', port: 53 }, noZone)).status).toBe('invalid-request');
    expect((await c.update({ address: 'localhost', port: 53 }, upd())).status).toBe('invalid-request');
    expect((await c.update({ address: '127.0.0.1', port: 0 }, upd())).status).toBe('invalid-request');
    expect((await c.update({ address: '127.0.0.1', port: 53 }, upd(), { timeoutMs: 0 })).status).toBe('invalid-request');
    expect(() => new DnsClient({ timeoutMs: 2 ** 31 })).toThrow(/dns-server-timeout/);
    expect(c.stats.sent).toBe(0);
  });
});
