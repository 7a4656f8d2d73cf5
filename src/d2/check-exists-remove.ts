/**
 * CheckExistsRemoveTransaction, as newer Kea's (src/bin/d2/check_exists_remove.cc):
 * `check-exists-with-dhcid` — a name with any DHCID may be removed.
 *
 * | state                | prerequisites                    | updates                        | answer → next |
 * |----------------------|----------------------------------|--------------------------------|---------------|
 * | REMOVING_FWD_ADDRS_ST| a DHCID RRset exists (ANY DHCID) | delete our A/AAAA RR (NONE)    | NOERROR, NXRRSET → REMOVING_FWD_RRS_ST; other → failed |
 * | REMOVING_FWD_RRS_ST  | no A RRset, no AAAA RRset        | delete the DHCID RRset         | NOERROR, NXRRSET, YXRRSET → reverse or done; other → failed; I/O failures end failed |
 * | REMOVING_REV_PTRS_ST | PTR → FQDN                       | delete every RRset at the reverse name | NOERROR, NXRRSET → done; other → failed |
 */
import { Rcode, RRType } from '../dns/codes.js';
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

export class CheckExistsRemoveTransaction extends NameChangeTransaction {
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
        build: () =>
          this.prepNewRequest('forward').requireRRsetExists(this.fqdn, RRType.DHCID).deleteRR(this.fqdn, this.leaseAddressRdata),
        onRcode: (rcode) =>
          isNoErrorOrNxrrset(rcode) ? { state: REMOVING_FWD_RRS_ST, event: UPDATE_OK_EVT } : this.rejected('Forward A/AAAA Remove', rcode),
      },
      [REMOVING_FWD_RRS_ST]: {
        direction: 'forward',
        label: 'Forward RR Remove',
        ioFailState: PROCESS_TRANS_FAILED_ST,
        build: () =>
          this.prepNewRequest('forward')
            .requireRRsetNotExists(this.fqdn, RRType.A)
            .requireRRsetNotExists(this.fqdn, RRType.AAAA)
            .deleteRRset(this.fqdn, RRType.DHCID),
        onRcode: (rcode) =>
          isNoErrorOrNxrrset(rcode) || rcode === Rcode.YXRRSET ? this.forwardDone() : this.rejected('Forward RR Remove', rcode),
      },
      [REMOVING_REV_PTRS_ST]: this.removeRevPtrsStep('check'),
    };
  }
}
