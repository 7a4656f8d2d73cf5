/**
 * SimpleRemoveWithoutDHCIDTransaction, as newer Kea's
 * (src/bin/d2/simple_remove_without_dhcid.cc): `no-check-without-dhcid` — a
 * SimpleRemoveTransaction that leaves DHCID records alone.
 *
 * | state                | updates                   | answer → next |
 * |----------------------|---------------------------|---------------|
 * | REMOVING_FWD_RRS_ST  | delete the A/AAAA RRset   | NOERROR, NXRRSET → reverse or done; other → failed |
 * | REMOVING_REV_PTRS_ST | delete the PTR RRset      | NOERROR, NXRRSET → done; other → failed |
 */
import { SimpleRemoveTransaction } from './simple-remove.js';

export class SimpleRemoveWithoutDhcidTransaction extends SimpleRemoveTransaction {
  protected override get withDhcid(): boolean {
    return false;
  }
}
