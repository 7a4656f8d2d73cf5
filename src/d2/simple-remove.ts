/**
 * SimpleRemoveTransaction, as Kea's (src/bin/d2/simple_remove.cc): a remove
 * without conflict resolution (`no-check-with-dhcid`). No prerequisites.
 *
 * | state                | updates                                   | answer → next |
 * |----------------------|-------------------------------------------|---------------|
 * | REMOVING_FWD_RRS_ST  | delete the A/AAAA RRset, delete the DHCID RRset | NOERROR, NXRRSET → reverse or done; other → failed |
 * | REMOVING_REV_PTRS_ST | delete the PTR RRset, delete the DHCID RRset    | NOERROR, NXRRSET → done; other → failed |
 */
import { RRType } from '../dns/codes.js';
import {
  isNoErrorOrNxrrset,
  NameChangeTransaction,
  REMOVING_FWD_RRS_ST,
  REMOVING_REV_PTRS_ST,
  SELECTING_FWD_SERVER_ST,
  type Direction,
  type StepSpec,
} from './name-change-transaction.js';

export class SimpleRemoveTransaction extends NameChangeTransaction {
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
        build: () => {
          const request = this.prepNewRequest('forward').deleteRRset(this.fqdn, this.addressType);
          return this.withDhcid ? request.deleteRRset(this.fqdn, RRType.DHCID) : request;
        },
        onRcode: (rcode) => (isNoErrorOrNxrrset(rcode) ? this.forwardDone() : this.rejected('Forward RR Remove', rcode)),
      },
      [REMOVING_REV_PTRS_ST]: this.removeRevPtrsStep(this.withDhcid ? 'simple' : 'without-dhcid'),
    };
  }

  /** Whether DHCID records go too (a getter: the steps are defined during construction). */
  protected get withDhcid(): boolean {
    return true;
  }
}
