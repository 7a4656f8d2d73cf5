/**
 * NameChangeTransaction, as Kea's (src/lib/d2srv/nc_trans.cc): the state model
 * shared by every add and remove transaction, and the server selection with
 * fail-over across a domain's dns-servers.
 *
 * States and events carry Kea's names. A derived transaction (nc-add.ts,
 * nc-remove.ts, simple-*.ts, check-exists-*.ts) declares its update steps: the
 * request each builds and where each answer leads. This base runs them:
 *
 *  READY_ST --START_EVT--> SELECTING_FWD_SERVER_ST (forward change) or SELECTING_REV_SERVER_ST
 *  SELECTING_*_SERVER_ST: SELECT_SERVER_EVT starts at the domain's first server,
 *      SERVER_IO_ERROR_EVT goes on with the next one; a server is chosen once
 *      select_key lets it (CONTINUE) -> first step of that direction with
 *      SERVER_SELECTED_EVT; no server left -> PROCESS_TRANS_FAILED_ST / NO_MORE_SERVERS_EVT
 *  a step state: any event but IO_COMPLETED_EVT builds the request and sends it
 *      (dns-server-timeout); IO_COMPLETED_EVT judges the answer:
 *        an answer (any RCODE)      -> the step decides
 *        timeout / I/O error / invalid or badly signed answer
 *                                   -> the same server again with SERVER_SELECTED_EVT, up to
 *                                      MAX_UPDATE_TRIES_PER_SERVER (3) sends per step and server;
 *                                      then the step's failure state with SERVER_IO_ERROR_EVT
 *                                      (usually the selecting state: the next server)
 *        the client was stopped     -> PROCESS_TRANS_FAILED_ST / UPDATE_FAILED_EVT
 *      the attempt count restarts whenever a step state is entered from another state.
 *  PROCESS_TRANS_OK_ST / PROCESS_TRANS_FAILED_ST end the model.
 *
 * Unlike Kea, the number of transitions is bounded (an add that bounces between
 * YXDOMAIN and NXDOMAIN forever ends failed), and a failure carries a reason.
 *
 * Statistics are counted here, where Kea's DNSClient counts them: update-sent,
 * update-signed / update-unsigned per request sent; update-success for every
 * answer that parsed and verified (whatever its RCODE), update-timeout, and
 * update-error for everything else; the key's `key[NAME].update-*` alongside
 * (sent, success, timeout, error) when the request was signed.
 */
import type { CalloutHandle } from '../hooks/callout-handle.js';
import type { HooksManager } from '../hooks/hooks-manager.js';
import { NextStep } from '../hooks/protocol.js';
import type { DdnsDomainConfig, DnsServerConfig } from '../config/ddns-domains.js';
import { effectiveKeyName } from '../config/ddns-domains.js';
import { reverseIpAddress } from '../config/domains.js';
import { Rcode, rcodeToText, RRType } from '../dns/codes.js';
import type { DnsClient, DnsUpdateOutcome } from '../dns/dns-client.js';
import { Name } from '../dns/name.js';
import { rdataA, rdataAAAA, rdataDHCID, rdataPTR, type Rdata } from '../dns/rdata.js';
import { TsigKey } from '../dns/tsig.js';
import { HeldTsigKey, type TsigKeyHolder } from '../dns/held-tsig-key.js';
import { D2UpdateMessage } from '../dns/update-message.js';
import { Logger } from '../log/logger.js';
import type { NameChangeRequest } from '../ncr/name-change-request.js';
import { keyStatName, type KeyStat, type UpdateStat } from '../stats/d2-stats.js';
import type { StatsMgr } from '../stats/stats-mgr.js';

// States (Kea's names).
export const READY_ST = 'READY_ST';
export const SELECTING_FWD_SERVER_ST = 'SELECTING_FWD_SERVER_ST';
export const SELECTING_REV_SERVER_ST = 'SELECTING_REV_SERVER_ST';
export const PROCESS_TRANS_OK_ST = 'PROCESS_TRANS_OK_ST';
export const PROCESS_TRANS_FAILED_ST = 'PROCESS_TRANS_FAILED_ST';
// States of the derived transactions.
export const ADDING_FWD_ADDRS_ST = 'ADDING_FWD_ADDRS_ST';
export const REPLACING_FWD_ADDRS_ST = 'REPLACING_FWD_ADDRS_ST';
export const REPLACING_REV_PTRS_ST = 'REPLACING_REV_PTRS_ST';
export const REMOVING_FWD_ADDRS_ST = 'REMOVING_FWD_ADDRS_ST';
export const REMOVING_FWD_RRS_ST = 'REMOVING_FWD_RRS_ST';
export const REMOVING_REV_PTRS_ST = 'REMOVING_REV_PTRS_ST';

