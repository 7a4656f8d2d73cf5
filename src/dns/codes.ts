/**
 * DNS parameter codes used by d2box (IANA "Domain Name System (DNS) Parameters").
 */

export const Opcode = {
  QUERY: 0,
  IQUERY: 1,
  STATUS: 2,
  NOTIFY: 4,
  UPDATE: 5,
} as const;

/** Header RCODEs (4 bits) and the TSIG error codes (RFC 8945 §3). */
export const Rcode = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
  YXDOMAIN: 6,
  YXRRSET: 7,
  NXRRSET: 8,
  NOTAUTH: 9,
  NOTZONE: 10,
  BADSIG: 16,
  BADKEY: 17,
  BADTIME: 18,
  BADMODE: 19,
  BADNAME: 20,
  BADALG: 21,
  BADTRUNC: 22,
  BADCOOKIE: 23,
} as const;

const rcodeNames = new Map<number, string>(Object.entries(Rcode).map(([k, v]) => [v, k]));

/** Name of an RCODE or TSIG error, e.g. `NXRRSET`, or `RCODE<n>` when unknown. */
export function rcodeToText(code: number): string {
  return rcodeNames.get(code) ?? `RCODE${code}`;
}

export const RRType = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  DNAME: 39,
  OPT: 41,
  DHCID: 49,
  TKEY: 249,
  TSIG: 250,
  ANY: 255,
} as const;

const typeNames = new Map<number, string>(Object.entries(RRType).map(([k, v]) => [v, k]));

export function rrTypeToText(code: number): string {
  return typeNames.get(code) ?? `TYPE${code}`;
}

export const RRClass = {
  IN: 1,
  CH: 3,
  /** RFC 2136: "name not in use", "delete an RR from an RRset". */
  NONE: 254,
  /** RFC 2136: "name in use", "RRset exists", "delete RRset(s)"; also TSIG. */
  ANY: 255,
} as const;

const classNames = new Map<number, string>(Object.entries(RRClass).map(([k, v]) => [v, k]));

export function rrClassToText(code: number): string {
  return classNames.get(code) ?? `CLASS${code}`;
}
