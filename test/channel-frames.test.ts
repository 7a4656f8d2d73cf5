/**
 * The process channel's frames (src/hooks/channel-frames.ts) on their own: frames cut
 * anywhere by the socket come out whole and in order; the encoder refuses what would
 * not arrive as sent, and what the host's bounds would refuse; the reader refuses each
 * bound, keeping no more than one frame. The daemon-level attacks are in
 * test/hostile-channel.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { BoundedFrameReader, ChannelViolation, encodeFrame, UnencodableValue } from '../src/hooks/channel-frames.js';
import { CHILD_FRAME_BOUNDS, HOST_FRAME_BOUNDS, type FrameBounds } from '../src/hooks/protocol.js';

const header = (length: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(length);
  return b;
};
const rawFrame = (text: string): Buffer => Buffer.concat([header(Buffer.byteLength(text)), Buffer.from(text)]);

describe('encodeFrame and BoundedFrameReader', () => {
  it('frames cut at every byte, or many to a chunk, come out whole and in order', () => {
    const messages = [{ t: 'port', ch: 'callout', m: { text: 'é€😀', n: [1, 2.5, null, true] } }, { t: 'done', id: 7, result: { version: 20200 } }, { a: '' }];
    const bytes = Buffer.concat(messages.map((m) => encodeFrame(m, CHILD_FRAME_BOUNDS)));
    const oneByOne = new BoundedFrameReader(CHILD_FRAME_BOUNDS);
    const out: unknown[] = [];
    for (let i = 0; i < bytes.length; i++) out.push(...oneByOne.read(bytes.subarray(i, i + 1)));
    expect(out).toEqual(messages);
    expect(new BoundedFrameReader(CHILD_FRAME_BOUNDS).read(bytes)).toEqual(messages);
  });

  it('refuses what JSON would change or drop, as structured clone refused what it could not clone', () => {
    for (const value of [new Map([[1, 2]]), new Date(0), Buffer.from('x'), () => 1, Symbol('s'), NaN, Infinity, new (class Point {})()]) {
      expect(() => encodeFrame({ t: 'port', ch: 'callout', m: { value } }, HOST_FRAME_BOUNDS), String(value)).toThrow(UnencodableValue);
    }
    expect(() => encodeFrame({ big: 1n }, HOST_FRAME_BOUNDS)).toThrow(TypeError);
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(() => encodeFrame(cycle, HOST_FRAME_BOUNDS)).toThrow(TypeError);
    // An undefined property is an absent one.
    expect(new BoundedFrameReader(HOST_FRAME_BOUNDS).read(encodeFrame({ a: undefined, b: 1 }, HOST_FRAME_BOUNDS))).toEqual([{ b: 1 }]);
  });

  it('the child is told, before sending, what the host would refuse', () => {
    const { maxFrameBytes, maxDepth, maxElements, maxStringChars } = CHILD_FRAME_BOUNDS;
    let deep: unknown = 0;
    for (let i = 0; i < maxDepth + 1; i++) deep = [deep];
    const cases: [unknown, RegExp][] = [
      [{ s: 'x'.repeat(maxFrameBytes) }, /over the frame limit/],
      [deep, /nested deeper than/],
      [new Array(maxElements).fill(0), /more than \d+ values/],
      [{ s: 'x'.repeat(maxStringChars + 1) }, /a string of/],
      [JSON.parse('{"__proto__": {"polluted": true}}'), /"__proto__" key/],
    ];
    for (const [value, why] of cases) expect(() => encodeFrame(value, CHILD_FRAME_BOUNDS)).toThrow(why);
  });

  it('refuses each bound as a ChannelViolation, and stays refused', () => {
    const bounds: FrameBounds = { ...CHILD_FRAME_BOUNDS, maxFrameBytes: 1000, maxDepth: 4, maxElements: 20, maxStringChars: 10 };
    const cases: [Buffer, RegExp][] = [
      [header(2 ** 31), /a frame of 2147483648 bytes, over the limit of 1000/],
      [rawFrame('{"t":'), /not JSON/],
      [rawFrame(''), /not JSON/],
      [rawFrame('[[[[[1]]]]]'), /nested deeper than 4/],
      [rawFrame(JSON.stringify(new Array(20).fill(0))), /more than 20 values/],
      [rawFrame('{"a":"01234567890"}'), /a string of 11 characters/],
      [rawFrame('{"01234567890":1}'), /a key of 11 characters/],
      [rawFrame('{"__proto__":1}'), /"__proto__" key/],
    ];
    for (const [bytes, why] of cases) {
      const reader = new BoundedFrameReader(bounds);
      expect(() => reader.read(bytes)).toThrow(why);
      expect(() => reader.read(rawFrame('{}'))).toThrow(ChannelViolation);
    }
  });

  it('counts structure off the bytes before parsing, and never inside strings', () => {
    const bounds: FrameBounds = { ...CHILD_FRAME_BOUNDS, maxDepth: 3, maxElements: 6 };
    // Brackets, commas, colons and escaped quotes inside strings are text.
    const text = '{"a":"[[[[,,,::\\"[[{{\\\\","b":[1]}';
    expect(new BoundedFrameReader(bounds).read(rawFrame(text))).toEqual([JSON.parse(text)]);
    // Refused before JSON.parse would build 200,000 arrays or objects.
    expect(() => new BoundedFrameReader(CHILD_FRAME_BOUNDS).read(rawFrame('['.repeat(200_000) + ']'.repeat(200_000)))).toThrow(/nested deeper than 64/);
    expect(() => new BoundedFrameReader(CHILD_FRAME_BOUNDS).read(rawFrame(`[${new Array(200_000).fill('{}').join(',')}]`))).toThrow(/more than 50000 values/);
  });

  it('holds the rates, with a quarter second of burst, on its own clock', () => {
    let now = 0;
    const bounds: FrameBounds = { ...CHILD_FRAME_BOUNDS, bytesPerSecond: 4000, framesPerSecond: 40 };
    const frames = new BoundedFrameReader(bounds, () => now);
    const tiny = rawFrame('{}');
    for (let i = 0; i < 10; i++) frames.read(tiny); // a quarter second's worth
    expect(() => frames.read(tiny)).toThrow(/more than 40 frames per second/);

    const bytes = new BoundedFrameReader(bounds, () => now);
    const big = rawFrame(JSON.stringify({ s: 'x'.repeat(490) })); // 504 bytes
    bytes.read(big);
    now += 125; // half the burst back
    bytes.read(big);
    expect(() => bytes.read(big)).toThrow(/more than 4000 bytes per second/);
  });
});
