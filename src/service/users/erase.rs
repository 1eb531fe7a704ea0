//! Erasure (DESIGN §1, §6), inside the action's transaction.

use super::act::{Change, Report, end_everything};
use super::*;

/// Erasure: the person's names, email and username become a pseudonym; what they hold ends;
/// their workstation account is deleted everywhere and renamed in the history (DESIGN §1).
pub(super) fn erase(
    tx: &WriteTx<'_>,
    c: &Change<'_>,
    audit: &dyn Fn(Event) -> Audit,
    report: &mut Report,
) -> Result<()> {
    let (id, now) = (c.target.id, c.now);
    let p = pseudonym(&id.to_string());
    store::users::erase(tx, c.scope, id, &p, now)?;
    let mut ended = end_everything(tx, c, "erased", report)?;
    store::links::revoke_open(tx, LinkKind::Enrollment, Some(id), now)?;
    let who = c.target;
    let a = crate::service::logins::erase_account(
        tx,
        c.ctx,
        (c.tenant.id, c.tenant.kind),
        (&who.username, &p.username),
        now,
    )?;
    let account = crate::model::logins::named_account(c.tenant.kind, &who.username);
    let name = format!("{} {}", who.first_name, who.last_name);
    let words = [who.email.as_str(), account.as_str(), &name];
    let deliveries = store::erasure::forget_deliveries(tx, &words)?;
    ended["workstations_deleting_account"] = json!(a.devices.len());
    ended["history_rows_renamed"] = json!(a.rows);
    ended["webhook_deliveries_dropped"] = json!(deliveries);
    report.woken.extend(a.devices);
    audit(Event::UserErased).details(ended).append(tx)?;
    Ok(())
}
