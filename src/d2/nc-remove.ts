/**
 * NameRemoveTransaction, as Kea's (src/bin/d2/nc_remove.cc): a remove under
 * RFC 4703 conflict resolution with DHCID (`check-with-dhcid`).
 *
 * | state                | prerequisites                                   | updates                         | answer → next |
 * |----------------------|-------------------------------------------------|---------------------------------|---------------|
 * | REMOVING_FWD_ADDRS_ST| DHCID = ours                                    | delete our A/AAAA RR (NONE)     | NOERROR, NXRRSET → REMOVING_FWD_RRS_ST (UPDATE_OK_EVT); other → failed |
 * | REMOVING_FWD_RRS_ST  | DHCID = ours, no A RRset, no AAAA RRset         | delete every RRset at the FQDN  | NOERROR, NXRRSET → reverse or done; other → failed; I/O failures end the NCR failed (no other server), as Kea |
 * | REMOVING_REV_PTRS_ST | PTR → FQDN                                      | delete every RRset at the reverse name | NOERROR, NXRRSET → done; other → failed |
 *
 * NXRRSET counts as done, as in Kea: another client's name is left alone and
 * the remove still completes.
 */
import { RRType } from '../dns/codes.js';
import type { D2UpdateMessage } from '../dns/update-message.js';
import {
  isNoErrorOrNxrrset,
  NameChangeTransaction,
  PROCESS_TRANS_FAILED_ST,
  REMOVING_FWD_ADDRS_ST,
  REMOVING_FWD_RRS_ST,
  REMOVING_REV_PTRS_ST,
  SELECTING_FWD_SERVER_ST,
  UPDATE_OK_EVT,
  type Direction,
  type StepSpec,
} from './name-change-transaction.js';

export class NameRemoveTransaction extends NameChangeTransaction {
  protected readonly kind = 'remove' as const;

  protected firstStep(direction: Direction): string {
    return direction === 'forward' ? REMOVING_FWD_ADDRS_ST : REMOVING_REV_PTRS_ST;
  }

  protected defineSteps(): Record<string, StepSpec> {
    return {
      [REMOVING_FWD_ADDRS_ST]: {
        direction: 'forward',
        label: 'Forward A/AAAA Remove',
        ioFailState: SELECTING_FWD_SERVER_ST,
        build: () => this.removeForwardAddrsRequest(),
        onRcode: (rcode) =>
          isNoErrorOrNxrrset(rcode) ? { state: REMOVING_FWD_RRS_ST, event: UPDATE_OK_EVT } : this.rejected('Forward A/AAAA Remove', rcode),
      },
      [REMOVING_FWD_RRS_ST]: {
        direction: 'forward',
        label: 'Forward RR Remove',
        ioFailState: PROCESS_TRANS_FAILED_ST,
        build: () => this.removeForwardRrsRequest(),
        onRcode: (rcode) => (this.forwardRrsRemoved(rcode) ? this.forwardDone() : this.rejected('Forward RR Remove', rcode)),
      },
      [REMOVING_REV_PTRS_ST]: this.removeRevPtrsStep('check'),
    };
  }

  /** REMOVING_FWD_ADDRS_ST: only while the DHCID is ours. */
  protected removeForwardAddrsRequest(): D2UpdateMessage {
    return this.prepNewRequest('forward')
      .requireRRsetExistsWithValue(this.fqdn, this.dhcidRdata)
      .deleteRR(this.fqdn, this.leaseAddressRdata);
  }

  /** REMOVING_FWD_RRS_ST: the rest of the name, once no address is left and the DHCID is still ours. */
  protected removeForwardRrsRequest(): D2UpdateMessage {
    return this.prepNewRequest('forward')
      .requireRRsetExistsWithValue(this.fqdn, this.dhcidRdata)
      .requireRRsetNotExists(this.fqdn, RRType.A)
      .requireRRsetNotExists(this.fqdn, RRType.AAAA)
      .deleteAllRRsets(this.fqdn);
  }

  protected forwardRrsRemoved(rcode: number): boolean {
    return isNoErrorOrNxrrset(rcode);
  }
}

