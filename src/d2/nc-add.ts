/**
 * NameAddTransaction, as Kea's (src/bin/d2/nc_add.cc): an add under RFC 4703
 * conflict resolution with DHCID (`check-with-dhcid`, Kea's default).
 *
 * | state                  | prerequisites                       | updates                                             | answer → next |
 * |------------------------|-------------------------------------|-----------------------------------------------------|---------------|
 * | ADDING_FWD_ADDRS_ST    | FQDN not in use (NONE ANY)          | add A/AAAA, add DHCID (TTL = lease length)          | NOERROR → reverse or done; YXDOMAIN → REPLACING_FWD_ADDRS_ST (FQDN_IN_USE_EVT); other → failed |
 * | REPLACING_FWD_ADDRS_ST | FQDN in use (ANY ANY), DHCID = ours | delete A/AAAA RRset, add A/AAAA                     | NOERROR → reverse or done; NXDOMAIN → ADDING_FWD_ADDRS_ST; NXRRSET → failed (conflict); other → failed |
 * | REPLACING_REV_PTRS_ST  | none                                | delete PTR and DHCID RRsets, add PTR, add DHCID     | NOERROR → done; other → failed |
 *
 * A timeout, I/O error or bad answer retries the server, then the next one.
 */
import { Rcode } from '../dns/codes.js';
import type { D2UpdateMessage } from '../dns/update-message.js';
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

export class NameAddTransaction extends NameChangeTransaction {
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
        build: () => this.replaceForwardRequest(),
        onRcode: (rcode) => {
          if (rcode === Rcode.NOERROR) return this.forwardDone();
          if (rcode === Rcode.NXDOMAIN) return { state: ADDING_FWD_ADDRS_ST, event: SERVER_SELECTED_EVT };
          return this.rejected('Forward Replace', rcode, rcode === Rcode.NXRRSET ? 'conflict' : 'rejected');
        },
      },
      [REPLACING_REV_PTRS_ST]: this.replaceRevPtrsStep(true),
    };
  }

  /** REPLACING_FWD_ADDRS_ST: the name is this client's when its DHCID is ours (RFC 4703). */
  protected replaceForwardRequest(): D2UpdateMessage {
    return this.prepNewRequest('forward')
      .requireNameInUse(this.fqdn)
      .requireRRsetExistsWithValue(this.fqdn, this.dhcidRdata)
      .deleteRRset(this.fqdn, this.addressType)
      .addRR(this.fqdn, this.leaseTtl, this.leaseAddressRdata);
  }
}
