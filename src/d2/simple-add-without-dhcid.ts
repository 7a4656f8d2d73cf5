/**
 * SimpleAddWithoutDHCIDTransaction, as newer Kea's
 * (src/bin/d2/simple_add_without_dhcid.cc): `no-check-without-dhcid` — no
 * prerequisites and no DHCID records at all.
 *
 * | state                  | updates                           | answer → next |
 * |------------------------|-----------------------------------|---------------|
 * | REPLACING_FWD_ADDRS_ST | delete the A/AAAA RRset, add A/AAAA | NOERROR → reverse or done; other → failed |
 * | REPLACING_REV_PTRS_ST  | delete the PTR RRset, add PTR     | NOERROR → done; other → failed |
 */
import { Rcode } from '../dns/codes.js';
import {
  NameChangeTransaction,
  REPLACING_FWD_ADDRS_ST,
  REPLACING_REV_PTRS_ST,
  SELECTING_FWD_SERVER_ST,
  type Direction,
  type StepSpec,
} from './name-change-transaction.js';

export class SimpleAddWithoutDhcidTransaction extends NameChangeTransaction {
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
        build: () =>
          this.prepNewRequest('forward').deleteRRset(this.fqdn, this.addressType).addRR(this.fqdn, this.leaseTtl, this.leaseAddressRdata),
        onRcode: (rcode) => (rcode === Rcode.NOERROR ? this.forwardDone() : this.rejected('Forward Replace', rcode)),
      },
      [REPLACING_REV_PTRS_ST]: this.replaceRevPtrsStep(false),
    };
  }
}