// Events (Kea's names).
export const START_EVT = 'START_EVT';
export const SELECT_SERVER_EVT = 'SELECT_SERVER_EVT';
export const SERVER_SELECTED_EVT = 'SERVER_SELECTED_EVT';
export const SERVER_IO_ERROR_EVT = 'SERVER_IO_ERROR_EVT';
export const NO_MORE_SERVERS_EVT = 'NO_MORE_SERVERS_EVT';
export const IO_COMPLETED_EVT = 'IO_COMPLETED_EVT';
export const UPDATE_OK_EVT = 'UPDATE_OK_EVT';
export const UPDATE_FAILED_EVT = 'UPDATE_FAILED_EVT';
export const FQDN_IN_USE_EVT = 'FQDN_IN_USE_EVT';

/** Kea's NameChangeTransaction::MAX_UPDATE_TRIES_PER_SERVER. */
export const MAX_UPDATE_TRIES_PER_SERVER = 3;
/** d2box's bound on the state model (Kea has none). */
export const MAX_TRANSITIONS = 256;

/** Why an NCR failed: a small fixed set, for counting. */
export type FailureReason =
  | 'no-forward-match'
  | 'no-reverse-match'
  | 'ddns-disabled'
  | 'queue-full'
  | 'no-more-servers'
  | 'conflict'
  | 'rejected'
  | 'build-failure'
  | 'send-error'
  | 'stopped'
  | 'shutdown'
  | 'model-error'
  // Set by the retry manager (ncr-retry-mgr.ts), never by a transaction.
  | 'superseded'
  | 'retry-expired'
  | 'retry-overflow';

export interface TransactionOutcome {
  status: 'completed' | 'failed';
  reason?: FailureReason;
  detail?: string;
  forwardCompleted: boolean;
  reverseCompleted: boolean;
  /** The state and event the model ended with. */
  state: string;
  event: string;
  /** Every state entered, in order (for tests and debug logs). */
  trail: string[];
  /**
   * Failed with `no-more-servers` and no server of the failing direction gave
   * any answer: every attempt timed out or hit an I/O error (servers select_key
   * skipped aside). Nothing definite was said, so the NCR may be tried again.
   */
  unanswered?: boolean;
}

/** What a transaction needs from the process: shared, read-only while it runs. */
export interface TransactionContext {
  dnsClient: DnsClient;
  dnsServerTimeout: number;
  /** Configured keys by name. */
  keys: ReadonlyMap<string, TsigKey>;
  stats: StatsMgr;
  hooks?: HooksManager | undefined;
  log: Logger;
}

export type Direction = 'forward' | 'reverse';

/** Kea 2.2's message IDs for what goes wrong in each step (by the step's label): rejected, no answer, a corrupt answer. */
const STEP_IDS: Record<string, { rejected: string; ioError: string; respCorrupt: string }> = {
  'Forward Add': { rejected: 'DHCP_DDNS_FORWARD_ADD_REJECTED', ioError: 'DHCP_DDNS_FORWARD_ADD_IO_ERROR', respCorrupt: 'DHCP_DDNS_FORWARD_ADD_RESP_CORRUPT' },
  'Forward Replace': { rejected: 'DHCP_DDNS_FORWARD_REPLACE_REJECTED', ioError: 'DHCP_DDNS_FORWARD_REPLACE_IO_ERROR', respCorrupt: 'DHCP_DDNS_FORWARD_REPLACE_RESP_CORRUPT' },
  'Forward A/AAAA Remove': { rejected: 'DHCP_DDNS_FORWARD_REMOVE_ADDRS_REJECTED', ioError: 'DHCP_DDNS_FORWARD_REMOVE_ADDRS_IO_ERROR', respCorrupt: 'DHCP_DDNS_FORWARD_REMOVE_ADDRS_RESP_CORRUPT' },
  'Forward RR Remove': { rejected: 'DHCP_DDNS_FORWARD_REMOVE_RRS_REJECTED', ioError: 'DHCP_DDNS_FORWARD_REMOVE_RRS_IO_ERROR', respCorrupt: 'DHCP_DDNS_FORWARD_REMOVE_RRS_RESP_CORRUPT' },
  'Reverse Replace': { rejected: 'DHCP_DDNS_REVERSE_REPLACE_REJECTED', ioError: 'DHCP_DDNS_REVERSE_REPLACE_IO_ERROR', respCorrupt: 'DHCP_DDNS_REVERSE_REPLACE_RESP_CORRUPT' },
  'Reverse Remove': { rejected: 'DHCP_DDNS_REVERSE_REMOVE_REJECTED', ioError: 'DHCP_DDNS_REVERSE_REMOVE_IO_ERROR', respCorrupt: 'DHCP_DDNS_REVERSE_REMOVE_RESP_CORRUPT' },
};

