/**
 * Test helper: a throw-away ISC `kea-dhcp4` (Debian's kea-dhcp4-server) on the
 * loopback interface, and a small DHCPv4 client that reaches it as a relay
 * agent would, so no real network is touched.
 *
 * How the traffic flows, all on 127.0.0.0/8 (Linux routes the whole /8 to lo):
 *   - kea-dhcp4 runs with `"dhcp-socket-type": "udp"` on `lo` and `-p PORT -P PORT2`
 *     (its test-only server/client port options), so it binds 127.0.0.1:PORT.
 *   - The client sends BOOTREQUESTs unicast to 127.0.0.1:PORT with giaddr
 *     127.0.0.2 (a relayed packet, so kea-dhcp4 picks the subnet whose
 *     `relay.ip-addresses` lists 127.0.0.2) and Relay Agent Information (option 82)
 *     carrying the RFC 8357 relay-source-port sub-option, so kea-dhcp4 answers
 *     to the UDP port the client sent from rather than to port 67.
 *   - DHCPRELEASE is sent the same way; it has no answer.
 *
 *   const kea = await startKeaDhcp4(configObject);   // {"Dhcp4": ...} without interfaces/lease file
 *   const c = await DhcpRelayClient.open(kea.port);
 *   const lease = await c.obtain({ mac, fqdn: 'host.example.com.' });
 *   await c.release(lease);
 *   await c.close(); await kea.stop();
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './bind9.js';
import { stopChild, wrapCommand } from './child-process.js';
import { TestLog } from './test-logs.js';

/** The address the client uses as its relay address (giaddr); kea-dhcp4 answers to it. */
export const RELAY_ADDRESS = '127.0.0.2';

/** kea-dhcp4's `dhcp-ddns` block as an operator writes it: NCRs over UDP, in JSON, to d2box on 127.0.0.1:`port`. */
export function dhcpDdnsTo(port: number): Record<string, unknown> {
  return {
    'enable-updates': true,
    'server-ip': '127.0.0.1',
    'server-port': port,
    'sender-ip': '127.0.0.1',
    'sender-port': 0,
    'max-queue-size': 1024,
    'ncr-protocol': 'UDP',
    'ncr-format': 'JSON',
  };
}

export interface KeaDhcp4Server {
  readonly port: number;
  readonly pid: number;
  readonly dir: string;
  readonly leaseFile: string;
  /** Everything kea-dhcp4 logged so far (stdout logger). */
  log(): string;
  /** The lease file's current text (memfile CSV). */
  leases(): string;
  /** Waits (bounded) until the log matches. */
  waitLog(re: RegExp, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** How startKeaDhcp4 runs kea-dhcp4 when not on loopback (every field optional; the default is the loopback setup above). */
export interface KeaDhcp4StartOptions {
  /** Command prefix kea-dhcp4 runs under, e.g. `['ip', 'netns', 'exec', 'ns1']`; it must exec the program. */
  wrap?: string[];
  /** `interfaces-config` instead of `{ interfaces: ['lo'], 'dhcp-socket-type': 'udp' }`. */
  interfacesConfig?: Record<string, unknown>;
  /** Server port (`-p`) instead of a free high one, e.g. 67 in a namespace of its own. */
  port?: number;
}

/**
 * Starts kea-dhcp4 with `config` ({"Dhcp4": {...}}): interfaces-config, the
 * lease database (a memfile in its own temp dir) and a stdout logger are filled in.
 */
export async function startKeaDhcp4(config: { Dhcp4: Record<string, unknown> }, opts: KeaDhcp4StartOptions = {}): Promise<KeaDhcp4Server> {
  let last: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(config, opts);
    } catch (e) {
      last = e;
    }
  }
  throw last;
}

