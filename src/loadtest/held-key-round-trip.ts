/**
 * What the daemon does with a key select_key hands back as held, done by the
 * load tester: sign an update with it (the holder makes the MAC) and check a
 * signed answer (the holder checks the MAC), through the same HeldTsigContext
 * the DNS client uses, so a library's sign and verify can be load-tested like
 * its callouts. There is no DNS server: the answer is signed by the holder too,
 * over the input RFC 8945 §4.3.1 gives a server (request MAC, then the answer),
 * which is right for a symmetric key (HMAC); a holder whose two directions
 * differ (GSS-TSIG) fails the check, and that is counted, not hidden.
 */
import { Opcode, Rcode, RRClass, RRType } from '../dns/codes.js';
import { HeldTsigContext, HeldTsigKey, type TsigKeyHolder } from '../dns/held-tsig-key.js';
import { decodeMessage, emptyHeader, encodeMessage } from '../dns/message.js';
import { Name } from '../dns/name.js';
import { requestMacPrefix } from '../dns/tsig.js';

/** select_key's tsig_key when a library holds the key. */
export interface HeldKeyArgument {
  name: string;
  algorithm: string;
  held: TsigKeyHolder;
}

export function isHeldKeyArgument(value: unknown): value is HeldKeyArgument {
  if (typeof value !== 'object' || value === null || !('held' in value)) return false;
  const v = value as Partial<HeldKeyArgument>;
  return typeof v.name === 'string' && typeof v.algorithm === 'string' && typeof v.held === 'object' && v.held !== null;
}

/** How one round trip ended: `sign` and `verify` are the holder's failures (thrown, late, malformed). */
export type HeldKeyOutcome = 'ok' | 'sign-failed' | 'verify-failed' | 'rejected';

/** An update for `zone` with ID `id`, as the DNS client sends one (its records do not matter to the MAC). */
function updateWire(zone: string, id: number, response = false): Buffer {
  const header = { ...emptyHeader(id, Opcode.UPDATE), qr: response };
  return encodeMessage({ ...header, question: [{ name: Name.fromText(zone), type: RRType.SOA, class: RRClass.IN }], answer: [], authority: [], additional: [] });
}

/** Sign an update with the held key, then check an answer signed for it; `rejected`: the MAC did not verify. */
export async function heldKeyRoundTrip(argument: HeldKeyArgument, zone: string, id: number): Promise<HeldKeyOutcome> {
  const key = new HeldTsigKey(argument.name, argument.algorithm, argument.held);
  const request = new HeldTsigContext(key);
  let signed: Buffer;
  try {
    signed = await request.sign(updateWire(zone, id));
  } catch {
    return 'sign-failed';
  }
  const decodedRequest = decodeMessage(signed);
  const requestMac = decodedRequest.ok ? decodedRequest.value.tsig?.rdata.mac : undefined;
  if (!requestMac) return 'sign-failed';
  // The server's side, played by the same holder: its MAC covers the request's MAC first.
  const server = new HeldTsigContext(
    new HeldTsigKey(argument.name, argument.algorithm, {
      sign: (k, data) => argument.held.sign(k, Buffer.concat([...requestMacPrefix(requestMac), data])),
      verify: () => Promise.resolve(false),
    }),
  );
  const answer = updateWire(zone, id, true);
  let signedAnswer: Buffer;
  try {
    signedAnswer = await server.sign(answer);
  } catch {
    return 'sign-failed';
  }
  const decoded = decodeMessage(signedAnswer);
  if (!decoded.ok) return 'sign-failed';
  try {
    const verdict = await request.verifyResponse(signedAnswer, decoded.value);
    return verdict.ok ? 'ok' : verdict.error === Rcode.BADSIG ? 'rejected' : 'verify-failed';
  } catch {
    return 'verify-failed';
  }
}
