/**
 * The frames of the process mode's channel: a 4-byte big-endian length, then
 * that many bytes of JSON. Both sides use this file, as they use protocol.ts:
 * the host (process-pool.ts) reads the child with CHILD_FRAME_BOUNDS, the child
 * (workers/process-worker.ts) reads the host with HOST_FRAME_BOUNDS.
 *
 * JSON and not structured clone (Node's "advanced" IPC serialization), because
 * structured clone has back-references: a repeated object crosses once and is
 * rebuilt as often as it is referenced, so a small message could cost the host
 * millions of entries. A JSON frame costs what it weighs, and the reader checks
 * the weight before it parses and the shape right after.
 */
import { performance } from 'node:perf_hooks';
import type { FrameBounds } from './protocol.js';

const HEADER_BYTES = 4;
/** The rates' burst: a quarter second's worth may arrive at once (a burst of results, a log burst). */
const BURST_SECONDS = 0.25;

/** A frame broke a bound or did not parse; the channel is finished. */
export class ChannelViolation extends Error {
  override name = 'ChannelViolation';
}

/** A value that JSON would silently turn into something else, or drop. */
export class UnencodableValue extends TypeError {
  override name = 'UnencodableValue';
}

/**
 * `message` as one frame that a reader holding `bounds` accepts. Throws
 * UnencodableValue on what would not arrive as it was sent (functions, symbols,
 * non-finite numbers, Maps, Dates, Buffers, class instances), as structured
 * clone threw on what it could not clone, and on a frame that breaks `bounds`
 * (so that an honest sender is told here, not killed there); a cycle or a
 * BigInt throws JSON's own TypeError. An undefined property is left out, as an
 * absent one.
 */
export function encodeFrame(message: unknown, bounds: FrameBounds): Buffer {
  const json = JSON.stringify(message, plainValue);
  if (json === undefined) throw new UnencodableValue('the message is not a JSON value');
  const length = Buffer.byteLength(json);
  if (length > bounds.maxFrameBytes) throw new UnencodableValue(`the message takes ${length} bytes, over the frame limit of ${bounds.maxFrameBytes}`);
  const broken = shapeViolation(message, bounds);
  if (broken) throw new UnencodableValue(`the message has ${broken}`);
  const frame = Buffer.allocUnsafe(HEADER_BYTES + length);
  frame.writeUInt32BE(length, 0);
  frame.write(json, HEADER_BYTES, 'utf8');
  return frame;
}

function plainValue(this: Record<string, unknown>, key: string, value: unknown): unknown {
  // A value JSON took from toJSON() (a Date, a Buffer) is not the value that was there.
  if (!Object.is(value, this[key])) throw new UnencodableValue(`${describe(this[key])} has no faithful JSON form`);
  switch (typeof value) {
    case 'string':
    case 'boolean':
    case 'undefined':
      return value;
    case 'number':
      if (Number.isFinite(value)) return value;
      throw new UnencodableValue(`${value} has no JSON form`);
    case 'object': {
      if (value === null || Array.isArray(value)) return value;
      const proto = Object.getPrototypeOf(value) as unknown;
      if (proto === Object.prototype || proto === null) return value;
      throw new UnencodableValue(`${describe(value)} has no faithful JSON form`);
    }
    default:
      throw new UnencodableValue(`a ${typeof value} has no JSON form`);
  }
}

function describe(value: unknown): string {
  const name = (value as { constructor?: { name?: unknown } } | null)?.constructor?.name;
  return typeof name === 'string' ? `a ${name}` : `a ${typeof value}`;
}

/**
 * Cuts a channel's byte stream into messages, holding it to `bounds`. What it
 * keeps between reads is at most one frame: a header announcing more than
 * maxFrameBytes is refused before a byte of its body is kept.
 */
export class BoundedFrameReader {
  private readonly chunks: Buffer[] = [];
  private buffered = 0;
  /** The body length of the frame under way, once its header is in. */
  private expected = -1;
  private byteTokens: number;
  private frameTokens: number;
  private refilledAt: number;
  private broken: ChannelViolation | undefined;

  constructor(
    private readonly bounds: FrameBounds,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.byteTokens = bounds.bytesPerSecond * BURST_SECONDS;
    this.frameTokens = bounds.framesPerSecond * BURST_SECONDS;
    this.refilledAt = now();
  }

  /**
   * The messages completed by `chunk`, in order. Throws ChannelViolation when the
   * bytes break a bound or a frame does not parse; every later read throws it again.
   */
  read(chunk: Buffer): unknown[] {
    if (this.broken) throw this.broken;
    try {
      return this.consume(chunk);
    } catch (err) {
      this.broken = err instanceof ChannelViolation ? err : new ChannelViolation(`a frame could not be read: ${(err as Error).message}`);
      this.chunks.length = 0;
      this.buffered = 0;
      throw this.broken;
    }
  }

