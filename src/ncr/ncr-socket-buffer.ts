/**
 * What the kernel holds for the NCR socket: the receive buffer it grants, the
 * cap it puts on it (`net.core.rmem_max`), how many NCRs that is, and how many
 * datagrams it dropped because the buffer was full. Kea hides those drops; an
 * operator of d2box sees them as `d2box.ncr-kernel-drops`.
 *
 * Linux only (procfs); elsewhere the figures are unknown, never invented.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isIPv4 } from 'node:net';

/**
 * Kernel bytes one NCR datagram costs in a socket's receive buffer (its skb's
 * truesize: the datagram of 300-500 bytes in a 1 KiB slab plus the skb
 * itself). Measured on loopback: the default 212,992-byte buffer holds 166 NCRs.
 */
export const KERNEL_BYTES_PER_NCR = 1280;

/** net.core.rmem_max, or undefined where it cannot be read. */
export function readRmemMax(): number | undefined {
  try {
    const v = Number(readFileSync('/proc/sys/net/core/rmem_max', 'utf8').trim());
    return Number.isFinite(v) && v > 0 ? v : undefined;
  } catch {
    return undefined;
  }
}

/** About how many NCRs a receive buffer of `bytes` (as getsockopt reports it) holds. */
export function ncrsHeldBy(bytes: number): number {
  return Math.floor(bytes / KERNEL_BYTES_PER_NCR);
}

/** Linux grants min(asked, rmem_max) and doubles it for its bookkeeping; what getsockopt then reports. */
export function expectedGrant(askedBytes: number, rmemMax: number): number {
  return Math.min(askedBytes, rmemMax) * 2;
}

/** The line `-W` and the start-up log give about the NCR socket's buffer. */
export function describeReceiveBuffer(askedBytes: number, grantedBytes: number | undefined, rmemMax: number | undefined): { capped: boolean; text: string } {
  if (rmemMax === undefined) {
    return { capped: false, text: `NCR socket receive buffer: asked ${askedBytes} bytes; net.core.rmem_max unknown on this system` };
  }
  const granted = grantedBytes ?? expectedGrant(askedBytes, rmemMax);
  const capped = askedBytes > rmemMax;
  const held = `${granted} bytes, about ${ncrsHeldBy(granted)} NCRs`;
  return {
    capped,
    text: capped
      ? `NCR socket receive buffer capped by the kernel: asked ${askedBytes} bytes (about ${ncrsHeldBy(askedBytes * 2)} NCRs), ` +
        `net.core.rmem_max is ${rmemMax}, so it holds ${held}; a larger burst arriving while d2box is busy is dropped by the kernel ` +
        `(counted in d2box.ncr-kernel-drops); raise it with sysctl -w net.core.rmem_max=${askedBytes}`
      : `NCR socket receive buffer: ${held} (asked ${askedBytes} bytes, net.core.rmem_max ${rmemMax})`,
  };
}

/** /proc/net/udp's local address of an IPv4 or IPv6 address: each 32-bit word in host order (little-endian), in hex. */
function procAddress(address: string): string {
  if (isIPv4(address)) {
    return address
      .split('.')
      .reverse()
      .map((o) => Number(o).toString(16).padStart(2, '0'))
      .join('')
      .toUpperCase();
  }
  const words = expandIPv6(address);
  let out = '';
  for (let w = 0; w < 8; w += 2) {
    const bytes = [words[w]! >> 8, words[w]! & 0xff, words[w + 1]! >> 8, words[w + 1]! & 0xff];
    out += bytes
      .reverse()
      .map((b) => b.toString(16).padStart(2, '0'))
      .join('');
  }
  return out.toUpperCase();
}

function expandIPv6(address: string): number[] {
  const [head, tail] = address.split('::') as [string, string | undefined];
  const parse = (s: string | undefined): number[] => (s ? s.split(':').filter((x) => x !== '').map((x) => parseInt(x, 16)) : []);
  const h = parse(head);
  const t = parse(tail);
  return tail === undefined ? h : [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
}

/**
 * The drops column of the socket bound to `address`:`port` in /proc/net/udp
 * (udp6 for IPv6): datagrams the kernel threw away because the receive buffer
 * was full. Undefined where it cannot be read.
 */
export async function readUdpDrops(address: string, port: number): Promise<number | undefined> {
  const table = isIPv4(address) ? '/proc/net/udp' : '/proc/net/udp6';
  const local = `${procAddress(address)}:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  let text: string;
  try {
    text = await readFile(table, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const cols = line.trim().split(/\s+/);
    if (cols[1] === local) {
      const drops = Number(cols[cols.length - 1]);
      return Number.isFinite(drops) ? drops : undefined;
    }
  }
  return undefined;
}
