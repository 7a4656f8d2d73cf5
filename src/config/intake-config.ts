/**
 * d2box's intake keys of `DhcpDdns`: how many NCRs may wait for a transaction
 * and how much the kernel may hold for the NCR socket before d2box reads it.
 *
 * Kea has neither key (its queue bound is a compiled-in 1024 and its socket
 * keeps the system default), so they are optional in the schema and their
 * defaults are applied here: `config-get` and `config-write` of a
 * configuration that does not use them stay Kea's.
 *
 * The defaults let a DHCP server's burst of renewals after an outage land
 * whole: 16384 queued NCRs is more than the largest burst bench:d2 sends with
 * no window (10,000), and 8 MiB asked of the kernel (doubled by Linux for its
 * bookkeeping) holds about 13,000 NCR datagrams, should the main loop be busy
 * while they arrive. Where `net.core.rmem_max` is lower, the kernel caps the
 * buffer; the start-up log and `-W` say so, in NCRs. And the socket is read in
 * a thread of its own, so that a sender with no window at all (10,000 NCRs as
 * fast as it can) loses none while the main loop is busy with DNS: measured in
 * bench:d2, 6,520 of 20,000 lost read on the main loop, none in the thread. It
 * costs about 8-11 MB of RSS; `"d2box-ncr-reader-thread": false` saves them.
 */
import { z } from 'zod';

export interface IntakePolicy {
  /** Bound on the NCRs queued for a transaction; past it an NCR is refused (`queue-mgr-queue-full`). */
  maxQueueSize: number;
  /** SO_RCVBUF asked for the NCR socket, in bytes (the kernel doubles and caps it). */
  receiveBufferBytes: number;
  /** Read the NCR socket in a thread of its own (costs a thread's memory; keeps up with a sender that has no window). */
  readerThread: boolean;
}

export const INTAKE_DEFAULTS: IntakePolicy = {
  maxQueueSize: 16_384,
  receiveBufferBytes: 8 * 1024 * 1024,
  readerThread: true,
};

const MAX_INT = 2 ** 31 - 1;

/** Spread into DhcpDdnsSchema's shape. */
export const intakeShape = {
  'd2box-max-queue-size': z
    .int()
    .refine((v) => v > 0 && v <= MAX_INT, `d2box-max-queue-size must be greater than zero and at most ${MAX_INT}`)
    .optional(),
  // At least a page: the kernel's own floor is about 2 KiB, which holds one NCR.
  'd2box-ncr-receive-buffer-bytes': z
    .int()
    .refine((v) => v >= 4096 && v <= MAX_INT, `d2box-ncr-receive-buffer-bytes must be at least 4096 and at most ${MAX_INT}`)
    .optional(),
  'd2box-ncr-reader-thread': z.boolean().optional(),
  // The NCR journal (src/d2/ncr-journal.ts): off unless named; the path policy's `journal` rule places it.
  'd2box-journal-file': z.string().min(1, 'd2box-journal-file must not be empty').optional(),
};

type IntakeKeys = { [K in keyof typeof intakeShape]?: z.output<(typeof intakeShape)[K]> };

/** The intake a parsed `DhcpDdns` asks for; `fallback` fills what it leaves out. */
export function intakePolicy(config: IntakeKeys, fallback: IntakePolicy = INTAKE_DEFAULTS): IntakePolicy {
  return {
    maxQueueSize: config['d2box-max-queue-size'] ?? fallback.maxQueueSize,
    receiveBufferBytes: config['d2box-ncr-receive-buffer-bytes'] ?? fallback.receiveBufferBytes,
    readerThread: config['d2box-ncr-reader-thread'] ?? fallback.readerThread,
  };
}
