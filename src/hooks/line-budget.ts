/**
 * A per-second budget of log lines for what a library can trigger over and
 * over (an IOService callback that throws on every tick): past the budget,
 * lines are dropped, and one summary per second says how many.
 */
export class LineBudget {
  private windowStart = 0;
  private used = 0;
  private dropped = 0;
  private summaryTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly perSecond: number,
    /** Writes the summary of `dropped` lines; called at most once a second. */
    private readonly onDropped: (dropped: number) => void,
  ) {}

  /** Whether one more line may be written now. */
  take(): boolean {
    const now = Date.now();
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.used = 0;
    }
    if (this.used < this.perSecond) {
      this.used++;
      return true;
    }
    this.dropped++;
    // The summary comes at the window's end, even when nothing else does.
    this.summaryTimer ??= setTimeout(() => {
      // The summary closes its window: the next one starts with a full budget, one summary a second at most.
      this.windowStart = Date.now();
      this.used = 0;
      this.flush();
    }, Math.max(1, 1000 - (now - this.windowStart))).unref();
    return false;
  }

  /** Writes the pending summary now (the library is going away). */
  flush(): void {
    clearTimeout(this.summaryTimer);
    this.summaryTimer = undefined;
    if (this.dropped === 0) return;
    const dropped = this.dropped;
    this.dropped = 0;
    this.onDropped(dropped);
  }
}
