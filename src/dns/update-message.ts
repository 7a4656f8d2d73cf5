/**
 * RFC 2136 DNS UPDATE messages, as Kea's D2UpdateMessage: an outbound request
 * built section by section, and validation of an inbound response.
 *
 * Prerequisites (RFC 2136 §2.4) and updates (§2.5) are encoded exactly as the
 * RFC's tables say:
 *
 * | meaning                              | class     | type  | TTL | RDATA  |
 * |--------------------------------------|-----------|-------|-----|--------|
 * | name is in use                       | ANY       | ANY   | 0   | empty  |
 * | name is not in use                   | NONE      | ANY   | 0   | empty  |
 * | RRset exists (value independent)     | ANY       | type  | 0   | empty  |
 * | RRset exists (value dependent)       | zone      | type  | 0   | rdata  |
 * | RRset does not exist                 | NONE      | type  | 0   | empty  |
 * | add to an RRset                      | zone      | type  | ttl | rdata  |
 * | delete an RRset                      | ANY       | type  | 0   | empty  |
 * | delete all RRsets from a name        | ANY       | ANY   | 0   | empty  |
 * | delete an RR from an RRset           | NONE      | type  | 0   | rdata  |
 */
import { randomInt } from 'node:crypto';
import { Opcode, RRClass, RRType } from './codes.js';
import { DnsError, malformed, ok, type Result } from './errors.js';
import { encodeMessage, type DecodedMessage, type Message, type ResourceRecord } from './message.js';
import { Name } from './name.js';
import { EMPTY_RDATA, rdataTypeOf, type Rdata } from './rdata.js';

export type NameLike = Name | string;
const toName = (n: NameLike): Name => (typeof n === 'string' ? Name.fromText(n) : n);

function typeFor(rdata: Rdata, type: number | undefined): number {
  const t = type ?? rdataTypeOf(rdata);
  if (t === undefined) throw new DnsError('invalid-argument', 'a raw RDATA needs an explicit RR type');
  return t;
}

export class D2UpdateMessage {
  id: number;
  private zone: { name: Name; class: number } | undefined;
  readonly prerequisites: ResourceRecord[] = [];
  readonly updates: ResourceRecord[] = [];
  readonly additional: ResourceRecord[] = [];

  /** A random ID unless one is given; the client may replace it when sending. */
  constructor(id?: number) {
    this.id = id ?? randomInt(0, 0x10000);
  }

  /** Sets (or replaces) the single zone entry: zone name, class (default IN), type SOA. */
  setZone(name: NameLike, zoneClass: number = RRClass.IN): this {
    this.zone = { name: toName(name), class: zoneClass };
    return this;
  }

  getZone(): { name: Name; class: number } | undefined {
    return this.zone;
  }

  private get zoneClass(): number {
    return this.zone?.class ?? RRClass.IN;
  }

  private prereq(name: NameLike, type: number, klass: number, rdata: Rdata = EMPTY_RDATA): this {
    this.prerequisites.push({ name: toName(name), type, class: klass, ttl: 0, rdata });
    return this;
  }

  private update(name: NameLike, type: number, klass: number, ttl: number, rdata: Rdata = EMPTY_RDATA): this {
    this.updates.push({ name: toName(name), type, class: klass, ttl, rdata });
    return this;
  }

  // Prerequisites, RFC 2136 §2.4.

  /** §2.4.4 Name is in use. */
  requireNameInUse(name: NameLike): this {
    return this.prereq(name, RRType.ANY, RRClass.ANY);
  }
  /** §2.4.5 Name is not in use. */
  requireNameNotInUse(name: NameLike): this {
    return this.prereq(name, RRType.ANY, RRClass.NONE);
  }
  /** §2.4.1 RRset exists (value independent). */
  requireRRsetExists(name: NameLike, type: number): this {
    return this.prereq(name, type, RRClass.ANY);
  }
  /** §2.4.2 RRset exists (value dependent): one call per RR of the RRset. */
  requireRRsetExistsWithValue(name: NameLike, rdata: Rdata, type?: number): this {
    return this.prereq(name, typeFor(rdata, type), this.zoneClass, rdata);
  }
  /** §2.4.3 RRset does not exist. */
  requireRRsetNotExists(name: NameLike, type: number): this {
    return this.prereq(name, type, RRClass.NONE);
  }

  // Updates, RFC 2136 §2.5.

  /** §2.5.1 Add to an RRset. */
  addRR(name: NameLike, ttl: number, rdata: Rdata, type?: number): this {
    return this.update(name, typeFor(rdata, type), this.zoneClass, ttl, rdata);
  }
  /** §2.5.2 Delete an RRset. */
  deleteRRset(name: NameLike, type: number): this {
    return this.update(name, type, RRClass.ANY, 0);
  }
  /** §2.5.3 Delete all RRsets from a name. */
  deleteAllRRsets(name: NameLike): this {
    return this.update(name, RRType.ANY, RRClass.ANY, 0);
  }
  /** §2.5.4 Delete an RR from an RRset. */
  deleteRR(name: NameLike, rdata: Rdata, type?: number): this {
    return this.update(name, typeFor(rdata, type), RRClass.NONE, 0, rdata);
  }

  /** The message as a plain {@link Message}. Throws unless the zone is set (RFC 2136 §2.3). */
  toMessage(): Message {
    if (!this.zone) throw new DnsError('invalid-argument', 'the zone section of a DNS update must hold exactly one record (RFC 2136 §2.3)');
    // A literal of one shape (no spread of the header): this runs for every update sent.
    return {
      id: this.id,
      qr: false,
      opcode: Opcode.UPDATE,
      aa: false,
      tc: false,
      rd: false,
      ra: false,
      ad: false,
      cd: false,
      rcode: 0,
      question: [{ name: this.zone.name, type: RRType.SOA, class: this.zone.class }],
      answer: this.prerequisites.slice(),
      authority: this.updates.slice(),
      additional: this.additional.slice(),
    };
  }

  /** Unsigned wire form (sign it with TsigContext). */
  toWire(): Buffer {
    return encodeMessage(this.toMessage());
  }
}

/**
 * Kea's checks on a received update response (D2UpdateMessage::validateResponse):
 * opcode UPDATE, QR set, at most one zone record.
 */
export function validateUpdateResponse(msg: DecodedMessage): Result<DecodedMessage> {
  if (msg.opcode !== Opcode.UPDATE) return malformed(`response is not a DNS update (opcode ${msg.opcode})`);
  if (!msg.qr) return malformed('response has the QR flag cleared');
  if (msg.question.length > 1) return malformed(`response holds ${msg.question.length} zone records, at most 1 allowed`);
  return ok(msg);
}
