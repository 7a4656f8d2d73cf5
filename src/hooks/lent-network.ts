/**
 * The network a library's policy lends it (`allow-connect`): for each listed
 * endpoint the library asks for, the host opens a UDP socket connected to it
 * (so only that endpoint's datagrams come back) and relays datagrams both ways
 * over the library's channel, or a TCP connection whose stream it relays in
 * chunks, bounded each way by LENT_NETWORK_LIMITS.tcpBytesInFlight: it stops
 * reading from the server until the library acknowledges what it took, and
 * drops a library that writes more than the server has taken. Nothing else is opened: an endpoint not listed is
 * refused, and a process library's sandbox has only its own `lo`, so these
 * sockets are its only way out. In a thread it is a convenience, not a wall (a
 * thread can open sockets itself).
 */
import dgram from 'node:dgram';
import net, { isIP } from 'node:net';
import { LENT_NETWORK_LIMITS, type LentEndpoint, type NetworkFromLibrary, type NetworkToLibrary } from './protocol.js';

/** A policy entry: an endpoint, or a group of them the configuration defines. */
export type AllowConnectEntry = LentEndpoint | { group: 'dns-servers'; protocol: LentEndpoint['protocol'] };

/** A relayed TCP connection and the bytes sent to the library it has not acknowledged. */
interface LentStream {
  socket: net.Socket;
  unacknowledged: number;
}

export class LentNetwork {
  private readonly sockets = new Map<number, dgram.Socket>();
  private readonly streams = new Map<number, LentStream>();
  private dnsServers: LentEndpoint[] = [];

  constructor(
    private readonly allowed: readonly AllowConnectEntry[],
    private readonly post: (message: NetworkToLibrary) => void,
  ) {}

  /** The configuration's DNS servers, for the `dns-servers` group (taken from each configuration as it is applied). */
  setConfiguration(jsonConfig: unknown): void {
    this.dnsServers = dnsServersOf(jsonConfig);
  }

  private lends(endpoint: LentEndpoint): boolean {
    const matches = (e: LentEndpoint) => e.protocol === endpoint.protocol && e.port === endpoint.port && sameAddress(e.address, endpoint.address);
    const isServer = (e: LentEndpoint) => matches({ ...e, protocol: endpoint.protocol });
    return this.allowed.some((entry) => ('group' in entry ? entry.protocol === endpoint.protocol && this.dnsServers.some(isServer) : matches(entry)));
  }

  handle(message: NetworkFromLibrary): void {
    switch (message.t) {
      case 'net-open':
        return this.open(message.id, message.endpoint);
      case 'net-send': {
        const stream = this.streams.get(message.id);
        if (stream) {
          stream.socket.write(Buffer.from(message.data, 'base64'));
          // What the server has not taken yet: a library writing past the bound is dropped, not buffered for.
          if (stream.socket.writableLength > LENT_NETWORK_LIMITS.tcpBytesInFlight) {
            this.closeOne(message.id, `more than ${LENT_NETWORK_LIMITS.tcpBytesInFlight} bytes written and not yet sent`);
          }
          return;
        }
        const socket = this.sockets.get(message.id);
        const data = Buffer.from(message.data, 'base64');
        if (!socket || data.length > LENT_NETWORK_LIMITS.datagramBytes) return;
        socket.send(data, (err) => {
          if (err) this.closeOne(message.id, `send failed: ${err.message}`);
        });
        return;
      }
      case 'net-close':
        this.closeOne(message.id);
        return;
      case 'net-ack': {
        const stream = this.streams.get(message.id);
        if (!stream) return;
        stream.unacknowledged = Math.max(0, stream.unacknowledged - message.bytes);
        if (stream.unacknowledged < LENT_NETWORK_LIMITS.tcpBytesInFlight) stream.socket.resume();
        return;
      }
    }
  }

  /** The library's worker is gone or unloaded: every socket lent to it is closed. */
  closeAll(): void {
    for (const socket of this.sockets.values()) socket.close();
    this.sockets.clear();
    for (const stream of this.streams.values()) stream.socket.destroy();
    this.streams.clear();
  }

