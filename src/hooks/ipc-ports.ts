/**
 * MessagePorts carried over a child process's channel (channel-frames.ts), for the process
 * isolation mode. Both sides of the boundary use it, as they use protocol.ts:
 * the host (process-pool.ts) and the sandboxed child (workers/process-worker.ts).
 *
 * A port cannot be transferred to another process, yet comlink (the IOService
 * channel) transfers one for every callback a library hands over. So a port
 * found in a message is replaced by a marker with a fresh channel id and relayed
 * from then on; the other side puts a new local port where the marker was. The
 * library and the host's IOServiceBridge see ordinary MessagePorts either way.
 *
 * Envelopes are `{ t: 'port', ch, m }` (a message) and `{ t: 'port', ch, close: true }`.
 */
import { MessageChannel, MessagePort } from 'node:worker_threads';
import type { PortEnvelope } from './protocol.js';

const PORT_MARKER = '__d2boxPort';
/** Ports nest at most this deep in comlink's messages (a wire value inside an argument list). */
const MAX_DEPTH = 6;
/** A callback pending on the IOService holds one port; this many is far past any honest use. */
const MAX_RELAYED_PORTS = 10_000;

interface Relayed {
  port: MessagePort;
  /** Checks what arrives from the other process before it reaches the local port. */
  accept?: (message: unknown) => boolean;
}

export class PortRelay {
  private readonly ports = new Map<string, Relayed>();
  private nextPortId = 1;
  private closed = false;

  /**
   * @param send puts an envelope on the channel (it throws on what cannot be encoded)
   * @param side a prefix for channel ids this side invents, so the two sides never pick the same one
   */
  constructor(
    private readonly send: (envelope: PortEnvelope) => void,
    private readonly side: 'h' | 'c',
  ) {}

  /**
   * Relays `port` as channel `ch`: what is posted to it goes to the other process,
   * what comes from there is posted to it. `accept` filters what comes in.
   */
  attach(ch: string, port: MessagePort, accept?: (message: unknown) => boolean): void {
    this.ports.set(ch, { port, accept });
    port.on('message', (message: unknown) => {
      if (this.closed) return;
      this.send({ t: 'port', ch, m: this.exportPorts(message, 0) });
    });
    port.once('close', () => {
      if (!this.ports.delete(ch) || this.closed) return;
      this.send({ t: 'port', ch, close: true });
    });
  }

  /** An envelope from the other process. Unknown channels are ignored: their port was closed here. */
  deliver(envelope: PortEnvelope): void {
    const relayed = this.ports.get(envelope.ch);
    if (!relayed) return;
    if (envelope.close) {
      this.ports.delete(envelope.ch);
      relayed.port.close();
      return;
    }
    if (relayed.accept && !relayed.accept(envelope.m)) return;
    const transfer: MessagePort[] = [];
    const message = this.importPorts(envelope.m, transfer, 0);
    relayed.port.postMessage(message, transfer);
  }

  /** Closes every relayed port (the other process is gone). */
  close(): void {
    this.closed = true;
    for (const { port } of this.ports.values()) port.close();
    this.ports.clear();
  }

  /** Replaces the ports in `value` by markers and relays each one. */
  private exportPorts(value: unknown, depth: number): unknown {
    if (value instanceof MessagePort) {
      const ch = `${this.side}${this.nextPortId++}`;
      this.attach(ch, value);
      return { [PORT_MARKER]: ch };
    }
    if (depth >= MAX_DEPTH || typeof value !== 'object' || value === null) return value;
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) value[i] = this.exportPorts(value[i], depth + 1);
      return value;
    }
    if (Object.getPrototypeOf(value) !== Object.prototype) return value;
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) record[key] = this.exportPorts(record[key], depth + 1);
    return value;
  }

  /** Replaces markers by new local ports, relayed under the marker's channel id. */
  private importPorts(value: unknown, transfer: MessagePort[], depth: number): unknown {
    if (depth >= MAX_DEPTH || typeof value !== 'object' || value === null) return value;
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) value[i] = this.importPorts(value[i], transfer, depth + 1);
      return value;
    }
    const record = value as Record<string, unknown>;
    const ch = record[PORT_MARKER];
    if (typeof ch === 'string' && Object.keys(record).length === 1) {
      // A hostile child could otherwise make the host hold ports without end.
      if (this.ports.has(ch) || this.ports.size >= MAX_RELAYED_PORTS) return undefined;
      const { port1, port2 } = new MessageChannel();
      // No filter on a port the other side made: on the IOService channel that is a
      // callback's port, where only answers to the host's own calls are awaited.
      this.attach(ch, port1);
      transfer.push(port2);
      return port2;
    }
    for (const key of Object.keys(record)) record[key] = this.importPorts(record[key], transfer, depth + 1);
    return value;
  }
}
