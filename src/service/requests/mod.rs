//! End-user JIT admin sessions (DESIGN §3): request, auto-approve, approve, deny, revoke,
//! end, extend, time out, expire. Each transition is one transaction with its audit entry
//! and its agent command (JIT-03).

use serde_json::json;

use super::Ctx;
use super::audit::{Audit, Origin};
use super::commands::{self, DEFAULT_TTL_MS};
use crate::authz::{Permission, Principal, TenantScope, system_scope};
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::{DeviceId, RequestId};
use crate::model::audit::{ActorKind, Event};
use crate::model::commands::{Action, SessionRef};
use crate::model::devices::Device;
use crate::model::policies as engine;
use crate::model::requests::Request;
use crate::model::requests::{self as rules, DISABLED_MESSAGE, Grant, Kind, State};
use crate::model::tenants::Tenant;
use crate::model::zones;
pub use crate::store::requests::Filter;
use crate::store::{self, WriteTx};

/// What a workstation asks for (a wire type of the agent protocol).
pub use crate::proto::RequestAsk as Ask;

mod auto;
mod create;
mod decide;
mod end;

pub use auto::*;
pub use create::*;
pub use decide::*;
pub use end::*;

/// What the requester is told a request was for.
fn what(r: &Request) -> String {
    match (r.kind.as_str(), &r.app) {
        ("extension", _) => "extension of your administrator session".into(),
        ("application", Some(a)) => format!("request to run {} with administrator rights", a.path),
        _ => "request for administrator rights".into(),
    }
}

/// An approver's decision: for how long, and (application requests) as what.
#[derive(Clone, Copy, Debug)]
pub struct Approval {
    pub minutes: u32,
    pub grant: Grant,
}

fn audit_for(e: Event, r: &Request, now: Timestamp) -> Audit {
    Audit::new(e, now)
        .tenant(r.tenant_id)
        .device(r.device_id)
        .target("request", r.id)
        .request(r.id, r.ticket.clone())
}

/// Tells the requester's workstation the outcome (shown to the user by the agent).
fn tell(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    scope: &TenantScope,
    r: &Request,
    message: String,
    now: Timestamp,
) -> Result<()> {
    commands::enqueue(
        tx,
        &ctx.crypto,
        scope,
        r.device_id,
        &Action::Notify { message },
        DEFAULT_TTL_MS,
        now,
    )?;
    Ok(())
}
