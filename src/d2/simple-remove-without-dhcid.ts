/**
 * SimpleRemoveWithoutDHCIDTransaction, as newer Kea's
 * (src/bin/d2/simple_remove_without_dhcid.cc): `no-check-without-dhcid`.
 *
 * | state                | updates                   | answer → next |
 * |----------------------|---------------------------|---------------|
 * | REMOVING_FWD_RRS_ST  | delete the A/AAAA RRset   | NOERROR, NXRRSET → reverse or done; other → failed |
 * | REMOVING_REV_PTRS_ST | delete the PTR RRset      | NOERROR, NXRRSET → done; other → failed |
 */
import {
  isNoErrorOrNxrrset,
  NameChangeTransaction,
  REMOVING_FWD_RRS_ST,
  REMOVING_REV_PTRS_ST,
  SELECTING_FWD_SERVER_ST,
  type Direction,
  type StepSpec,
} from './name-change-transaction.js';

export class SimpleRemoveWithoutDhcidTransaction extends NameChangeTransaction {
  protected readonly kind = 'remove' as const;

  protected firstStep(direction: Direction): string {
    return direction === 'forward' ? REMOVING_FWD_RRS_ST : REMOVING_REV_PTRS_ST;
  }

  protected defineSteps(): Record<string, StepSpec> {
    return {
      [REMOVING_FWD_RRS_ST]: {
        direction: 'forward',
        label: 'Forward RR Remove',
        ioFailState: SELECTING_FWD_SERVER_ST,
        build: () => this.prepNewRequest('forward').deleteRRset(this.fqdn, this.addressType),
        onRcode: (rcode) => (isNoErrorOrNxrrset(rcode) ? this.forwardDone() : this.rejected('Forward RR Remove', rcode)),
      },
      [REMOVING_REV_PTRS_ST]: this.removeRevPtrsStep('without-dhcid'),
    };
  }
}