function stepIds(step: { label: string; direction: Direction }): { rejected: string; ioError: string; respCorrupt: string } {
  return STEP_IDS[step.label] ?? STEP_IDS[step.direction === 'forward' ? 'Forward Add' : 'Reverse Replace']!;
}

/** One update of a transaction: the request it sends and where each answer leads. */
export interface StepSpec {
  direction: Direction;
  /** Kea's label for the request, e.g. "Forward Add". */
  label: string;
  build(): D2UpdateMessage;
  /** Next state and event for an answer with this RCODE. */
  onRcode(rcode: number): Transition;
  /** Where the step goes when a server has failed MAX_UPDATE_TRIES_PER_SERVER times. */
  ioFailState: string;
}

export interface Transition {
  state: string;
  event: string;
  failure?: { reason: FailureReason; detail: string };
}

/** Kea's D2TsigKey statistic name: the key name as dns::Name::toText prints it. */
export function tsigKeyStatName(name: string): string {
  let text = statNames.get(name);
  if (text === undefined) {
    try {
      text = Name.fromText(name).toText();
    } catch {
      text = name;
    }
    if (statNames.size >= MAX_CACHED) statNames.clear();
    statNames.set(name, text);
  }
  return text;
}

/** Bound on each of the small caches below (key names, keys from select_key). */
const MAX_CACHED = 256;
/** Configured or select_key key name → its statistic name (parsed once, not per update). */
const statNames = new Map<string, string>();

/** The `key[NAME].update-*` statistic names of a key, built once per key name. */
interface KeyStatNames {
  'update-sent': string;
  'update-success': string;
  'update-timeout': string;
  'update-error': string;
}
const keyStatNames = new Map<string, KeyStatNames>();
function keyStats(statName: string): KeyStatNames {
  let names = keyStatNames.get(statName);
  if (!names) {
    names = {
      'update-sent': keyStatName(statName, 'update-sent'),
      'update-success': keyStatName(statName, 'update-success'),
      'update-timeout': keyStatName(statName, 'update-timeout'),
      'update-error': keyStatName(statName, 'update-error'),
    };
    if (keyStatNames.size >= MAX_CACHED) keyStatNames.clear();
    keyStatNames.set(statName, names);
  }
  return names;
}

/**
 * Keys handed back by select_key, by (name, algorithm, secret, digest-bits): a
 * library that returns the same key for every update gets the TsigKey built
 * (and its secret checked) once, not per update. A TsigKey is immutable.
 */
const selectedKeys = new Map<string, { name: string; algorithm: string; digestBits: number; key: TsigKey }[]>();
function selectedKey(arg: KeyArgument): TsigKey {
  const digestBits = arg['digest-bits'] ?? 0;
  // By secret, then name, algorithm and digest-bits: no string built per lookup.
  let same = selectedKeys.get(arg.secret);
  if (same) {
    for (const k of same) if (k.name === arg.name && k.algorithm === arg.algorithm && k.digestBits === digestBits) return k.key;
  }
  const key = TsigKey.create({ name: arg.name, algorithm: arg.algorithm, secret: arg.secret, digestBits });
  if (!same || same.length >= 8) {
    if (selectedKeys.size >= MAX_CACHED) selectedKeys.clear();
    same = [];
    selectedKeys.set(arg.secret, same);
  }
  same.push({ name: arg.name, algorithm: arg.algorithm, digestBits, key });
  return key;
}

export abstract class NameChangeTransaction {
  readonly ncr: NameChangeRequest;
  readonly forwardDomain: DdnsDomainConfig | undefined;
  readonly reverseDomain: DdnsDomainConfig | undefined;
  protected readonly ctx: TransactionContext;

