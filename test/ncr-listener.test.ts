import { afterEach, describe, expect, it } from 'vitest';
import dgram from 'node:dgram';
import { NcrListener, NcrListenerError } from '../src/ncr/ncr-listener.js';
import { NcrSender } from '../src/ncr/ncr-sender.js';
import { createNcr, type NameChangeRequest, type NcrError } from '../src/ncr/name-change-request.js';
import { Logger, type LogRecord } from '../src/log/logger.js';
import { frameJson } from '../src/ncr/wire.js';

const logs: LogRecord[] = [];
Logger.setSink((r) => logs.push(r));

const started: NcrListener[] = [];
const senders: NcrSender[] = [];
afterEach(async () => {
  for (const l of started.splice(0)) await l.stop();
  for (const s of senders.splice(0)) await s.close();
});

function ncr(i: number): NameChangeRequest {
  const r = createNcr({
    changeType: (i % 2) as 0 | 1,
    forwardChange: true,
    reverseChange: i % 3 !== 0,
    fqdn: `host${i}.example.com`,
    ipAddress: i % 2 ? `10.0.${i >> 8 & 255}.${i & 255}` : `2001:db8::${i.toString(16)}`,
    dhcid: '0001' + i.toString(16).padStart(8, '0'),
    leaseLength: i,
  });
  if (!r.ok) throw new Error(r.reason);
  return r.ncr;
}

/** Wait (bounded) until cond() holds. */
async function until(cond: () => boolean, maxMs = 10_000): Promise<void> {
  for (let waited = 0; !cond() && waited < maxMs; waited += 10) await new Promise((r) => setTimeout(r, 10));
}

async function listen(ipAddress: string, got: NameChangeRequest[], bad: NcrError[]): Promise<NcrListener> {
  const l = new NcrListener({ ipAddress, port: 0, onNcr: (n) => got.push(n), onInvalid: (e) => bad.push(e) });
  await l.start();
  started.push(l);
  return l;
}

describe('NcrListener over loopback UDP', () => {
  it('accounts for every datagram: valid ones delivered intact, invalid ones counted by reason', async () => {
    const got: NameChangeRequest[] = [];
    const bad: NcrError[] = [];
    const l = await listen('127.0.0.1', got, bad);
    const s = new NcrSender({ serverAddress: '127.0.0.1', serverPort: l.port });
    senders.push(s);
    const N = 400;
    const sent: NameChangeRequest[] = [];
    let invalidSent = 0;
    for (let i = 0; i < N; i++) {
      if (i % 4 === 3) {
        invalidSent++;
        const junk = [Buffer.from([1]), frameJson('[]'), frameJson('{"change-type":0}'), Buffer.from('\x00\x10{')][i % 16 >> 2]!;
        await s.sendRaw(junk);
      } else {
        const n = ncr(i);
        sent.push(n);
        await s.send(n);
      }
      if (i % 50 === 49) await until(() => got.length + bad.length >= i + 1, 5000); // pace: loopback buffers are finite
    }
    await until(() => got.length + bad.length >= N);
    const st = l.stats();
    expect(st.received + st.invalid).toBe(N);
    expect(st.invalid).toBe(invalidSent);
    expect(bad.length).toBe(invalidSent);
    expect(got.map((n) => n.fqdn)).toEqual(sent.map((n) => n.fqdn));
    expect(got.map((n) => n.dhcidHex)).toEqual(sent.map((n) => n.dhcidHex));
    expect(st.invalidByCode['short-frame'] + st.invalidByCode['not-a-map'] + st.invalidByCode['missing-field'] + st.invalidByCode['truncated']).toBe(invalidSent);
    expect(st.error).toBe(0);
  });

  it('logs each reason once, then only counts', async () => {
    logs.length = 0;
    const bad: NcrError[] = [];
    const l = await listen('127.0.0.1', [], bad);
    const s = new NcrSender({ serverAddress: '127.0.0.1', serverPort: l.port });
    senders.push(s);
    for (let i = 0; i < 100; i++) await s.sendRaw(frameJson('[1,2,3]'));
    for (let i = 0; i < 100; i++) await s.sendRaw(frameJson('{"change-type":"0"}'));
    await until(() => bad.length >= 200);
    expect(l.stats().invalid).toBe(200);
    const invalidLogs = logs.filter((r) => r.id === 'DHCP_DDNS_INVALID_NCR');
    expect(invalidLogs.length).toBe(2);
    expect(invalidLogs[1]!.text).toContain('change-type');
  });

  it('listens on IPv6 loopback', async () => {
    const got: NameChangeRequest[] = [];
    const l = await listen('::1', got, []);
    const s = new NcrSender({ serverAddress: '::1', serverPort: l.port, dialect: 'kea-3.2' });
    senders.push(s);
    await s.send(ncr(7));
    await until(() => got.length >= 1);
    expect(got[0]!.fqdn).toBe('host7.example.com.');
    expect(got[0]!.leaseExpiresOn).toBeUndefined();
  });

  it('a handler that throws is counted and the listener goes on', async () => {
    let calls = 0;
    const l = new NcrListener({
      ipAddress: '127.0.0.1',
      port: 0,
      onNcr: () => {
        calls++;
        throw new Error('boom');
      },
    });
    await l.start();
    started.push(l);
    const s = new NcrSender({ serverAddress: '127.0.0.1', serverPort: l.port });
    senders.push(s);
    for (let i = 0; i < 5; i++) await s.send(ncr(i + 1));
    await until(() => calls >= 5);
    expect(calls).toBe(5);
    expect(l.stats().callbackErrors).toBe(5);
    expect(l.stats().received).toBe(5);
  });

  it('reports a port in use clearly, and stop() frees the port', async () => {
    const holder = dgram.createSocket('udp4');
    await new Promise<void>((r) => holder.bind(0, '127.0.0.1', r));
    const port = holder.address().port;
    const l = new NcrListener({ ipAddress: '127.0.0.1', port, onNcr: () => {} });
    const err = await l.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(NcrListenerError);
    expect((err as NcrListenerError).code).toBe('EADDRINUSE');
    expect((err as Error).message).toContain(`127.0.0.1:${port}`);
    expect(l.listening).toBe(false);
    await new Promise<void>((r) => holder.close(() => r()));

    // now free: start, stop, and the same port binds again
    await l.start();
    expect(l.listening).toBe(true);
    await l.stop();
    expect(l.listening).toBe(false);
    const again = dgram.createSocket('udp4');
    await new Promise<void>((r, j) => {
      again.once('error', j);
      again.bind(port, '127.0.0.1', () => r());
    });
    await new Promise<void>((r) => again.close(() => r()));
    await l.stop(); // idempotent
  });

  it('refuses a bad address or port before touching the network', async () => {
    await expect(new NcrListener({ ipAddress: 'localhost', onNcr: () => {} }).start()).rejects.toThrow(/not an IPv4 or IPv6/);
    await expect(new NcrListener({ port: 70000, onNcr: () => {} }).start()).rejects.toThrow(/out of range/);
  });
});