async function startOnce(config: { Dhcp4: Record<string, unknown> }, opts: KeaDhcp4StartOptions): Promise<KeaDhcp4Server> {
  const dir = mkdtempSync(join(tmpdir(), 'd2box-kea4-'));
  const port = opts.port ?? (await freePort());
  const leaseFile = join(dir, 'kea-leases4.csv');
  const file = join(dir, 'kea-dhcp4.conf');
  const full = {
    Dhcp4: {
      ...config.Dhcp4,
      'interfaces-config': opts.interfacesConfig ?? { interfaces: ['lo'], 'dhcp-socket-type': 'udp' },
      'lease-database': { type: 'memfile', persist: true, name: leaseFile, 'lfc-interval': 0 },
      loggers: [{ name: 'kea-dhcp4', output_options: [{ output: 'stdout' }], severity: 'DEBUG', debuglevel: 99 }],
    },
  };
  writeFileSync(file, JSON.stringify(full, null, 2));
  const env = { ...process.env, KEA_PIDFILE_DIR: dir, KEA_LOCKFILE_DIR: dir };
  const child = spawn(...wrapCommand(opts.wrap, 'kea-dhcp4', ['-c', file, '-p', String(port)]), { stdio: ['ignore', 'pipe', 'pipe'], env });
  let log = '';
  const testLog = new TestLog(`kea-dhcp4 (pid ${child.pid})`);
  const add = (d: string) => {
    if (log.length < 4_000_000) log += d;
    testLog.write(d);
  };
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stdout!.on('data', add);
  child.stderr!.on('data', add);
  const pid = child.pid;
  if (pid === undefined) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error('kea-dhcp4 did not start');
  }
  const stop = async () => {
    await stopChild(child, pid);
    rmSync(dir, { recursive: true, force: true });
  };
  const waitLog = async (re: RegExp, timeoutMs = 15_000) => {
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; i < 3000 && !re.test(log) && Date.now() < deadline && child.exitCode === null; i++) await sleep(20);
    if (!re.test(log)) throw new Error(`kea-dhcp4 log never matched ${re}:\n${log.slice(-4000)}`);
  };
  try {
    await waitLog(/DHCP4_STARTED/, 20_000);
    if (/DHCPSRV_OPEN_SOCKET_FAIL|DHCP4_OPEN_SOCKET_FAIL/.test(log)) throw new Error(`kea-dhcp4 could not open its socket:\n${log.slice(-3000)}`);
  } catch (e) {
    await stop();
    throw e;
  }
  return { port, pid, dir, leaseFile, log: () => log, leases: () => readFileSync(leaseFile, 'utf8'), waitLog, stop };
}

// ---------------------------------------------------------------------------
// DHCPv4 packets (RFC 2131/2132), the client FQDN option (RFC 4702), DHCID (RFC 4701)

export const DHCPDISCOVER = 1;
export const DHCPOFFER = 2;
export const DHCPREQUEST = 3;
export const DHCPACK = 5;
export const DHCPNAK = 6;
export const DHCPRELEASE = 7;

/** RFC 4702 flags. */
export const FQDN_S = 0x01;
export const FQDN_O = 0x02;
export const FQDN_E = 0x04;
export const FQDN_N = 0x08;

const MAGIC = Buffer.from([99, 130, 83, 99]);

