/**
 * Kea's NCR wire format (`NameChangeRequest::fromFormat`/`toFormat`, FMT_JSON):
 * one NCR per UDP datagram, a 2-byte big-endian length, then that many bytes of
 * JSON text. Bytes after the framed text are ignored, as Kea does. Kea's
 * listener reads into a 4096-byte buffer, so a frame longer than that can never
 * reach it: such a frame is `oversize` here.
 *
 * `decodeNcr` never throws: every datagram ends as `{ok: true, ncr}` or
 * `{ok: false, code, field?, reason}`.
 */
import { isUtf8 } from 'node:buffer';
import { parseKeaJson } from './kea-json.js';
import { ncrFromKeaValue, ncrToJSON, type NameChangeRequest, type NcrJsonDialect, type NcrResult } from './name-change-request.js';

/** Kea's receive buffer (NameChangeUDPListener::RECV_BUF_MAX). */
export const RECV_BUF_MAX = 4096;
/** The longest JSON text a frame can carry to Kea. */
export const MAX_JSON_LENGTH = RECV_BUF_MAX - 2;

export function decodeNcr(datagram: Uint8Array): NcrResult {
  try {
    const n = datagram.length;
    if (n < 2) return { ok: false, code: 'short-frame', reason: `frame of ${n} byte(s) has no 2-byte length prefix` };
    const len = (datagram[0]! << 8) | datagram[1]!;
    if (len > MAX_JSON_LENGTH) {
      return { ok: false, code: 'oversize', reason: `length prefix ${len} exceeds the ${MAX_JSON_LENGTH}-byte maximum (receive buffer ${RECV_BUF_MAX})` };
    }
    if (n - 2 < len) return { ok: false, code: 'truncated', reason: `length prefix ${len} but only ${n - 2} byte(s) follow` };
    const body = datagram.subarray(2, 2 + len);
    if (!isUtf8(body)) return { ok: false, code: 'not-utf8', reason: 'NCR text is not valid UTF-8' };
    const parsed = parseKeaJson(body);
    if (!parsed.ok) return { ok: false, code: 'bad-json', reason: `malformed NCR JSON: ${parsed.error}` };
    return ncrFromKeaValue(parsed.value);
  } catch (e) {
    // Not reachable by design; kept so that no input can ever throw out of the receive path.
    return { ok: false, code: 'bad-json', reason: `decoder failure: ${String(e)}` };
  }
}

/** Frame JSON text: 2-byte big-endian length + UTF-8 bytes. Throws if it cannot fit a frame Kea can read. */
export function frameJson(json: string): Buffer {
  const body = Buffer.from(json, 'utf8');
  if (body.length > MAX_JSON_LENGTH) throw new RangeError(`NCR JSON of ${body.length} bytes exceeds ${MAX_JSON_LENGTH}`);
  const out = Buffer.allocUnsafe(2 + body.length);
  out.writeUInt16BE(body.length, 0);
  body.copy(out, 2);
  return out;
}

/** Encode an NCR as Kea does (`toFormat(FMT_JSON)`). */
export function encodeNcr(ncr: NameChangeRequest, dialect?: NcrJsonDialect): Buffer {
  return frameJson(ncrToJSON(ncr, dialect));
}
