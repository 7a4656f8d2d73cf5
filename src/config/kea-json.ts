/**
 * Kea's JSON-with-comments reader.
 *
 * Kea's configuration lexer (src/bin/d2/d2_lexer.ll) accepts JSON plus:
 *  - comments outside strings: `# ...` and `// ...` to the end of the line, `/* ... *\/`;
 *  - `<?include "file"?>` directives, which splice another file in at token level;
 *  - extra commas before `}` / `]` and doubled commas (a warning, not an error);
 *  - integers with leading zeros, a leading `+` on numbers.
 * It rejects duplicate keys in a map, control characters in strings, `\u` escapes
 * above `\u00ff` and upper-case `TRUE`/`FALSE`/`NULL`.
 *
 * JSON.parse can do none of the extensions, reports no position for several errors
 * on Node 20 ("Unexpected token '}', ... is not valid JSON") and silently keeps the
 * last of duplicate keys, so this module tokenizes and parses itself, after the
 * comments have been replaced by spaces (offsets, lines and columns survive).
 * Every value's position is recorded by its JSON path, so later validation can
 * say where in which file a wrong value is.
 */
import { readFileSync } from 'node:fs';

/** A place in a configuration file, 1-based like Kea's `file:line:col`. */
export interface SourcePos {
  file: string;
  line: number;
  col: number;
}

export function formatPos(p: SourcePos): string {
  return `${p.file}:${p.line}:${p.col}`;
}

export class KeaJsonError extends Error {
  constructor(
    /** What is wrong, without the position. */
    readonly reason: string,
    readonly pos?: SourcePos,
  ) {
    super(pos ? `${formatPos(pos)}: ${reason}` : reason);
    this.name = 'KeaJsonError';
  }
}

/** What a value was written as: Kea's grammar tells integers from floating point. */
export type ValueKind = 'map' | 'list' | 'string' | 'integer' | 'float' | 'boolean' | 'null';

export interface ValueInfo {
  /** Where the value starts. */
  pos: SourcePos;
  /** Where its key starts, for map members. */
  keyPos?: SourcePos;
  kind: ValueKind;
}

export type JsonPath = readonly (string | number)[];

/** `/DhcpDdns/tsig-keys/0/name`: RFC 6901 JSON pointer. */
export function pathKey(path: JsonPath): string {
  return path.map((p) => '/' + String(p).replace(/~/g, '~0').replace(/\//g, '~1')).join('');
}

export interface KeaJsonDocument {
  value: unknown;
  /** Position and lexical kind of every value, by `pathKey(path)`. */
  info: Map<string, ValueInfo>;
  /** Kea's syntax warnings (extra commas), each with its position. */
  warnings: string[];
  /** Files read through `<?include?>`, in order. */
  includes: string[];
}

export interface KeaJsonOptions {
  /** Name used in positions; also the base for nothing (Kea opens includes relative to the cwd). */
  file?: string;
  /** Reads an included file; default `fs.readFileSync(path, 'utf8')`. */
  readInclude?: (path: string) => string;
  /** Disable `<?include?>` (e.g. for text that arrived over the control channel). */
  allowInclude?: boolean;
  /**
   * Name of the map at `path` for "duplicate X entries in NAME map" messages,
   * as Kea's parser context names them; default "JSON".
   */
  mapName?: (path: JsonPath) => string;
}

const MAX_INCLUDE_DEPTH = 10;

/**
 * Replaces every comment outside strings by spaces, keeping newlines, so that
 * offsets, lines and columns of everything else are unchanged. `#` and `//`
 * run to the end of the line; `/*` runs to the next `*\/`.
 * Throws KeaJsonError for an unclosed `/*`, as Kea does.
 */
export function stripKeaComments(text: string, file = '<string>'): string {
  const out: string[] = [];
  let i = 0;
  let runStart = 0;
  const n = text.length;
  const blank = (from: number, to: number) => {
    out.push(text.slice(runStart, from));
    out.push(text.slice(from, to).replace(/[^\n]/g, ' '));
    runStart = to;
  };
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      // Skip a string; an unterminated one ends at the line end (the lexer reports it).
      i++;
      while (i < n) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) i += 2;
        else if (d === 0x22 || d === 0x0a) { i++; break; }
        else i++;
      }
      if (i > n) i = n;
    } else if (c === 0x23 /* # */ || (c === 0x2f /* / */ && text.charCodeAt(i + 1) === 0x2f)) {
      let j = text.indexOf('\n', i);
      if (j < 0) j = n;
      blank(i, j);
      i = j;
    } else if (c === 0x2f && text.charCodeAt(i + 1) === 0x2a /* * */) {
      const j = text.indexOf('*/', i + 2);
      if (j < 0) {
        const line = lineCol(text, i).line;
        throw new KeaJsonError(`Comment not closed. (/* in line ${line})`, { file, ...lineCol(text, i) });
      }
      blank(i, j + 2);
      i = j + 2;
    } else {
      i++;
    }
  }
  out.push(text.slice(runStart));
  return out.join('');
}

