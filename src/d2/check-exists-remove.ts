/**
 * CheckExistsRemoveTransaction, as newer Kea's (src/bin/d2/check_exists_remove.cc):
 * `check-exists-with-dhcid` — a name with any DHCID may be removed. The same
 * states and transitions as NameRemoveTransaction; the forward requests differ,
 * and YXRRSET also ends the forward removal.
 *
 * | state                | prerequisites                    | updates                        | answer → next |
 * |----------------------|----------------------------------|--------------------------------|---------------|
 * | REMOVING_FWD_ADDRS_ST| a DHCID RRset exists (ANY DHCID) | delete our A/AAAA RR (NONE)    | NOERROR, NXRRSET → REMOVING_FWD_RRS_ST; other → failed |
 * | REMOVING_FWD_RRS_ST  | no A RRset, no AAAA RRset        | delete the DHCID RRset         | NOERROR, NXRRSET, YXRRSET → reverse or done; other → failed; I/O failures end failed |
 * | REMOVING_REV_PTRS_ST | PTR → FQDN                       | delete every RRset at the reverse name | NOERROR, NXRRSET → done; other → failed |
 */
import { Rcode, RRType } from '../dns/codes.js';
import type { D2UpdateMessage } from '../dns/update-message.js';
import { NameRemoveTransaction } from './nc-remove.js';

export class CheckExistsRemoveTransaction extends NameRemoveTransaction {
  protected override removeForwardAddrsRequest(): D2UpdateMessage {
    return this.prepNewRequest('forward').requireRRsetExists(this.fqdn, RRType.DHCID).deleteRR(this.fqdn, this.leaseAddressRdata);
  }

  protected override removeForwardRrsRequest(): D2UpdateMessage {
    return this.prepNewRequest('forward')
      .requireRRsetNotExists(this.fqdn, RRType.A)
      .requireRRsetNotExists(this.fqdn, RRType.AAAA)
      .deleteRRset(this.fqdn, RRType.DHCID);
  }

  protected override forwardRrsRemoved(rcode: number): boolean {
    return super.forwardRrsRemoved(rcode) || rcode === Rcode.YXRRSET;
  }
}
