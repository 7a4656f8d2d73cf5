/**
 * The NCR journal (`d2box-journal-file`, opt-in): no NCR lost to a crash.
 *
 * Kea keeps its queue in memory only, and DHCP servers never send an NCR
 * again, so a kill -9, the OOM killer or a power cut loses every NCR D2 had
 * queued or was retrying. With the journal, an NCR is queued only once it is
 * on disk, and marked done when it ends; at start the NCRs that never ended
 * are queued again, in the order they were received.
 *
 * The file is append-only text, one record a line: `<crc32> A <id> <NCR JSON>`
 * (accepted) or `<crc32> D <id>` (done), the CRC-32 (hex) over what follows
 * it. Writes are batched: everything admitted or ended during one turn of the
 * loop goes out in one write and one fdatasync, off the main thread (libuv's
 * pool), while the next batch gathers. A torn or corrupt record (a crash in
 * the middle of a write, a disk error) fails its CRC or its syntax: it is
 * logged, counted and skipped; nothing crashes.
 *
 * The file is rewritten (to a new file, synced, then renamed over the old) at
 * open, with only the NCRs still open, and whenever it has grown past
 * COMPACT_AFTER_BYTES, so it stays about the size of the NCRs in flight.
 *
 * An NCR that ends because d2box shuts down (`shutdown`, `stopped`) is not
 * marked done: it was not served, and the next start serves it.
 */
import { closeSync, fdatasyncSync, openSync, renameSync, writeSync } from 'node:fs';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { crc32 } from 'node:zlib';
import { Logger } from '../log/logger.js';
import type { NameChangeRequest } from '../ncr/name-change-request.js';
import { decodeNcr, encodeNcr, frameJson } from '../ncr/wire.js';

/** Past this size the file is rewritten with only the open NCRs. */
export const COMPACT_AFTER_BYTES = 4 * 1024 * 1024;

/** An NCR the journal holds open, with its id in the file. */
export interface JournaledNcr {
  id: number;
  ncr: NameChangeRequest;
}

/** What reading a journal found. */
export interface JournalReplay {
  /** NCRs accepted and never marked done, in the order they were accepted. */
  unfinished: NameChangeRequest[];
  /** Records that failed their CRC or syntax (a torn tail, a corrupt block): skipped. */
  corrupt: number;
  /** Records read intact. */
  records: number;
}

const hex = (n: number): string => n.toString(16).padStart(8, '0');

function line(payload: string): string {
  return `${hex(crc32(payload))} ${payload}\n`;
}

function ncrJson(ncr: NameChangeRequest): string {
  // The wire frame is a 2-byte length and Kea's JSON: the journal keeps the JSON.
  return encodeNcr(ncr).subarray(2).toString('utf8');
}

/** Parses a journal's text. Never throws: what cannot be read is counted as corrupt. */
export function parseJournal(text: string): JournalReplay {
  const open = new Map<number, NameChangeRequest>();
  let corrupt = 0;
  let records = 0;
  const lines = text.split('\n');
  // The text after the last newline is a record whose write never finished (or nothing).
  const torn = lines.pop();
  if (torn !== undefined && torn !== '') corrupt++;
  for (const l of lines) {
    if (l === '') continue;
    const m = /^([0-9a-f]{8}) ([AD]) (\d{1,15})(?: (.*))?$/.exec(l);
    const payload = m ? l.slice(9) : '';
    if (!m || parseInt(m[1]!, 16) !== crc32(payload)) {
      corrupt++;
      continue;
    }
    const id = Number(m[3]);
    if (m[2] === 'D') {
      open.delete(id);
      records++;
      continue;
    }
    const decoded = m[4] === undefined ? undefined : decodeNcr(frameJson(m[4]));
    if (!decoded?.ok) {
      corrupt++;
      continue;
    }
    open.set(id, decoded.ncr);
    records++;
  }
  // A Map iterates in insertion order: the order the NCRs were accepted.
  return { unfinished: [...open.values()], corrupt, records };
}

interface Pending {
  text: string;
  ncr?: NameChangeRequest;
  id: number;
  then?: (ncr: NameChangeRequest, id: number) => void;
}

export class NcrJournal {
  private fd: FileHandle;
  private nextId: number;
  /** The open records' lines, by id: what a compaction writes. */
  private readonly openLines = new Map<number, string>();
  private pending: Pending[] = [];
  private writing = false;
  private flushScheduled = false;
  private bytes: number;
  private closed = false;
  private readonly idleWaiters: (() => void)[] = [];
  private loggedWriteError = false;

  private constructor(
    readonly path: string,
    fd: FileHandle,
    opened: JournaledNcr[],
    bytes: number,
    private readonly log: Logger,
  ) {
    this.fd = fd;
    this.bytes = bytes;
    for (const o of opened) this.openLines.set(o.id, line(`A ${o.id} ${ncrJson(o.ncr)}`));
    this.nextId = opened.length + 1;
  }

