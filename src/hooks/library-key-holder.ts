/**
 * A TSIG key held by a hook library (select_key's `{ name, algorithm, held: true }`):
 * the engine's HeldTsigKey asks this holder for each MAC, and it asks the
 * library. Requests made in one turn go in one message (an update per NCR, a
 * burst of NCRs: one message, as callouts); each has the library's callout
 * deadline. A MAC or verdict that does not come, comes late, or comes malformed
 * is the library's failure (counted in its hooks-status failures: `timeout`,
 * `throw`, `invalid-argument`); the engine then treats the update as Kea treats
 * a key error (the update is not sent, or its answer is not trusted).
 */
import { HELD_KEY_MAC_OCTETS, type FailureKind, type HostMessage, type KeyOperation, type KeyOperationResult } from './protocol.js';
import type { HeldTsigKey, TsigKeyHolder } from '../dns/held-tsig-key.js';

interface Waiting {
  op: KeyOperation['op'];
  resolve: (answer: KeyOperationResult) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export interface KeyHolderLink {
  /** Sends to the library's worker; false when it has none loaded. */
  post(message: HostMessage): boolean;
  deadlineMs(): number;
  failed(kind: FailureKind, message: string): void;
}

export class LibraryKeyHolder implements TsigKeyHolder {
  private nextId = 1;
  private readonly waiting = new Map<number, Waiting>();
  private outbox: KeyOperation[] = [];
  private flushQueued = false;

  constructor(
    readonly library: string,
    private readonly link: KeyHolderLink,
  ) {}

  async sign(key: HeldTsigKey, data: Buffer): Promise<Buffer> {
    const answer = await this.ask({ id: 0, op: 'sign', key: key.name.toText(), algorithm: key.algorithm, data: data.toString('base64') });
    const mac = answer.mac === undefined ? undefined : Buffer.from(answer.mac, 'base64');
    if (!mac || mac.length < HELD_KEY_MAC_OCTETS.min || mac.length > HELD_KEY_MAC_OCTETS.max) {
      return this.fail('invalid-argument', `hook library ${this.library} gave no MAC of ${HELD_KEY_MAC_OCTETS.min} to ${HELD_KEY_MAC_OCTETS.max} octets for key ${key.name.toText()}`);
    }
    return mac;
  }

  async verify(key: HeldTsigKey, data: Buffer, mac: Buffer): Promise<boolean> {
    const answer = await this.ask({ id: 0, op: 'verify', key: key.name.toText(), algorithm: key.algorithm, data: data.toString('base64'), mac: mac.toString('base64') });
    if (typeof answer.verified !== 'boolean') return this.fail('invalid-argument', `hook library ${this.library} gave no verdict on a MAC of key ${key.name.toText()}`);
    return answer.verified;
  }

  /** The library's answers (checked against protocol-schemas' KeyOperationResultSchema). */
  onResults(batch: readonly KeyOperationResult[]): void {
    for (const answer of batch) {
      const w = this.waiting.get(answer.id);
      if (!w) continue; // past its deadline: already counted
      this.waiting.delete(answer.id);
      clearTimeout(w.timer);
      if (answer.error !== undefined) {
        this.link.failed('throw', `hook library ${this.library}: ${w.op} failed: ${answer.error}`);
        w.reject(new Error(answer.error));
      } else {
        w.resolve(answer);
      }
    }
  }

  /** The worker is gone or unloaded: nothing waiting will be answered. */
  abandonAll(why: string): void {
    for (const [id, w] of this.waiting) {
      this.waiting.delete(id);
      clearTimeout(w.timer);
      w.reject(new Error(why));
    }
  }

  private ask(op: KeyOperation): Promise<KeyOperationResult> {
    op.id = this.nextId++;
    return new Promise((resolve, reject) => {
      const deadline = this.link.deadlineMs();
      const timer = setTimeout(() => {
        if (!this.waiting.delete(op.id)) return;
        const message = `hook library ${this.library} did not ${op.op} with key ${op.key} within ${deadline} ms`;
        this.link.failed('timeout', message);
        reject(new Error(message));
      }, deadline);
      this.waiting.set(op.id, { op: op.op, resolve, reject, timer });
      this.outbox.push(op);
      if (!this.flushQueued) {
        this.flushQueued = true;
        queueMicrotask(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushQueued = false;
    const batch = this.outbox;
    this.outbox = [];
    if (batch.length === 0 || this.link.post({ t: 'key-ops', batch })) return;
    // No worker to ask (quarantined, restarting, stopped): each request fails now, not at its deadline.
    const why = `hook library ${this.library} is not ready to sign or verify`;
    for (const op of batch) {
      const w = this.waiting.get(op.id);
      if (!w) continue;
      this.waiting.delete(op.id);
      clearTimeout(w.timer);
      this.link.failed('quarantined', why);
      w.reject(new Error(why));
    }
  }

  private fail(kind: FailureKind, message: string): never {
    this.link.failed(kind, message);
    throw new Error(message);
  }
}
