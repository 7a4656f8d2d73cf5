/**
 * One library's share of the main loop through the IOService, from the io-*
 * keys of its "sandbox" policy (library-config.ts). Every call and every fired
 * callback costs the main loop a message or two; without a ration, 10,000
 * `setInterval(cb, 0)` saturated it. A library over its share is held back
 * (calls refused, callbacks delayed or interval ticks skipped); one held back in
 * more than `io-throttle-seconds` seconds in a row is failed, and so is one with
 * more calls refused in a second than `io-calls-per-second`.
 */
import { performance } from 'node:perf_hooks';
import type { SandboxPolicy } from './library-config.js';

export interface IORationLimits {
  /** setInterval periods below this are raised to it. */
  minIntervalMs: number;
  /** Posted tasks, timeouts and intervals the library may have live at once. */
  maxTimers: number;
  /** Callbacks fired and not yet answered by the library's worker. */
  maxPendingCallbacks: number;
  callbacksPerSecond: number;
  callsPerSecond: number;
  /** Consecutive seconds with the library held back, past which it fails. */
  throttleSeconds: number;
}

export function ioRationLimits(policy: SandboxPolicy): IORationLimits {
  return {
    minIntervalMs: policy['io-min-interval-ms'],
    maxTimers: policy['io-max-timers'],
    maxPendingCallbacks: policy['io-max-pending-callbacks'],
    callbacksPerSecond: policy['io-callbacks-per-second'],
    callsPerSecond: policy['io-calls-per-second'],
    throttleSeconds: policy['io-throttle-seconds'],
  };
}

/** At most `perSecond` on average, with bursts of up to one second's worth. */
export class TokenBucket {
  private tokens: number;
  private refilledAt = performance.now();

  constructor(private readonly perSecond: number) {
    this.tokens = perSecond;
  }

  take(): boolean {
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }

  /** How long until take() can succeed. */
  msUntilToken(): number {
    this.refill();
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) * 1000) / this.perSecond);
  }

  private refill(): void {
    const now = performance.now();
    this.tokens = Math.min(this.perSecond, this.tokens + ((now - this.refilledAt) * this.perSecond) / 1000);
    this.refilledAt = now;
  }
}

export class IORation {
  readonly calls: TokenBucket;
  readonly callbacks: TokenBucket;
  /** The last whole second in which the library was held back, and how many such seconds ran in a row. */
  private lastSecond = -Infinity;
  private streak = 0;
  private refusedSecond = -Infinity;
  private refusedCount = 0;

  constructor(readonly limits: IORationLimits) {
    this.calls = new TokenBucket(limits.callsPerSecond);
    this.callbacks = new TokenBucket(limits.callbacksPerSecond);
  }

  /**
   * Notes a refused call; true when more calls than io-calls-per-second were
   * refused within one second: a library asking for twice its share and more
   * is storming, not unlucky, and is failed at once.
   */
  refused(): boolean {
    const second = Math.floor(performance.now() / 1000);
    if (second !== this.refusedSecond) {
      this.refusedSecond = second;
      this.refusedCount = 0;
    }
    return ++this.refusedCount > this.limits.callsPerSecond;
  }

  /** Notes that the library was held back now; true once it has been in more than throttleSeconds seconds in a row. */
  heldBack(): boolean {
    const second = Math.floor(performance.now() / 1000);
    if (second !== this.lastSecond) {
      this.streak = second === this.lastSecond + 1 ? this.streak + 1 : 1;
      this.lastSecond = second;
    }
    return this.streak > this.limits.throttleSeconds;
  }
}