/** A domain name in DNS wire format; a trailing dot makes it fully qualified (root label), without it it is partial. */
export function nameToWire(name: string): Buffer {
  const full = name.endsWith('.');
  const labels = name.replace(/\.$/, '').split('.').filter((l) => l.length > 0);
  const parts: Buffer[] = [];
  for (const l of labels) {
    const b = Buffer.from(l, 'ascii');
    parts.push(Buffer.from([b.length]), b);
  }
  if (full) parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

/** RFC 4701 DHCID RDATA for a DHCPv4 client that sent a client identifier (option 61; identifier type 0x0001: its bytes). */
export function dhcidFromClientId(clientId: Buffer, fqdn: string): Buffer {
  const canonical = fqdn.toLowerCase().endsWith('.') ? fqdn.toLowerCase() : `${fqdn.toLowerCase()}.`;
  const digest = createHash('sha256').update(clientId).update(nameToWire(canonical)).digest();
  return Buffer.concat([Buffer.from([0x00, 0x01, 0x01]), digest]);
}

/** RFC 4701 DHCID RDATA for a DHCPv4 client identified by its chaddr (identifier type 0x0000: htype + chaddr). */
export function dhcidFromHwaddr(mac: Buffer, fqdn: string, htype = 1): Buffer {
  const canonical = fqdn.toLowerCase().endsWith('.') ? fqdn.toLowerCase() : `${fqdn.toLowerCase()}.`;
  const digest = createHash('sha256').update(Buffer.from([htype])).update(mac).update(nameToWire(canonical)).digest();
  return Buffer.concat([Buffer.from([0x00, 0x00, 0x01]), digest]);
}

function ipToBuf(ip: string): Buffer {
  return Buffer.from(ip.split('.').map((x) => Number(x)));
}

function bufToIp(b: Buffer, off = 0): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

export interface DhcpPacket {
  op: number;
  xid: number;
  ciaddr: string;
  yiaddr: string;
  giaddr: string;
  chaddr: Buffer;
  options: Map<number, Buffer>;
}

function opt(code: number, data: Buffer): Buffer {
  if (data.length > 255) throw new Error(`option ${code} too long`);
  return Buffer.concat([Buffer.from([code, data.length]), data]);
}

export function encodeRequest(p: { xid: number; chaddr: Buffer; ciaddr?: string; giaddr: string; options: [number, Buffer][] }): Buffer {
  const h = Buffer.alloc(236);
  h[0] = 1; // BOOTREQUEST
  h[1] = 1; // ethernet
  h[2] = p.chaddr.length;
  h[3] = 1; // hops: one relay
  h.writeUInt32BE(p.xid >>> 0, 4);
  ipToBuf(p.ciaddr ?? '0.0.0.0').copy(h, 12);
  ipToBuf(p.giaddr).copy(h, 24);
  p.chaddr.copy(h, 28);
  const opts = p.options.map(([c, d]) => opt(c, d));
  return Buffer.concat([h, MAGIC, ...opts, Buffer.from([255])]);
}

export function decodePacket(b: Buffer): DhcpPacket | undefined {
  if (b.length < 240 || !b.subarray(236, 240).equals(MAGIC)) return undefined;
  const options = new Map<number, Buffer>();
  let i = 240;
  while (i < b.length) {
    const code = b[i]!;
    if (code === 255) break;
    if (code === 0) { i++; continue; }
    const len = b[i + 1];
    if (len === undefined || i + 2 + len > b.length) return undefined;
    options.set(code, b.subarray(i + 2, i + 2 + len));
    i += 2 + len;
  }
  return {
    op: b[0]!,
    xid: b.readUInt32BE(4),
    ciaddr: bufToIp(b, 12),
    yiaddr: bufToIp(b, 16),
    giaddr: bufToIp(b, 24),
    chaddr: Buffer.from(b.subarray(28, 28 + Math.min(b[2]!, 16))),
    options,
  };
}

/** Option 81 as RFC 4702 puts it on the wire: flags, RCODE1, RCODE2, the name in canonical wire format (E set). */
export function fqdnOption(name: string, flags = FQDN_S | FQDN_E): Buffer {
  return Buffer.concat([Buffer.from([flags, 0, 0]), nameToWire(name)]);
}

/** Decodes an option 81 answer: flags and the name as text (trailing dot when fully qualified). */
export function parseFqdnOption(d: Buffer): { flags: number; name: string } {
  const flags = d[0]!;
  const labels: string[] = [];
  let i = 3;
  let full = false;
  while (i < d.length) {
    const len = d[i]!;
    if (len === 0) { full = true; break; }
    labels.push(d.subarray(i + 1, i + 1 + len).toString('ascii'));
    i += 1 + len;
  }
  return { flags, name: labels.join('.') + (full ? '.' : '') };
}

export interface Lease {
  mac: Buffer;
  address: string;
  serverId: string;
  /** The ACK's option 81, decoded, when the server sent one. */
  fqdn?: { flags: number; name: string };
  /** The ACK's option 12 (host name), when the server sent one. */
  hostname?: string;
  leaseTime: number;
}

export interface ObtainOptions {
  mac: Buffer;
  /** Client FQDN (option 81); trailing dot = fully qualified, none = partial (kea-dhcp4 appends ddns-qualifying-suffix). */
  fqdn?: string;
  fqdnFlags?: number;
  /** Host name (option 12) instead of or beside the FQDN. */
  hostname?: string;
}

/**
 * A DHCPv4 client that talks to kea-dhcp4 as a relay agent at RELAY_ADDRESS
 * would: every request carries giaddr and option 82 with the relay-port sub-option.
 */
export class DhcpRelayClient {
  private readonly waiters = new Map<number, (p: DhcpPacket) => void>();

  private constructor(private readonly sock: dgram.Socket, readonly serverPort: number, readonly serverAddress: string) {
    sock.on('message', (msg) => {
      const p = decodePacket(msg);
      if (!p || p.op !== 2) return;
      const w = this.waiters.get(p.xid);
      if (w) {
        this.waiters.delete(p.xid);
        w(p);
      }
    });
  }

  static async open(serverPort: number, serverAddress = '127.0.0.1'): Promise<DhcpRelayClient> {
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(0, RELAY_ADDRESS, () => { sock.off('error', reject); resolve(); });
    });
    return new DhcpRelayClient(sock, serverPort, serverAddress);
  }

  get localPort(): number {
    return this.sock.address().port;
  }

  /** Option 82 with sub-option 1 (circuit id) and sub-option 19 (RFC 8357 relay source port, empty). */
  private rai(): Buffer {
    return Buffer.from([1, 4, 0x64, 0x32, 0x62, 0x78, 19, 0]);
  }

  private send(buf: Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.sock.send(buf, this.serverPort, this.serverAddress, (e) => (e ? reject(e) : resolve())));
  }

  /** Sends and waits for the answer with the same xid; retransmits a few times; bounded. */
  private async exchange(build: (xid: number) => Buffer, expectTypes: number[], timeoutMs = 3_000, tries = 3): Promise<DhcpPacket> {
    const xid = randomBytes(4).readUInt32BE(0);
    const pkt = build(xid);
    for (let t = 0; t < tries; t++) {
      const answer = new Promise<DhcpPacket | undefined>((resolve) => {
        const timer = setTimeout(() => { this.waiters.delete(xid); resolve(undefined); }, timeoutMs);
        this.waiters.set(xid, (p) => { clearTimeout(timer); resolve(p); });
      });
      await this.send(pkt);
      const p = await answer;
      if (p) {
        const type = p.options.get(53)?.[0];
        if (type === undefined || !expectTypes.includes(type)) throw new Error(`unexpected DHCP message type ${type} (wanted ${expectTypes.join('/')})`);
        return p;
      }
    }
    throw new Error(`no answer from kea-dhcp4 at ${this.serverAddress}:${this.serverPort} after ${tries} tries`);
  }

  private clientOptions(o: ObtainOptions): [number, Buffer][] {
    const list: [number, Buffer][] = [];
    if (o.hostname !== undefined) list.push([12, Buffer.from(o.hostname, 'ascii')]);
    if (o.fqdn !== undefined) list.push([81, fqdnOption(o.fqdn, o.fqdnFlags ?? FQDN_S | FQDN_E)]);
    list.push([55, Buffer.from([1, 3, 6, 12, 15, 51, 54, 81])]);
    return list;
  }

  /** DISCOVER → OFFER → REQUEST → ACK; returns the lease (throws on NAK or silence). */
  async obtain(o: ObtainOptions): Promise<Lease> {
    const offer = await this.exchange(
      (xid) => encodeRequest({ xid, chaddr: o.mac, giaddr: RELAY_ADDRESS, options: [[53, Buffer.from([DHCPDISCOVER])], ...this.clientOptions(o), [82, this.rai()]] }),
      [DHCPOFFER],
    );
    const sid = offer.options.get(54);
    if (!sid || sid.length !== 4) throw new Error('OFFER without a server identifier');
    const serverId = bufToIp(sid);
    const ack = await this.exchange(
      (xid) =>
        encodeRequest({
          xid,
          chaddr: o.mac,
          giaddr: RELAY_ADDRESS,
          options: [[53, Buffer.from([DHCPREQUEST])], [50, ipToBuf(offer.yiaddr)], [54, sid], ...this.clientOptions(o), [82, this.rai()]],
        }),
      [DHCPACK, DHCPNAK],
    );
    if (ack.options.get(53)?.[0] === DHCPNAK) throw new Error(`DHCPNAK for ${offer.yiaddr}: ${ack.options.get(56)?.toString() ?? ''}`);
    const f = ack.options.get(81);
    const hn = ack.options.get(12);
    const lt = ack.options.get(51);
    return {
      mac: o.mac,
      address: ack.yiaddr,
      serverId,
      ...(f ? { fqdn: parseFqdnOption(f) } : {}),
      ...(hn ? { hostname: hn.toString('ascii') } : {}),
      leaseTime: lt ? lt.readUInt32BE(0) : 0,
    };
  }

  /** DHCPRELEASE (no answer). */
  async release(lease: Lease): Promise<void> {
    const xid = randomBytes(4).readUInt32BE(0);
    await this.send(
      encodeRequest({
        xid,
        chaddr: lease.mac,
        ciaddr: lease.address,
        giaddr: RELAY_ADDRESS,
        options: [[53, Buffer.from([DHCPRELEASE])], [54, ipToBuf(lease.serverId)], [82, this.rai()]],
      }),
    );
  }

  close(): Promise<void> {
    for (const w of this.waiters.keys()) this.waiters.delete(w);
    return new Promise((r) => this.sock.close(() => r()));
  }
}

/** A locally administered unicast MAC, unique enough for one test run. */
export function newMac(): Buffer {
  const m = randomBytes(6);
  m[0] = (m[0]! & 0xfc) | 0x02;
  return m;
}
