//! What the two HTTP edges share — the portal and management API (`web/`) and the agent API
//! (`agent_api/`) — kept below both, so that neither imports the other nor the composition
//! root (`app.rs`, which only builds and starts them): the state they are handed, the
//! client's address, the request id, how errors map to statuses, and the request view both
//! APIs answer with.

pub mod limiter;
pub mod request_id;
mod state;

use actix_web::http::StatusCode;
use serde_json::json;

use crate::error::Error;
pub use state::{AppState, client_ip, metrics_handle};

pub fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::NotFound => StatusCode::NOT_FOUND,
        Error::Unauthenticated => StatusCode::UNAUTHORIZED,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::Conflict(_) => StatusCode::CONFLICT,
        Error::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        Error::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        Error::Locked(_) => StatusCode::LOCKED,
        Error::StepUpRequired => StatusCode::UNAUTHORIZED,
        Error::InvalidState(_) => StatusCode::CONFLICT,
        Error::Gone(_) => StatusCode::GONE,
        Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        Error::Unavailable(_) | Error::StorageFull => StatusCode::SERVICE_UNAVAILABLE,
        Error::Startup(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// What the workstation is told about a request.
pub fn request_view(r: &crate::model::requests::Request) -> serde_json::Value {
    json!({
        "id": r.id, "kind": r.kind, "account": r.account, "state": r.state.as_str(),
        "minutes_requested": r.minutes_requested, "minutes_approved": r.minutes_approved,
        "expires_at": r.expires_at.map(|t| t.millis()), "reason": r.reason, "ticket": r.ticket,
        "decided_by_rule": r.decided_by_rule.is_some(), "app": r.app, "grant": r.grant_scope,
        "policy_id": r.policy_id,
    })
}
