import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { KeaJsonError, parseKeaJson, parseKeaJsonValue, stripKeaComments } from '../src/config/kea-json.js';

function errorOf(text: string, file = 'f.json'): KeaJsonError {
  try {
    parseKeaJson(text, { file });
  } catch (e) {
    if (e instanceof KeaJsonError) return e;
    throw e;
  }
  throw new Error('expected a KeaJsonError');
}

describe('stripKeaComments', () => {
  it('blanks //, /* */ and # comments and keeps every offset and newline', () => {
    const text = '{ // one\n "a": 1, # two\n /* three\n still */ "b": 2 }';
    const out = stripKeaComments(text);
    expect(out.length).toBe(text.length);
    expect([...out].map((c, i) => (c === '\n' ? i : -1)).filter((i) => i >= 0)).toEqual(
      [...text].map((c, i) => (c === '\n' ? i : -1)).filter((i) => i >= 0),
    );
    expect(out.indexOf('"b"')).toBe(text.indexOf('"b"'));
    expect(out).not.toMatch(/one|two|three|still/);
    expect(JSON.parse(out)).toEqual({ a: 1, b: 2 });
  });

  it('leaves comment-like text inside strings alone', () => {
    const text = '{"u": "http://x/#y", "c": "/* no */", "h": "# not", "q": "a\\"# still string"}';
    expect(stripKeaComments(text)).toBe(text);
    expect(parseKeaJsonValue(text)).toEqual({ u: 'http://x/#y', c: '/* no */', h: '# not', q: 'a"# still string' });
  });

  it('does not let a # comment leak its content into the data (jsonc-parser does)', () => {
    expect(parseKeaJsonValue('{"a":1, # say "x": 2 here\n "b":3}')).toEqual({ a: 1, b: 3 });
  });

  it('ends a comment right after a value with no space', () => {
    expect(parseKeaJsonValue('{"p":3#x\n,"q":4//y\n}')).toEqual({ p: 3, q: 4 });
  });

  it('reports an unclosed /* with its line', () => {
    const e = errorOf('{\n "a": 1,\n /* open\n "b": 2 }');
    expect(e.reason).toBe('Comment not closed. (/* in line 3)');
    expect(e.pos).toEqual({ file: 'f.json', line: 3, col: 2 });
  });
});

describe('parseKeaJson errors carry line:column', () => {
  it('a missing value', () => {
    const e = errorOf('{\n  "a": 1,\n  "b": }');
    expect(e.message).toBe('f.json:3:8: syntax error, unexpected }');
  });

  it('a missing colon, after a comment on the same line (offsets survived)', () => {
    const e = errorOf('{ /* c */ "a" 1 }');
    expect(e.pos).toMatchObject({ line: 1, col: 15 });
    expect(e.reason).toBe('syntax error, unexpected integer, expecting ":"');
  });

  it('trailing garbage', () => {
    expect(errorOf('{}\n\n  x').message).toBe('f.json:3:3: Invalid character: x');
  });

  it('empty input', () => {
    expect(errorOf('  # only a comment\n').message).toBe('f.json:2:1: syntax error, unexpected end of file');
  });

  it('duplicate keys, naming both positions', () => {
    const e = errorOf('{"a": {"x": 1,\n "x": 2}}');
    expect(e.message).toBe('f.json:2:2: duplicate x entries in JSON map (previous at f.json:1:13)');
  });

  it('upper-case literals, control characters, unsupported escapes', () => {
    expect(errorOf('[TRUE]').reason).toBe('JSON true reserved keyword is lower case only');
    expect(errorOf('["a\tb"]').reason).toMatch(/^Invalid control in string/);
    expect(errorOf('["\\u0100"]').reason).toMatch(/^Unsupported unicode escape \\u0100/);
    expect(errorOf('["\\q"]').reason).toMatch(/^Bad escape/);
    expect(errorOf('[99999999999999999999]').reason).toBe('Failed to convert 99999999999999999999 to an integer.');
  });
});

describe('parseKeaJson values', () => {
  it('accepts and warns about extra commas, as Kea', () => {
    const doc = parseKeaJson('{"a": [1, 2,],\n "b": 3,}', { file: 'f' });
    expect(doc.value).toEqual({ a: [1, 2], b: 3 });
    expect(doc.warnings).toEqual([
      'f:1:12: Extraneous comma. A piece of configuration may have been omitted.',
      'f:2:8: Extraneous comma. A piece of configuration may have been omitted.',
    ]);
  });

  it('refuses a leading comma', () => {
    expect(errorOf('[, 1]').reason).toBe('syntax error, unexpected ","');
  });

  it('tells integers from floating point and records positions by JSON path', () => {
    const doc = parseKeaJson('{\n "i": 53,\n "f": 53.0, "e": 1e2, "l": [ {"z": 007} ]\n}', { file: 'p' });
    expect(doc.value).toEqual({ i: 53, f: 53, e: 100, l: [{ z: 7 }] });
    expect(doc.info.get('/i')).toEqual({ pos: { file: 'p', line: 2, col: 7 }, keyPos: { file: 'p', line: 2, col: 2 }, kind: 'integer' });
    expect(doc.info.get('/f')?.kind).toBe('float');
    expect(doc.info.get('/e')?.kind).toBe('float');
    expect(doc.info.get('/l/0/z')).toMatchObject({ kind: 'integer', pos: { line: 3, col: 36 } });
  });

  it('decodes \\u00XX escapes and keeps "__proto__" as data', () => {
    const v = parseKeaJsonValue('{"s": "\\u00e9\\n", "__proto__": {"x": 1}}') as Record<string, unknown>;
    expect(v.s).toBe('é\n');
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(Object.keys(v)).toEqual(['s', '__proto__']);
  });

  it('splices <?include "file"?> in at token level, with the included file in positions', () => {
    const dir = mkdtempSync(join(tmpdir(), 'd2box-inc-'));
    const inc = join(dir, 'keys.json');
    writeFileSync(inc, '# included\n[ {"name": "k"} ]');
    const doc = parseKeaJson(`{"keys": <?include "${inc}"?>, "n": 1}`, { file: 'main' });
    expect(doc.value).toEqual({ keys: [{ name: 'k' }], n: 1 });
    expect(doc.includes).toEqual([inc]);
    expect(doc.info.get('/keys/0/name')?.pos).toEqual({ file: inc, line: 2, col: 12 });
    expect(doc.info.get('/n')?.pos.file).toBe('main');
  });

  it('reports a missing include file and can refuse includes', () => {
    expect(errorOf('{"a": <?include "/nonexistent/x.json"?>}').reason).toBe("Can't open include file /nonexistent/x.json");
    expect(() => parseKeaJson('<?include "/etc/hostname"?>', { allowInclude: false })).toThrow(/not allowed/);
  });
});
