/**
 * SimpleAddWithoutDHCIDTransaction, as newer Kea's
 * (src/bin/d2/simple_add_without_dhcid.cc): `no-check-without-dhcid` — a
 * SimpleAddTransaction with no DHCID records at all.
 *
 * | state                  | updates                           | answer → next |
 * |------------------------|-----------------------------------|---------------|
 * | REPLACING_FWD_ADDRS_ST | delete the A/AAAA RRset, add A/AAAA | NOERROR → reverse or done; other → failed |
 * | REPLACING_REV_PTRS_ST  | delete the PTR RRset, add PTR     | NOERROR → done; other → failed |
 */
import { SimpleAddTransaction } from './simple-add.js';

export class SimpleAddWithoutDhcidTransaction extends SimpleAddTransaction {
  protected override get withDhcid(): boolean {
    return false;
  }
}