  private currState = READY_ST;
  private nextEvent = START_EVT;
  private onEntry = true;
  private updateAttempts = 0;
  private serverList: readonly DnsServerConfig[] = [];
  private nextServerPos = 0;
  private currentServer: DnsServerConfig | undefined;
  private currentDomain: DdnsDomainConfig | undefined;
  private tsigKey: TsigKey | HeldTsigKey | null = null;
  /** The key's name for `key[NAME].*` statistics, as configured or as select_key named it. */
  private tsigKeyName = '';
  private outcome: DnsUpdateOutcome | undefined;
  private forwardChangeCompleted = false;
  private reverseChangeCompleted = false;
  private failure: { reason: FailureReason; detail: string } | undefined;
  /** The last I/O problem and skipped servers, for the failure text when no server is left. */
  private lastIoProblem = '';
  private skipped: string[] = [];
  /** In the current direction: sends that got no answer, and answers that were unusable (malformed, badly signed). */
  private unansweredSends = 0;
  private unusableAnswers = 0;
  private handle: CalloutHandle | undefined;
  private readonly trail: string[] = [];
  private steps: Record<string, StepSpec> | undefined;

  constructor(ncr: NameChangeRequest, forwardDomain: DdnsDomainConfig | undefined, reverseDomain: DdnsDomainConfig | undefined, ctx: TransactionContext) {
    if (ncr.forwardChange && !forwardDomain) throw new Error('Forward change must have a forward domain');
    if (ncr.reverseChange && !reverseDomain) throw new Error('Reverse change must have a reverse domain');
    this.ncr = ncr;
    this.forwardDomain = ncr.forwardChange ? forwardDomain : undefined;
    this.reverseDomain = ncr.reverseChange ? reverseDomain : undefined;
    this.ctx = ctx;
  }

  /** Kea's transaction key: the DHCID. */
  get key(): string {
    return this.ncr.dhcidHex;
  }

  /** A short request id for logs (Kea's getRequestId is the DHCID). */
  get requestId(): string {
    return this.ncr.dhcidHex;
  }

  /** The update steps by state name. */
  protected abstract defineSteps(): Record<string, StepSpec>;
  /** The step a direction starts with once a server is selected. */
  protected abstract firstStep(direction: Direction): string;
  /** "add" or "remove", for logs. */
  protected abstract readonly kind: 'add' | 'remove';

  /** Runs the model to its end. Never rejects. */
  async run(): Promise<TransactionOutcome> {
    this.steps = this.defineSteps();
    this.trail.push(this.currState);
    try {
      for (let i = 0; i < MAX_TRANSITIONS; i++) {
        if (this.currState === PROCESS_TRANS_OK_ST) return this.finish('completed');
        if (this.currState === PROCESS_TRANS_FAILED_ST) return this.finish('failed');
        // Only states that do I/O (server selection, sending) return a promise: no async frame for the others.
        const io = this.runState();
        if (io !== undefined) await io;
      }
      this.failure = { reason: 'model-error', detail: `more than ${MAX_TRANSITIONS} state transitions` };
      this.currState = PROCESS_TRANS_FAILED_ST;
      return this.finish('failed');
    } catch (e) {
      // Kea's onModelFailure: the NCR fails.
      this.failure = { reason: 'model-error', detail: e instanceof Error ? e.message : String(e) };
      this.currState = PROCESS_TRANS_FAILED_ST;
      return this.finish('failed');
    } finally {
      if (this.handle) {
        try {
          // Without context_destroy callouts this settles at once: no wait for another turn.
          if (this.handle.hasDestroyCallouts) await this.handle.destroy();
          else void this.handle.destroy();
        } catch {
          // context_destroy failures are the hooks layer's to report
        }
      }
    }
  }

  private finish(status: 'completed' | 'failed'): TransactionOutcome {
    const out: TransactionOutcome = {
      status,
      forwardCompleted: this.forwardChangeCompleted,
      reverseCompleted: this.reverseChangeCompleted,
      state: this.currState,
      event: this.nextEvent,
      trail: [...this.trail],
    };
    if (status === 'failed') {
      const f = this.failure ?? { reason: 'model-error' as const, detail: `failed with ${this.nextEvent}` };
      out.reason = f.reason;
      out.detail = f.detail;
      if (f.reason === 'no-more-servers' && this.unansweredSends > 0 && this.unusableAnswers === 0) out.unanswered = true;
    }
    return out;
  }

