/**
 * CheckExistsAddTransaction, as newer Kea's (src/bin/d2/check_exists_add.cc):
 * `check-exists-with-dhcid` — a name may be taken over when it has a DHCID at
 * all, whosever it is.
 *
 * | state                  | prerequisites              | updates                                                        | answer → next |
 * |------------------------|----------------------------|----------------------------------------------------------------|---------------|
 * | ADDING_FWD_ADDRS_ST    | FQDN not in use (NONE ANY) | add A/AAAA, add DHCID                                          | NOERROR → reverse or done; YXDOMAIN → REPLACING_FWD_ADDRS_ST; other → failed |
 * | REPLACING_FWD_ADDRS_ST | a DHCID RRset exists (ANY DHCID) | delete A/AAAA and DHCID RRsets, add A/AAAA, add DHCID   | NOERROR → reverse or done; NXDOMAIN → ADDING_FWD_ADDRS_ST; NXRRSET → failed (conflict); other → failed |
 * | REPLACING_REV_PTRS_ST  | none                       | delete PTR and DHCID RRsets, add PTR, add DHCID                | NOERROR → done; other → failed |
 */
import { Rcode, RRType } from '../dns/codes.js';
import {
  ADDING_FWD_ADDRS_ST,
  FQDN_IN_USE_EVT,
  NameChangeTransaction,
  REPLACING_FWD_ADDRS_ST,
  REPLACING_REV_PTRS_ST,
  SELECTING_FWD_SERVER_ST,
  SERVER_SELECTED_EVT,
  type Direction,
  type StepSpec,
} from './name-change-transaction.js';

export class CheckExistsAddTransaction extends NameChangeTransaction {
  protected readonly kind = 'add' as const;

  protected firstStep(direction: Direction): string {
    return direction === 'forward' ? ADDING_FWD_ADDRS_ST : REPLACING_REV_PTRS_ST;
  }

  protected defineSteps(): Record<string, StepSpec> {
    return {
      [ADDING_FWD_ADDRS_ST]: {
        direction: 'forward',
        label: 'Forward Add',
        ioFailState: SELECTING_FWD_SERVER_ST,
        build: () =>
          this.prepNewRequest('forward')
            .requireNameNotInUse(this.fqdn)
            .addRR(this.fqdn, this.leaseTtl, this.leaseAddressRdata)
            .addRR(this.fqdn, this.leaseTtl, this.dhcidRdata),
        onRcode: (rcode) => {
          if (rcode === Rcode.NOERROR) return this.forwardDone();
          if (rcode === Rcode.YXDOMAIN) return { state: REPLACING_FWD_ADDRS_ST, event: FQDN_IN_USE_EVT };
          return this.rejected('Forward Add', rcode);
        },
      },
      [REPLACING_FWD_ADDRS_ST]: {
        direction: 'forward',
        label: 'Forward Replace',
        ioFailState: SELECTING_FWD_SERVER_ST,
        build: () =>
          this.prepNewRequest('forward')
            .requireRRsetExists(this.fqdn, RRType.DHCID)
            .deleteRRset(this.fqdn, this.addressType)
            .deleteRRset(this.fqdn, RRType.DHCID)
            .addRR(this.fqdn, this.leaseTtl, this.leaseAddressRdata)
            .addRR(this.fqdn, this.leaseTtl, this.dhcidRdata),
        onRcode: (rcode) => {
          if (rcode === Rcode.NOERROR) return this.forwardDone();
          if (rcode === Rcode.NXDOMAIN) return { state: ADDING_FWD_ADDRS_ST, event: SERVER_SELECTED_EVT };
          return this.rejected('Forward Replace', rcode, rcode === Rcode.NXRRSET ? 'conflict' : 'rejected');
        },
      },
      [REPLACING_REV_PTRS_ST]: this.replaceRevPtrsStep(true),
    };
  }
}
