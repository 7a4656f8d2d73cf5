/**
 * What the GSS-TSIG library needs of GSS-API (RFC 2743 names, RFC 4121 mechanism):
 * an initiator's security context, stepped with the acceptor's tokens carried in
 * TKEY records, then used for MICs (RFC 3645 §4: a TSIG MAC is GSS_GetMIC over
 * RFC 8945's MAC input). This file declares the shapes only; the Kerberos V5
 * implementation is gss-api/krb5-initiator.ts.
 */

/** A socket as `LibraryHandle.connect` lends it (d2box/hooks LentSocket), so the KDC is reached the same way in a thread, a sandboxed process and a test. */
export interface ConnectedSocket {
  send(data: Uint8Array | string): void;
  onMessage(listener: (data: Buffer) => void): void;
  close(): void;
}
export type Connector = (endpoint: { address: string; port: number; protocol: 'udp' | 'tcp' }) => Promise<ConnectedSocket>;

/** Where a client's Kerberos credentials come from (Kea's `client-keytab` / `credentials-cache`). */
export interface CredentialSource {
  /** `client-principal`, e.g. `DHCP/d2.example.test@EXAMPLE.TEST`; empty: the keytab's first / the cache's default principal. */
  clientPrincipal?: string;
  /** A keytab path (`FILE:` prefix allowed). */
  clientKeytab?: string;
  /** An MIT credentials cache (`FILE:` prefix allowed). */
  credentialsCache?: string;
}

/** How the library reaches KDCs: the realm's KDCs (from krb5.conf), and the lent network. */
export interface KdcAccess {
  /** `KRB5_CONFIG`'s text (first readable file of the list), else /etc/krb5.conf's; undefined when none. */
  krb5Config?: string;
  connect: Connector;
  /** Per-request deadline (Kea's `exchange-timeout`, ms). */
  timeoutMs: number;
}

export interface InitiatorOptions {
  /** `server-principal`, e.g. `DNS/ns.example.test@EXAMPLE.TEST`. */
  serverPrincipal: string;
  replayFlag: boolean;   // gss-replay-flag
  sequenceFlag: boolean; // gss-sequence-flag
  /** Always requested, as Kea does (GSS_C_MUTUAL_FLAG | GSS_C_INTEG_FLAG). */
  mutual: true;
}

/** One step of context establishment: a token to send (in a TKEY query), and whether the context is complete. */
export interface ContextStep {
  outputToken: Buffer | null;
  complete: boolean;
}

export interface GssSecurityContext {
  /** First call with null (builds the AP-REQ); then with each token the acceptor sent back (AP-REP). Throws GssError. */
  step(inputToken: Buffer | null): Promise<ContextStep>;
  readonly complete: boolean;
  /** Seconds of life left (the service ticket's end time), once complete. */
  lifetimeSeconds(): number;
  /** RFC 4121 §4.2.6.1 MIC token over `message` (initiator's sequence numbers, acceptor subkey when it sent one). */
  getMic(message: Uint8Array): Buffer;
  /** Checks an acceptor's MIC token; false (never throws) when it does not verify. */
  verifyMic(message: Uint8Array, token: Uint8Array): boolean;
}

export class GssError extends Error {
  /** `major`: the RFC 2743 major status name, e.g. GSS_S_FAILURE; `minor`: the Kerberos error when known. */
  constructor(message: string, readonly major = 'GSS_S_FAILURE', readonly minor?: string) { super(message); }
}