  private consume(chunk: Buffer): unknown[] {
    this.refill();
    this.byteTokens -= chunk.length;
    if (this.byteTokens < 0) throw new ChannelViolation(`more than ${this.bounds.bytesPerSecond} bytes per second`);
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const messages: unknown[] = [];
    for (;;) {
      if (this.expected < 0) {
        if (this.buffered < HEADER_BYTES) break;
        this.expected = this.take(HEADER_BYTES).readUInt32BE(0);
        if (this.expected > this.bounds.maxFrameBytes) {
          throw new ChannelViolation(`a frame of ${this.expected} bytes, over the limit of ${this.bounds.maxFrameBytes}`);
        }
      }
      if (this.buffered < this.expected) break;
      const body = this.take(this.expected);
      this.expected = -1;
      if (--this.frameTokens < 0) throw new ChannelViolation(`more than ${this.bounds.framesPerSecond} frames per second`);
      const overbuilt = structureViolation(body, this.bounds);
      if (overbuilt) throw new ChannelViolation(`a frame with ${overbuilt}`);
      let message: unknown;
      try {
        message = JSON.parse(body.toString('utf8'));
      } catch (err) {
        throw new ChannelViolation(`a frame that is not JSON (${(err as Error).message})`);
      }
      const broken = shapeViolation(message, this.bounds);
      if (broken) throw new ChannelViolation(`a frame with ${broken}`);
      messages.push(message);
    }
    return messages;
  }

  /** The first `n` buffered bytes, removed from the buffer. */
  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let filled = 0;
      while (filled < n) {
        const head = this.chunks[0]!;
        const part = Math.min(head.length, n - filled);
        head.copy(out, filled, 0, part);
        filled += part;
        if (part === head.length) this.chunks.shift();
        else this.chunks[0] = head.subarray(part);
      }
    }
    this.buffered -= n;
    return out;
  }

  private refill(): void {
    const now = this.now();
    const seconds = (now - this.refilledAt) / 1000;
    if (!(seconds > 0)) return;
    this.refilledAt = now;
    this.byteTokens = Math.min(this.bounds.bytesPerSecond * BURST_SECONDS, this.byteTokens + seconds * this.bounds.bytesPerSecond);
    this.frameTokens = Math.min(this.bounds.framesPerSecond * BURST_SECONDS, this.frameTokens + seconds * this.bounds.framesPerSecond);
  }

}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;

/**
 * Depth and element count read off a frame's bytes, before JSON.parse builds
 * anything: in JSON one byte can cost an allocation (`[` an array, `{}` an
 * object), so a frame of nesting or of empty objects would cost the parser far
 * more than its size in plain values. Elements are counted low (containers,
 * commas and colons), so this never refuses what shapeViolation would accept;
 * that exact check still runs on what it lets through.
 */
export function structureViolation(body: Buffer, bounds: FrameBounds): string | undefined {
  if (bounds.maxDepth === Infinity && bounds.maxElements === Infinity) return undefined;
  let depth = 0;
  let elements = 0;
  for (let i = 0; i < body.length; i++) {
    switch (body[i]) {
      case QUOTE: {
        // Jump to the closing quote: one not preceded by an odd run of backslashes.
        let end = body.indexOf(QUOTE, i + 1);
        for (;;) {
          if (end < 0) return undefined; // unterminated: JSON.parse refuses it
          let slashes = 0;
          while (body[end - 1 - slashes] === BACKSLASH) slashes++;
          if (slashes % 2 === 0) break;
          end = body.indexOf(QUOTE, end + 1);
        }
        i = end;
        break;
      }
      case OPEN_BRACE:
      case OPEN_BRACKET:
        if (++depth > bounds.maxDepth) return `values nested deeper than ${bounds.maxDepth}`;
        if (++elements > bounds.maxElements) return `more than ${bounds.maxElements} values`;
        break;
      case CLOSE_BRACE:
      case CLOSE_BRACKET:
        depth--;
        break;
      case COMMA:
      case COLON:
        if (++elements > bounds.maxElements) return `more than ${bounds.maxElements} values`;
        break;
    }
  }
  return undefined;
}

/**
 * What in `value` breaks the depth, element or string bounds, or undefined. The
 * walk recurses no deeper than maxDepth, so a deep value cannot exhaust the
 * stack. A `__proto__` key is refused too: copied by plain assignment on the
 * host, it would set a prototype instead of a property.
 */
export function shapeViolation(value: unknown, bounds: FrameBounds): string | undefined {
  if (bounds.maxDepth === Infinity && bounds.maxElements === Infinity && bounds.maxStringChars === Infinity) return undefined;
  const walk = new ShapeWalk(bounds);
  walk.visit(value, 1);
  return walk.broken;
}

class ShapeWalk {
  elements = 0;
  broken: string | undefined;

  constructor(private readonly bounds: FrameBounds) {}

  visit(value: unknown, depth: number): void {
    if (++this.elements > this.bounds.maxElements) {
      this.broken ??= `more than ${this.bounds.maxElements} values`;
      return;
    }
    if (typeof value === 'string') {
      if (value.length > this.bounds.maxStringChars) this.broken ??= `a string of ${value.length} characters, over the limit of ${this.bounds.maxStringChars}`;
      return;
    }
    if (typeof value !== 'object' || value === null) return;
    if (depth > this.bounds.maxDepth) {
      this.broken ??= `values nested deeper than ${this.bounds.maxDepth}`;
      return;
    }
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length && this.broken === undefined; i++) this.visit(value[i], depth + 1);
      return;
    }
    const record = value as Record<string, unknown>;
    for (const key in record) {
      if (this.broken !== undefined) return;
      if (!Object.hasOwn(record, key)) continue;
      if (key.length > this.bounds.maxStringChars) this.broken = `a key of ${key.length} characters, over the limit of ${this.bounds.maxStringChars}`;
      else if (key === '__proto__') this.broken = 'a "__proto__" key';
      else if (++this.elements > this.bounds.maxElements) this.broken = `more than ${this.bounds.maxElements} values`;
      else this.visit(record[key], depth + 1);
    }
  }
}
