/**
 * CheckExistsAddTransaction, as newer Kea's (src/bin/d2/check_exists_add.cc):
 * `check-exists-with-dhcid` — a name may be taken over when it has a DHCID at
 * all, whosever it is. The same states and transitions as NameAddTransaction;
 * only the replace request differs.
 *
 * | state                  | prerequisites              | updates                                                        | answer → next |
 * |------------------------|----------------------------|----------------------------------------------------------------|---------------|
 * | ADDING_FWD_ADDRS_ST    | FQDN not in use (NONE ANY) | add A/AAAA, add DHCID                                          | NOERROR → reverse or done; YXDOMAIN → REPLACING_FWD_ADDRS_ST; other → failed |
 * | REPLACING_FWD_ADDRS_ST | a DHCID RRset exists (ANY DHCID) | delete A/AAAA and DHCID RRsets, add A/AAAA, add DHCID   | NOERROR → reverse or done; NXDOMAIN → ADDING_FWD_ADDRS_ST; NXRRSET → failed (conflict); other → failed |
 * | REPLACING_REV_PTRS_ST  | none                       | delete PTR and DHCID RRsets, add PTR, add DHCID                | NOERROR → done; other → failed |
 */
import { RRType } from '../dns/codes.js';
import type { D2UpdateMessage } from '../dns/update-message.js';
import { NameAddTransaction } from './nc-add.js';

export class CheckExistsAddTransaction extends NameAddTransaction {
  protected override replaceForwardRequest(): D2UpdateMessage {
    return this.prepNewRequest('forward')
      .requireRRsetExists(this.fqdn, RRType.DHCID)
      .deleteRRset(this.fqdn, this.addressType)
      .deleteRRset(this.fqdn, RRType.DHCID)
      .addRR(this.fqdn, this.leaseTtl, this.leaseAddressRdata)
      .addRR(this.fqdn, this.leaseTtl, this.dhcidRdata);
  }
}