  protected transition(state: string, event: string): void {
    this.onEntry = state !== this.currState;
    if (this.onEntry) this.trail.push(state);
    this.currState = state;
    this.nextEvent = event;
  }

  private runState(): Promise<void> | undefined {
    const state = this.currState;
    if (state === READY_ST) {
      if (this.nextEvent !== START_EVT) throw new Error(`wrong event ${this.nextEvent} in ${state}`);
      this.transition(this.forwardDomain ? SELECTING_FWD_SERVER_ST : SELECTING_REV_SERVER_ST, SELECT_SERVER_EVT);
      return undefined;
    }
    if (state === SELECTING_FWD_SERVER_ST || state === SELECTING_REV_SERVER_ST) return this.runSelecting(state);
    const step = this.steps![state];
    if (!step) throw new Error(`no handler for state ${state}`);
    return this.runStep(step);
  }

  private async runSelecting(state: string): Promise<void> {
    const direction: Direction = state === SELECTING_FWD_SERVER_ST ? 'forward' : 'reverse';
    if (this.nextEvent === SELECT_SERVER_EVT) this.initServerSelection(direction === 'forward' ? this.forwardDomain! : this.reverseDomain!);
    else if (this.nextEvent !== SERVER_IO_ERROR_EVT) throw new Error(`wrong event ${this.nextEvent} in ${state}`);
    if (await this.selectNextServer()) {
      this.transition(this.firstStep(direction), SERVER_SELECTED_EVT);
    } else {
      const tried = this.lastIoProblem ? `; last error: ${this.lastIoProblem}` : '';
      const skipped = this.skipped.length ? `; skipped by select_key: ${this.skipped.join(', ')}` : '';
      this.failure = { reason: 'no-more-servers', detail: `no ${direction} DNS server of ${this.currentDomain?.name} left${tried}${skipped}` };
      this.transition(PROCESS_TRANS_FAILED_ST, NO_MORE_SERVERS_EVT);
    }
  }

  private runStep(step: StepSpec): Promise<void> | undefined {
    if (this.onEntry) {
      this.onEntry = false;
      this.updateAttempts = 0;
    }
    if (this.nextEvent !== IO_COMPLETED_EVT) {
      let request: D2UpdateMessage;
      try {
        request = step.build();
      } catch (e) {
        this.failure = { reason: 'build-failure', detail: `${step.label}: cannot build the request: ${(e as Error).message}` };
        this.transition(PROCESS_TRANS_FAILED_ST, UPDATE_FAILED_EVT);
        return undefined;
      }
      return this.sendUpdate(step, request);
    }
    const outcome = this.outcome!;
    const server = this.serverText();
    switch (outcome.status) {
      case 'success': {
        const next = step.onRcode(outcome.rcode);
        if (next.failure) {
          this.failure = next.failure;
          this.ctx.log.error(
            stepIds(step).rejected,
            `DHCP_DDNS Request ID ${this.requestId}: ${step.label} rejected by DNS server ${server} for ${this.ncr.fqdn}: ${rcodeToText(outcome.rcode)}`,
          );
        }
        this.transition(next.state, next.event);
        return;
      }
      case 'timeout':
      case 'io-error':
      case 'malformed':
      case 'tsig-error':
        if (outcome.status === 'timeout' || outcome.status === 'io-error') this.unansweredSends++;
        else this.unusableAnswers++;
        this.lastIoProblem = `${outcome.status} from ${server}: ${outcome.error.message}`;
        this.ctx.log.error(
          outcome.status === 'malformed' || outcome.status === 'tsig-error' ? stepIds(step).respCorrupt : stepIds(step).ioError,
          `DHCP_DDNS Request ID ${this.requestId}: ${step.label} to ${server} for ${this.ncr.fqdn} (attempt ${this.updateAttempts}): ${outcome.error.message}`,
        );
        this.retryTransition(step.ioFailState);
        return;
      default:
        this.failure = { reason: 'stopped', detail: `${step.label} to ${server}: ${outcome.error.message}` };
        this.transition(PROCESS_TRANS_FAILED_ST, UPDATE_FAILED_EVT);
    }
  }