function lineCol(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let last = -1;
  for (let k = text.indexOf('\n'); k >= 0 && k < offset; k = text.indexOf('\n', k + 1)) {
    line++;
    last = k;
  }
  return { line, col: offset - last };
}

type TokType = '{' | '}' | '[' | ']' | ',' | ':' | 'string' | 'number' | 'true' | 'false' | 'null' | 'eof';

interface Token {
  type: TokType;
  pos: SourcePos;
  /** Decoded string value, or the number's text. */
  text: string;
  numKind?: 'integer' | 'float';
}

const TOKEN_NAMES: Record<TokType, string> = {
  '{': '{',
  '}': '}',
  '[': '[',
  ']': ']',
  ',': '","',
  ':': '":"',
  string: 'constant string',
  number: 'number',
  true: 'boolean',
  false: 'boolean',
  null: 'null',
  eof: 'end of file',
};

function tokenName(t: Token): string {
  if (t.type === 'number') return t.numKind === 'integer' ? 'integer' : 'floating point';
  return TOKEN_NAMES[t.type];
}

/** One file being tokenized; includes push another on the stack. */
class Source {
  i = 0;
  line = 1;
  lineStart = 0;
  constructor(
    readonly file: string,
    readonly text: string,
  ) {}
  pos(at = this.i): SourcePos {
    return { file: this.file, line: this.line, col: at - this.lineStart + 1 };
  }
}

class Lexer {
  private readonly stack: Source[] = [];
  readonly includes: string[] = [];
  constructor(
    text: string,
    file: string,
    private readonly opts: KeaJsonOptions,
  ) {
    this.stack.push(new Source(file, stripKeaComments(text, file)));
  }

  private get src(): Source {
    return this.stack[this.stack.length - 1]!;
  }

  private fail(reason: string, pos: SourcePos): never {
    throw new KeaJsonError(reason, pos);
  }

  next(): Token {
    for (;;) {
      const s = this.src;
      const t = s.text;
      // Blanks and newlines.
      while (s.i < t.length) {
        const c = t[s.i];
        if (c === ' ' || c === '\t' || c === '\r') s.i++;
        else if (c === '\n') {
          s.i++;
          s.line++;
          s.lineStart = s.i;
        } else break;
      }
      if (s.i >= t.length) {
        if (this.stack.length > 1) {
          this.stack.pop(); // back after the <?include?> directive, already consumed
          continue;
        }
        return { type: 'eof', pos: s.pos(), text: '' };
      }
      const c = t[s.i]!;
      const pos = s.pos();
      if (c === '<' && t[s.i + 1] === '?') {
        this.openDirective(pos);
        continue;
      }
      switch (c) {
        case '{': case '}': case '[': case ']': case ',': case ':':
          s.i++;
          return { type: c, pos, text: c };
        case '"':
          return { type: 'string', pos, text: this.string() };
      }
      const word = /^[A-Za-z]+/.exec(t.slice(s.i, s.i + 16));
      if (word) {
        const w = word[0];
        if (w === 'true' || w === 'false' || w === 'null') {
          s.i += w.length;
          return { type: w, pos, text: w };
        }
        const lower = w.toLowerCase();
        if (lower === 'true' || lower === 'false' || lower === 'null') {
          this.fail(`JSON ${lower} reserved keyword is lower case only`, pos);
        }
        this.fail(`Invalid character: ${w[0]}`, pos);
      }
      const num = /^[-+]?[0-9]*\.?[0-9]*(?:[eE][-+]?[0-9]+)?/.exec(t.slice(s.i))![0];
      if (num.length > 0 && /[0-9]/.test(num)) {
        s.i += num.length;
        if (/^-?[0-9]+$/.test(num)) {
          const v = Number(num);
          if (!Number.isFinite(v) || Math.abs(v) > 9223372036854775807) {
            this.fail(`Failed to convert ${num} to an integer.`, pos);
          }
          return { type: 'number', pos, text: num, numKind: 'integer' };
        }
        if (!Number.isFinite(Number(num))) this.fail(`Failed to convert ${num} to a floating point.`, pos);
        return { type: 'number', pos, text: num, numKind: 'float' };
      }
      this.fail(`Invalid character: ${c === '\f' ? '\\f' : c}`, pos);
    }
  }