  /**
   * Opens (creating it if need be) the journal at `path`: reads what a previous
   * run left, rewrites the file with only the NCRs that never ended, and
   * returns them to be queued again, in order. Rejects when the file cannot be
   * read or written (the configuration naming it is then refused).
   */
  static async open(path: string, log = new Logger('d2box-journal')): Promise<{ journal: NcrJournal; replay: JournaledNcr[]; found: JournalReplay }> {
    let text = '';
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    const found = parseJournal(text);
    if (found.corrupt > 0) {
      log.warn('D2BOX_JOURNAL_CORRUPT', `NCR journal ${path}: ${found.corrupt} torn or corrupt record(s) skipped (a crash during a write leaves one at the end)`);
    }
    const replay = found.unfinished.map((ncr, i) => ({ id: i + 1, ncr }));
    const body = replay.map((r) => line(`A ${r.id} ${ncrJson(r.ncr)}`)).join('');
    rewrite(path, body);
    const fd = await open(path, 'a');
    if (replay.length > 0) log.info('D2BOX_JOURNAL_REPLAY', `NCR journal ${path}: ${replay.length} NCR(s) not finished before the last stop are queued again`);
    return { journal: new NcrJournal(path, fd, replay, Buffer.byteLength(body), log), replay, found };
  }

  /** NCRs accepted and not yet done. */
  get openCount(): number {
    return this.openLines.size;
  }

  /** Writes the NCR to the journal; `then` runs once it is on disk (with the id to mark it done by). */
  admit(ncr: NameChangeRequest, then: (ncr: NameChangeRequest, id: number) => void): void {
    const id = this.nextId++;
    const text = line(`A ${id} ${ncrJson(ncr)}`);
    this.openLines.set(id, text);
    this.pending.push({ text, ncr, id, then });
    this.schedule();
  }

  /** Marks the NCR done: it will not be replayed. */
  done(id: number): void {
    if (!this.openLines.delete(id)) return;
    this.pending.push({ text: line(`D ${id}`), id });
    this.schedule();
  }

  /** Writes what is pending and closes the file. NCRs admitted after this are never written. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.idle();
    this.closed = true;
    await this.fd.close();
  }

  /** Resolves when nothing is pending or being written. */
  idle(): Promise<void> {
    if (!this.writing && this.pending.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private schedule(): void {
    if (this.flushScheduled || this.writing || this.closed) return;
    this.flushScheduled = true;
    // One batch per turn of the loop: whatever else this turn admits joins it.
    setImmediate(() => {
      this.flushScheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.writing || this.closed) return;
    const batch = this.pending;
    if (batch.length === 0) return this.wakeIdle();
    this.pending = [];
    this.writing = true;
    try {
      const data = batch.map((p) => p.text).join('');
      await this.fd.write(data);
      await this.fd.datasync();
      this.bytes += Buffer.byteLength(data);
    } catch (e) {
      // The NCRs are still served: a full disk must not stop DNS updates. They are not crash-safe meanwhile.
      if (!this.loggedWriteError) {
        this.loggedWriteError = true;
        this.log.error('D2BOX_JOURNAL_WRITE_FAILED', `NCR journal ${this.path}: ${(e as Error).message}; NCRs are served but not journaled until a write succeeds`);
      }
    }
    if (this.bytes > COMPACT_AFTER_BYTES) await this.compact();
    this.writing = false;
    for (const p of batch) {
      if (!p.then) continue;
      try {
        p.then(p.ncr!, p.id);
      } catch (e) {
        this.log.error('D2BOX_JOURNAL_CALLBACK_FAILED', `NCR journal: queuing a journaled NCR failed: ${(e as Error).message}`);
      }
    }
    if (this.pending.length > 0) this.schedule();
    else this.wakeIdle();
  }

  /** Rewrites the file with only the open NCRs (as at open), so it does not grow without bound. */
  private async compact(): Promise<void> {
    try {
      const body = [...this.openLines.values()].join('');
      await this.fd.close();
      rewrite(this.path, body);
      this.fd = await open(this.path, 'a');
      this.bytes = Buffer.byteLength(body);
    } catch (e) {
      this.log.error('D2BOX_JOURNAL_COMPACT_FAILED', `NCR journal ${this.path}: compaction failed: ${(e as Error).message}`);
      this.fd = await open(this.path, 'a');
    }
  }

  private wakeIdle(): void {
    for (const w of this.idleWaiters.splice(0)) w();
  }
}

/** Replaces the file at `path` with `body` so that a crash leaves either the old file or the new one, whole. */
function rewrite(path: string, body: string): void {
  const tmp = `${path}.new`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, body);
    fdatasyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  // The rename itself must survive a power cut: sync the directory.
  const dir = openSync(dirname(path), 'r');
  try {
    fdatasyncSync(dir);
  } catch {
    /* some filesystems refuse to sync a directory; the rename is then as durable as they make it */
  } finally {
    closeSync(dir);
  }
}