  /** Kea's retryTransition: the same server again, or on to `failState` after MAX_UPDATE_TRIES_PER_SERVER. */
  private retryTransition(failState: string): void {
    if (this.updateAttempts < MAX_UPDATE_TRIES_PER_SERVER) {
      this.transition(this.currState, SERVER_SELECTED_EVT);
    } else {
      if (failState === PROCESS_TRANS_FAILED_ST) {
        this.failure = { reason: 'no-more-servers', detail: `${this.currState}: ${this.lastIoProblem}` };
      }
      this.transition(failState, SERVER_IO_ERROR_EVT);
    }
  }

  private async sendUpdate(step: StepSpec, request: D2UpdateMessage): Promise<void> {
    this.updateAttempts++;
    const server = this.currentServer!;
    const key = this.tsigKey;
    const outcome = await this.ctx.dnsClient.update({ address: server['ip-address'], port: server.port }, request, {
      key,
      timeoutMs: this.ctx.dnsServerTimeout,
    });
    if (outcome.status !== 'success' && (outcome.status === 'invalid-request' || outcome.id < 0)) {
      // Nothing went out (Kea's DHCP_DDNS_TRANS_SEND_ERROR).
      const reason: FailureReason = outcome.status === 'stopped' ? 'stopped' : 'send-error';
      this.failure = { reason, detail: `${step.label} to ${this.serverText()}: ${outcome.error.message}` };
      this.ctx.log.error('DHCP_DDNS_TRANS_SEND_ERROR', `DHCP_DDNS Request ID ${this.requestId}: ${this.failure.detail}`);
      this.transition(PROCESS_TRANS_FAILED_ST, UPDATE_FAILED_EVT);
      return;
    }
    const perKey = key ? keyStats(tsigKeyStatName(this.tsigKeyName || key.name.toText())) : undefined;
    const stats = this.ctx.stats;
    const result: KeyStat = outcome.status === 'success' ? 'update-success' : outcome.status === 'timeout' ? 'update-timeout' : 'update-error';
    stats.addValue('update-sent' satisfies UpdateStat);
    stats.addValue((key ? 'update-signed' : 'update-unsigned') satisfies UpdateStat);
    stats.addValue(result);
    if (perKey) {
      stats.addValue(perKey['update-sent']);
      stats.addValue(perKey[result]);
    }
    this.outcome = outcome;
    if (this.ctx.log.isEnabled('DEBUG')) {
      this.ctx.log.debug(
        'D2BOX_UPDATE_RESPONSE_RECEIVED',
        `DHCP_DDNS Request ID ${this.requestId}: ${step.label} to ${this.serverText()}: ${outcome.status === 'success' ? `SUCCESS, rcode: ${rcodeToText(outcome.rcode)}` : outcome.status}`,
      );
    }
    this.nextEvent = IO_COMPLETED_EVT;
  }

  private initServerSelection(domain: DdnsDomainConfig): void {
    this.currentDomain = domain;
    this.serverList = domain['dns-servers'];
    this.nextServerPos = 0;
    this.currentServer = undefined;
    this.lastIoProblem = '';
    this.skipped = [];
    this.unansweredSends = 0;
    this.unusableAnswers = 0;
  }

  /** Kea's selectNextServer: the next server that select_key lets through. */
  private async selectNextServer(): Promise<boolean> {
    while (this.nextServerPos < this.serverList.length) {
      const server = this.serverList[this.nextServerPos++]!;
      this.currentServer = server;
      this.outcome = undefined;
      if (await this.selectTsigKey(server)) return true;
      this.skipped.push(this.serverText());
    }
    return false;
  }