  /** Reads a JSON string at the cursor (the opening quote) and returns its value. */
  private string(): string {
    const s = this.src;
    const t = s.text;
    const start = s.i;
    const startPos = s.pos();
    let i = start + 1;
    let out = '';
    for (;;) {
      if (i >= t.length || t[i] === '\n') {
        this.fail(`unterminated string ${t.slice(start, i)}`, startPos);
      }
      const c = t[i]!;
      const code = c.charCodeAt(0);
      if (c === '"') break;
      if (code < 0x20) {
        this.fail(`Invalid control in string (character ${i - start}, code 0x${code.toString(16).padStart(2, '0')})`, startPos);
      }
      if (c !== '\\') {
        out += c;
        i++;
        continue;
      }
      const e = t[i + 1];
      switch (e) {
        case '"': case '\\': case '/': out += e; i += 2; break;
        case 'b': out += '\b'; i += 2; break;
        case 'f': out += '\f'; i += 2; break;
        case 'n': out += '\n'; i += 2; break;
        case 'r': out += '\r'; i += 2; break;
        case 't': out += '\t'; i += 2; break;
        case 'u': {
          const hex = t.slice(i + 2, i + 6);
          if (!/^[0-9A-Fa-f]{4}$/.test(hex)) {
            this.fail(`Overflow unicode escape in ${t.slice(start, i + 2 + hex.length)}`, startPos);
          }
          if (!hex.startsWith('00')) {
            this.fail(`Unsupported unicode escape \\u${hex} (Kea supports only \\u0000 to \\u00ff)`, startPos);
          }
          out += String.fromCharCode(parseInt(hex, 16));
          i += 6;
          break;
        }
        default:
          this.fail(`Bad escape \\${e ?? ''} in string`, startPos);
      }
    }
    s.i = i + 1;
    return out;
  }

  /** `<?include "file"?>`: open the file and continue tokenizing inside it. */
  private openDirective(pos: SourcePos): void {
    const s = this.src;
    const m = /^<\?[ \t]*include[ \t]*"([^"\n]+)"[ \t]*\?>/.exec(s.text.slice(s.i));
    if (!m) this.fail('Directive not closed or not understood (expected <?include "file"?>)', pos);
    if (this.opts.allowInclude === false) this.fail('<?include?> is not allowed here', pos);
    if (this.stack.length > MAX_INCLUDE_DEPTH) this.fail('Too many nested include.', pos);
    const name = m[1]!;
    let body: string;
    try {
      body = (this.opts.readInclude ?? ((p: string) => readFileSync(p, 'utf8')))(name);
    } catch {
      this.fail(`Can't open include file ${name}`, pos);
    }
    s.i += m[0].length;
    this.includes.push(name);
    this.stack.push(new Source(name, stripKeaComments(body, name)));
  }
}

class Parser {
  private tok: Token;
  readonly info = new Map<string, ValueInfo>();
  readonly warnings: string[] = [];
  constructor(
    private readonly lex: Lexer,
    private readonly opts: KeaJsonOptions,
  ) {
    this.tok = lex.next();
  }

  private peek(): TokType {
    return this.tok.type;
  }

  private advance(): Token {
    const t = this.tok;
    this.tok = this.lex.next();
    return t;
  }

  private unexpected(expecting?: string): never {
    const what = `syntax error, unexpected ${tokenName(this.tok)}` + (expecting ? `, expecting ${expecting}` : '');
    throw new KeaJsonError(what, this.tok.pos);
  }

  private extraComma(t: Token): void {
    const w = `${formatPos(t.pos)}: Extraneous comma. A piece of configuration may have been omitted.`;
    if (!this.warnings.includes(w)) this.warnings.push(w);
  }

  document(): unknown {
    const v = this.value([]);
    if (this.peek() !== 'eof') this.unexpected('end of file');
    return v;
  }

  private value(path: (string | number)[], keyPos?: SourcePos): unknown {
    const t = this.tok;
    const record = (kind: ValueKind) => {
      const vi: ValueInfo = { pos: t.pos, kind };
      if (keyPos) vi.keyPos = keyPos;
      this.info.set(pathKey(path), vi);
    };
    switch (t.type) {
      case '{': record('map'); return this.map(path);
      case '[': record('list'); return this.list(path);
      case 'string': this.advance(); record('string'); return t.text;
      case 'number': this.advance(); record(t.numKind!); return Number(t.text);
      case 'true': this.advance(); record('boolean'); return true;
      case 'false': this.advance(); record('boolean'); return false;
      case 'null': this.advance(); record('null'); return null;
      default: this.unexpected();
    }
  }

