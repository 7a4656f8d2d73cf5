/**
 * SimpleAddTransaction, as Kea's (src/bin/d2/simple_add.cc): an add without
 * conflict resolution (`no-check-with-dhcid`, `use-conflict-resolution: false`).
 * No prerequisites: whatever the name held is replaced.
 *
 * | state                  | updates                                                           | answer → next |
 * |------------------------|-------------------------------------------------------------------|---------------|
 * | REPLACING_FWD_ADDRS_ST | delete A/AAAA RRset, delete DHCID RRset, add A/AAAA, add DHCID    | NOERROR → reverse or done; other → failed |
 * | REPLACING_REV_PTRS_ST  | delete PTR and DHCID RRsets, add PTR, add DHCID                   | NOERROR → done; other → failed |
 */
import { Rcode, RRType } from '../dns/codes.js';
import {
  NameChangeTransaction,
  REPLACING_FWD_ADDRS_ST,
  REPLACING_REV_PTRS_ST,
  SELECTING_FWD_SERVER_ST,
  type Direction,
  type StepSpec,
} from './name-change-transaction.js';

export class SimpleAddTransaction extends NameChangeTransaction {
  protected readonly kind = 'add' as const;

  protected firstStep(direction: Direction): string {
    return direction === 'forward' ? REPLACING_FWD_ADDRS_ST : REPLACING_REV_PTRS_ST;
  }

  protected defineSteps(): Record<string, StepSpec> {
    return {
      [REPLACING_FWD_ADDRS_ST]: {
        direction: 'forward',
        label: 'Forward Replace',
        ioFailState: SELECTING_FWD_SERVER_ST,
        build: () => {
          const request = this.prepNewRequest('forward').deleteRRset(this.fqdn, this.addressType);
          if (!this.withDhcid) return request.addRR(this.fqdn, this.leaseTtl, this.leaseAddressRdata);
          return request
            .deleteRRset(this.fqdn, RRType.DHCID)
            .addRR(this.fqdn, this.leaseTtl, this.leaseAddressRdata)
            .addRR(this.fqdn, this.leaseTtl, this.dhcidRdata);
        },
        onRcode: (rcode) => (rcode === Rcode.NOERROR ? this.forwardDone() : this.rejected('Forward Replace', rcode)),
      },
      [REPLACING_REV_PTRS_ST]: this.replaceRevPtrsStep(this.withDhcid),
    };
  }

  /** Whether DHCID records are written alongside (a getter: the steps are defined during construction). */
  protected get withDhcid(): boolean {
    return true;
  }
}