  /** Kea's selectTSIGKey: the configured key, then select_key may change it or skip the server. */
  private async selectTsigKey(server: DnsServerConfig): Promise<boolean> {
    const keyName = effectiveKeyName(this.currentDomain!, server);
    let key: TsigKey | HeldTsigKey | null = keyName ? this.ctx.keys.get(keyName) ?? null : null;
    let name = key ? keyName : '';
    const hooks = this.ctx.hooks;
    if (hooks?.calloutsPresent('select_key')) {
      await selectKeyTurn();
      let handle = this.handle;
      if (!handle) {
        const opened = hooks.openCalloutHandle();
        handle = this.handle = opened instanceof Promise ? await opened : opened;
      }
      const current: Record<string, unknown> = { 'ip-address': server['ip-address'], port: server.port };
      if (keyName) current['key-name'] = keyName;
      handle.setArgument('current_server', current);
      handle.setArgument('tsig_key', key ? keyToArgument(key, keyName) : null);
      await hooks.callCallouts('select_key', handle);
      const status = hooks.nextStep('select_key', handle);
      if (status !== NextStep.CONTINUE) {
        this.ctx.log.info('D2BOX_SERVER_SKIPPED', `DHCP_DDNS Request ID ${this.requestId}: select_key skipped DNS server ${this.serverText()} (status ${status})`);
        return false;
      }
      const chosen = handle.hasArgument('tsig_key') ? handle.getArgument<KeyArgument | HeldKeyArgument | null>('tsig_key') : null;
      if (chosen === null || chosen === undefined) {
        key = null;
        name = '';
      } else {
        name = chosen.name;
        try {
          // A key a hook library holds: it makes and checks the MACs (held-tsig-key.ts).
          key = 'held' in chosen ? new HeldTsigKey(chosen.name, chosen.algorithm, chosen.held) : selectedKey(chosen);
        } catch (e) {
          this.ctx.log.error('D2BOX_SELECT_KEY_INVALID', `DHCP_DDNS Request ID ${this.requestId}: select_key returned an unusable key for ${this.serverText()}: ${(e as Error).message}; server skipped`);
          return false;
        }
      }
    }
    this.tsigKey = key;
    this.tsigKeyName = name;
    return true;
  }

  private serverText(): string {
    const s = this.currentServer;
    return s ? `${s['ip-address']} port:${s.port}` : '(none)';
  }

  // Helpers for the derived transactions -------------------------------------

  /** The forward direction is done: on to the reverse one, or the end. */
  protected forwardDone(): Transition {
    this.forwardChangeCompleted = true;
    return this.reverseDomain ? { state: SELECTING_REV_SERVER_ST, event: SELECT_SERVER_EVT } : { state: PROCESS_TRANS_OK_ST, event: UPDATE_OK_EVT };
  }

  protected reverseDone(): Transition {
    this.reverseChangeCompleted = true;
    return { state: PROCESS_TRANS_OK_ST, event: UPDATE_OK_EVT };
  }

  protected rejected(label: string, rcode: number, reason: FailureReason = 'rejected'): Transition {
    const why = reason === 'conflict' ? ' (the name belongs to another client)' : '';
    return {
      state: PROCESS_TRANS_FAILED_ST,
      event: UPDATE_FAILED_EVT,
      failure: { reason, detail: `${label} for ${this.ncr.fqdn} rejected by ${this.serverText()}: ${rcodeToText(rcode)}${why}` },
    };
  }

  protected prepNewRequest(direction: Direction): D2UpdateMessage {
    const domain = direction === 'forward' ? this.forwardDomain : this.reverseDomain;
    if (!domain) throw new Error(`no ${direction} domain`);
    return new D2UpdateMessage().setZone(zoneName(domain));
  }

  // The names and RDATA of the NCR, parsed once per transaction (each is read by
  // every request the transaction builds, retries included); read-only once built.
  private cachedFqdn: Name | undefined;
  private cachedReverseName: Name | undefined;
  private cachedAddressRdata: Rdata | undefined;
  private cachedDhcidRdata: Rdata | undefined;
  private cachedPtrRdata: Rdata | undefined;

  protected get fqdn(): Name {
    return (this.cachedFqdn ??= Name.fromText(this.ncr.fqdn));
  }

  protected get reverseName(): Name {
    return (this.cachedReverseName ??= Name.fromText(reverseIpAddress(this.ncr.ipAddress)));
  }

  /** A for IPv4 leases, AAAA for IPv6. */
  protected get addressType(): number {
    return this.ncr.ipVersion === 4 ? RRType.A : RRType.AAAA;
  }

  protected get leaseAddressRdata(): Rdata {
    return (this.cachedAddressRdata ??= this.ncr.ipVersion === 4 ? rdataA(this.ncr.ipAddress) : rdataAAAA(this.ncr.ipAddress));
  }

  protected get dhcidRdata(): Rdata {
    return (this.cachedDhcidRdata ??= rdataDHCID(this.ncr.dhcid));
  }

  protected get ptrRdata(): Rdata {
    return (this.cachedPtrRdata ??= rdataPTR(this.fqdn));
  }