  private map(path: (string | number)[]): Record<string, unknown> {
    this.advance(); // {
    const obj: Record<string, unknown> = Object.create(null);
    const keyPositions = new Map<string, SourcePos>();
    if (this.peek() === '}') {
      this.advance();
      return { ...obj };
    }
    for (;;) {
      if (this.peek() !== 'string') this.unexpected('constant string');
      const keyTok = this.advance();
      const key = keyTok.text;
      const prev = keyPositions.get(key);
      if (prev) {
        const name = this.opts.mapName?.(path) ?? 'JSON';
        // Kea's grammar words these two apart: a comment is kept inside user-context.
        const what = name === 'JSON' ? `duplicate ${key} entries in ${name} map` : key === 'comment' ? 'duplicate user-context/comment entries' : key === 'user-context' ? 'duplicate user-context entries' : `duplicate ${key} entries in ${name} map`;
        throw new KeaJsonError(`${what} (previous at ${formatPos(prev)})`, keyTok.pos);
      }
      if (this.peek() !== ':') this.unexpected('":"');
      this.advance();
      // Kea's "previous at" names where its grammar placed the earlier element: a section
      // (a map or list the grammar knows) and a comment at their keyword, anything else
      // (scalars, user-context and the JSON inside it) where the value starts.
      const section = (this.peek() === '{' || this.peek() === '[') && key !== 'user-context' && (this.opts.mapName?.(path) ?? 'JSON') !== 'JSON';
      keyPositions.set(key, section || key === 'comment' ? keyTok.pos : this.tok.pos);
      obj[key] = this.value([...path, key], keyTok.pos);
      // One or more commas, possibly before the closing brace (Kea warns).
      if (this.peek() === '}') { this.advance(); break; }
      if (this.peek() !== ',') this.unexpected('"," or }');
      this.advance();
      while (this.peek() === ',') this.extraComma(this.advance());
      if (this.peek() === '}') {
        this.extraCommaBefore();
        this.advance();
        break;
      }
    }
    // A plain object (not null-prototype) so consumers can use it normally;
    // "__proto__" as a key is kept as data by defineProperty.
    const plain: Record<string, unknown> = {};
    for (const k of Object.keys(obj)) {
      Object.defineProperty(plain, k, { value: obj[k], enumerable: true, writable: true, configurable: true });
    }
    return plain;
  }

  private lastComma?: Token;
  private extraCommaBefore(): void {
    // The comma just consumed before a closing bracket is the extraneous one.
    if (this.lastComma) this.extraComma(this.lastComma);
  }

  private list(path: (string | number)[]): unknown[] {
    this.advance(); // [
    const arr: unknown[] = [];
    if (this.peek() === ']') {
      this.advance();
      return arr;
    }
    for (;;) {
      arr.push(this.value([...path, arr.length]));
      if (this.peek() === ']') { this.advance(); break; }
      if (this.peek() !== ',') this.unexpected('"," or ]');
      this.advance();
      while (this.peek() === ',') this.extraComma(this.advance());
      if (this.peek() === ']') {
        this.extraCommaBefore();
        this.advance();
        break;
      }
    }
    return arr;
  }

  /** Remembers each comma token so a trailing one can be reported at its own position. */
  trackCommas(): void {
    const orig = this.advance.bind(this);
    this.advance = () => {
      const t = orig();
      if (t.type === ',') this.lastComma = t;
      return t;
    };
  }
}

/**
 * Parses Kea-flavoured JSON. Throws KeaJsonError with the file position and what
 * is wrong ("syntax error, unexpected }, expecting constant string", "duplicate
 * port entries in DhcpDdns map (previous at f:2:5)", "Comment not closed. ...").
 */
export function parseKeaJson(text: string, opts: KeaJsonOptions = {}): KeaJsonDocument {
  const file = opts.file ?? '<string>';
  const lex = new Lexer(text, file, opts);
  const p = new Parser(lex, opts);
  p.trackCommas();
  const value = p.document();
  return { value, info: p.info, warnings: p.warnings, includes: lex.includes };
}

/** Parses without positions; throws KeaJsonError. Handy for tests and the control channel. */
export function parseKeaJsonValue(text: string, opts: KeaJsonOptions = {}): unknown {
  return parseKeaJson(text, opts).value;
}