  private open(id: number, endpoint: LentEndpoint): void {
    const family = isIP(endpoint.address);
    const listed = this.lends(endpoint);
    if (!listed || family === 0) {
      this.post({ t: 'net-opened', id, error: `${endpoint.protocol} ${endpoint.address} port ${endpoint.port} is not lent to this library (allow-connect)` });
      return;
    }
    if (this.sockets.has(id) || this.streams.has(id)) return this.post({ t: 'net-opened', id, error: `socket ${id} is already open` });
    if (this.sockets.size + this.streams.size >= LENT_NETWORK_LIMITS.sockets) return this.post({ t: 'net-opened', id, error: `a library may have ${LENT_NETWORK_LIMITS.sockets} lent sockets open at once` });
    if (endpoint.protocol === 'tcp') return this.openStream(id, endpoint);
    const socket = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
    this.sockets.set(id, socket);
    socket.on('message', (data) => {
      if (this.sockets.get(id) === socket) this.post({ t: 'net-datagram', id, data: data.toString('base64') });
    });
    socket.on('error', (err) => this.closeOne(id, err.message));
    socket.connect(endpoint.port, endpoint.address, () => {
      if (this.sockets.get(id) === socket) this.post({ t: 'net-opened', id });
    });
  }

  private openStream(id: number, endpoint: LentEndpoint): void {
    if (this.streams.size >= LENT_NETWORK_LIMITS.tcpConnections) {
      return this.post({ t: 'net-opened', id, error: `a library may have ${LENT_NETWORK_LIMITS.tcpConnections} lent TCP connections open at once` });
    }
    const socket = net.connect({ host: endpoint.address, port: endpoint.port });
    const stream: LentStream = { socket, unacknowledged: 0 };
    this.streams.set(id, stream);
    let connected = false;
    socket.on('connect', () => {
      connected = true;
      if (this.streams.get(id) === stream) this.post({ t: 'net-opened', id });
    });
    socket.on('data', (data) => {
      if (this.streams.get(id) !== stream) return;
      stream.unacknowledged += data.length;
      if (stream.unacknowledged >= LENT_NETWORK_LIMITS.tcpBytesInFlight) socket.pause();
      // Chunks no larger than a datagram, so the channel's schema takes them.
      for (let o = 0; o < data.length; o += LENT_NETWORK_LIMITS.datagramBytes) {
        this.post({ t: 'net-datagram', id, data: data.subarray(o, o + LENT_NETWORK_LIMITS.datagramBytes).toString('base64') });
      }
    });
    socket.on('error', (err) => {
      if (connected) return this.closeOne(id, err.message);
      this.streams.delete(id);
      this.post({ t: 'net-opened', id, error: `tcp ${endpoint.address} port ${endpoint.port}: ${err.message}` });
    });
    socket.on('close', () => this.closeOne(id));
  }

  private closeOne(id: number, error?: string): void {
    const stream = this.streams.get(id);
    if (stream) {
      this.streams.delete(id);
      stream.socket.destroy();
      this.post(error === undefined ? { t: 'net-closed', id } : { t: 'net-closed', id, error });
      return;
    }
    const socket = this.sockets.get(id);
    if (!socket) return;
    this.sockets.delete(id);
    socket.close();
    this.post(error === undefined ? { t: 'net-closed', id } : { t: 'net-closed', id, error });
  }
}

function sameAddress(a: string, b: string): boolean {
  if (a === b) return true;
  const strip = (s: string) => s.toLowerCase().replace(/^::ffff:/, '');
  return strip(a) === strip(b);
}

/** Every `dns-servers` entry of forward-ddns and reverse-ddns (port 53 when not given). */
function dnsServersOf(jsonConfig: unknown): LentEndpoint[] {
  const d2 = (jsonConfig as { DhcpDdns?: Record<string, unknown> } | null)?.DhcpDdns;
  const out: LentEndpoint[] = [];
  for (const direction of ['forward-ddns', 'reverse-ddns']) {
    const domains = (d2?.[direction] as { 'ddns-domains'?: unknown } | undefined)?.['ddns-domains'];
    if (!Array.isArray(domains)) continue;
    for (const domain of domains) {
      const servers = (domain as { 'dns-servers'?: unknown })?.['dns-servers'];
      if (!Array.isArray(servers)) continue;
      for (const server of servers) {
        const address = (server as Record<string, unknown>)?.['ip-address'];
        const port = (server as Record<string, unknown>)?.port ?? 53;
        if (typeof address === 'string' && typeof port === 'number') out.push({ address, port, protocol: 'udp' });
      }
    }
  }
  return out;
}