  /**
   * The reverse step of every add mode: delete the PTR (and DHCID) RRsets at the
   * reverse name, add PTR → FQDN (and our DHCID); no prerequisite. NOERROR → done.
   */
  protected replaceRevPtrsStep(withDhcid: boolean): StepSpec {
    return {
      direction: 'reverse',
      label: 'Reverse Replace',
      ioFailState: SELECTING_REV_SERVER_ST,
      build: () => {
        const rev = this.reverseName;
        const m = this.prepNewRequest('reverse').deleteRRset(rev, RRType.PTR);
        if (withDhcid) m.deleteRRset(rev, RRType.DHCID);
        m.addRR(rev, this.leaseTtl, this.ptrRdata);
        if (withDhcid) m.addRR(rev, this.leaseTtl, this.dhcidRdata);
        return m;
      },
      onRcode: (rcode) => (rcode === Rcode.NOERROR ? this.reverseDone() : this.rejected('Reverse Replace', rcode)),
    };
  }

  /**
   * The reverse step of the remove modes. `check`: prerequisite PTR → FQDN, then
   * delete every RRset at the reverse name; `simple`: delete the PTR and DHCID
   * RRsets; `without-dhcid`: delete the PTR RRset. NOERROR or NXRRSET → done.
   */
  protected removeRevPtrsStep(kind: 'check' | 'simple' | 'without-dhcid'): StepSpec {
    return {
      direction: 'reverse',
      label: 'Reverse Remove',
      ioFailState: SELECTING_REV_SERVER_ST,
      build: () => {
        const rev = this.reverseName;
        const m = this.prepNewRequest('reverse');
        if (kind === 'check') return m.requireRRsetExistsWithValue(rev, this.ptrRdata).deleteAllRRsets(rev);
        m.deleteRRset(rev, RRType.PTR);
        if (kind === 'simple') m.deleteRRset(rev, RRType.DHCID);
        return m;
      },
      onRcode: (rcode) => (isNoErrorOrNxrrset(rcode) ? this.reverseDone() : this.rejected('Reverse Remove', rcode)),
    };
  }

  /** The TTL of added records: the lease length, as Kea's transactions use it. */
  protected get leaseTtl(): number {
    return this.ncr.leaseLength;
  }
}

interface HeldKeyArgument {
  name: string;
  algorithm: string;
  held: TsigKeyHolder;
}

interface KeyArgument {
  name: string;
  algorithm: string;
  secret: string;
  'digest-bits'?: number;
}

/**
 * select_key calls are started together, once per turn of the event loop: the
 * transactions that reach server selection while one batch of datagrams (NCRs,
 * DNS answers) is read wait for the check phase, then all go on in the same
 * microtask checkpoint, so their callouts reach the library's worker in one
 * message instead of one message (and one thread wake-up) each. Order among
 * them is kept (FIFO); each transaction still makes exactly its own calls.
 */
let selectKeyWaiters: (() => void)[] = [];
let selectKeyScheduled = false;
function releaseSelectKeyWaiters(): void {
  const waiters = selectKeyWaiters;
  selectKeyWaiters = [];
  selectKeyScheduled = false;
  for (const w of waiters) w();
}
function selectKeyTurn(): Promise<void> {
  return new Promise((resolve) => {
    selectKeyWaiters.push(resolve);
    if (!selectKeyScheduled) {
      selectKeyScheduled = true;
      setImmediate(releaseSelectKeyWaiters);
    }
  });
}

/** A domain's zone name, parsed once per configured domain (configurations are immutable once applied). */
const zoneNames = new WeakMap<DdnsDomainConfig, Name>();
function zoneName(domain: DdnsDomainConfig): Name {
  let name = zoneNames.get(domain);
  if (!name) {
    name = Name.fromText(domain.name);
    zoneNames.set(domain, name);
  }
  return name;
}

/** A key's secret as base64, encoded once per key. */
const secretText = new WeakMap<TsigKey, string>();

function keyToArgument(key: TsigKey, configuredName: string): KeyArgument {
  let secret = secretText.get(key);
  if (secret === undefined) {
    secret = key.secret.toString('base64');
    secretText.set(key, secret);
  }
  const arg: KeyArgument = { name: configuredName || key.name.toText(), algorithm: key.algorithm, secret };
  if (key.digestBits > 0) arg['digest-bits'] = key.digestBits;
  return arg;
}

/** RCODEs the remove steps take as done (the records are already gone). */
export const isNoErrorOrNxrrset = (rcode: number): boolean => rcode === Rcode.NOERROR || rcode === Rcode.NXRRSET;
