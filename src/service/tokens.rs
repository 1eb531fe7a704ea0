//! Management API tokens: shown once, stored hashed, acting with their user's permissions.

use serde_json::json;

use super::Ctx;
use super::audit::{Audit, Origin};
use crate::authz::Principal;
use crate::clock::Timestamp;
use crate::crypto;
use crate::error::{Error, Result};
use crate::ids::UserId;
use crate::model::audit::Event;
use crate::model::tenants::parse_name;
use crate::model::tokens::ApiToken;
use crate::store::{self, WriteTx};

const PREFIX: &str = "hgt_";
/// A token that may do sensitive actions lives at most this long (SESS-05).
pub const SENSITIVE_MAX_DAYS: u32 = 30;
/// Any other token may be given an expiry up to a year, or none.
pub const MAX_DAYS: u32 = 365;
const DAY_MS: i64 = 86_400_000;

/// What a new token may do and for how long.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// Sensitive actions (reveal a password, approve, change roles…): needs an expiry.
    pub sensitive: bool,
    /// Days until it stops working; None = until revoked (not for sensitive tokens).
    pub expires_in_days: Option<u32>,
}

impl Scope {
    fn expires_at(&self, now: Timestamp) -> Result<Option<Timestamp>> {
        let max = if self.sensitive {
            SENSITIVE_MAX_DAYS
        } else {
            MAX_DAYS
        };
        match self.expires_in_days {
            None if self.sensitive => Err(Error::validation(
                "expires_in_days",
                format!(
                    "a token for sensitive actions needs an expiry (1 to {SENSITIVE_MAX_DAYS} days)"
                ),
            )),
            None => Ok(None),
            Some(d) if d == 0 || d > max => Err(Error::validation(
                "expires_in_days",
                format!("must be between 1 and {max} days"),
            )),
            Some(d) => Ok(Some(Timestamp(now.millis() + i64::from(d) * DAY_MS))),
        }
    }
}

fn issue(
    tx: &WriteTx<'_>,
    user: UserId,
    tenant: crate::ids::TenantId,
    name: &str,
    scope: &Scope,
    now: Timestamp,
) -> Result<(ApiToken, String)> {
    let secret = format!("{PREFIX}{}", crypto::random_token(32)?);
    let t = ApiToken {
        id: format!("tok-{}", uuid::Uuid::now_v7().simple()),
        tenant_id: tenant,
        user_id: user,
        name: name.to_string(),
        created_at: now,
        last_used_at: None,
        revoked_at: None,
        sensitive: scope.sensitive,
        expires_at: scope.expires_at(now)?,
    };
    store::tokens::insert(tx, &t, &super::auth::token_hash(&secret))?;
    Ok((t, secret))
}

/// A token for the signed-in person, after a fresh factor. A token cannot mint tokens: a
/// sensitive one would otherwise outlive its own expiry.
pub async fn create(
    ctx: &Ctx,
    p: &Principal,
    name: &str,
    scope: Scope,
    origin: &Origin,
) -> Result<(ApiToken, String)> {
    let now = ctx.clock.now();
    if p.api_token.is_some() {
        return Err(Error::Forbidden(
            "API tokens are created from a signed-in session or the appliance console".into(),
        ));
    }
    p.require_fresh_mfa(now)?;
    let name = parse_name("name", name)?;
    let (p2, o) = (p.clone(), origin.clone());
    ctx.db
        .write(move |tx| {
            let (t, secret) = issue(tx, p2.user_id, p2.tenant_id, &name, &scope, now)?;
            Audit::new(Event::ApiTokenCreated, now)
                .tenant(p2.tenant_id)
                .by(&p2, &o)
                .target("api_token", &t.id)
                .details(
                    json!({"name": name, "sensitive": t.sensitive, "expires_at": t.expires_at}),
                )
                .append(tx)?;
            Ok((t, secret))
        })
        .await
}

pub async fn list(ctx: &Ctx, p: &Principal) -> Result<Vec<ApiToken>> {
    let uid = p.user_id;
    ctx.db
        .read(move |r| store::tokens::list_for_user(r, uid))
        .await
}

pub async fn revoke(ctx: &Ctx, p: &Principal, id: &str, origin: &Origin) -> Result<()> {
    let now = ctx.clock.now();
    let (p2, o, id) = (p.clone(), origin.clone(), id.to_string());
    ctx.db
        .write(move |tx| {
            store::tokens::revoke(tx, p2.user_id, &id, now)?;
            Audit::new(Event::ApiTokenRevoked, now)
                .tenant(p2.tenant_id)
                .by(&p2, &o)
                .target("api_token", &id)
                .append(tx)?;
            Ok(())
        })
        .await
}

/// `hourglass admin create-token`: for bootstrapping scripts from the appliance's console.
pub fn create_for_email(ctx: &Ctx, email: &str, name: &str, scope: Scope) -> Result<String> {
    let now = ctx.clock.now();
    let email = crate::model::users::Email::parse(email)?;
    let name = parse_name("name", name)?;
    ctx.db.write_blocking(|tx| {
        let c = store::users::credentials_by_email(&tx.reader(), email.as_str())?
            .ok_or_else(|| Error::validation("email", format!("no user with email {email}")))?;
        if c.user.status != crate::model::users::UserStatus::Active {
            return Err(Error::validation(
                "email",
                format!("{email} has not completed enrollment or is disabled"),
            ));
        }
        let (t, secret) = issue(tx, c.user.id, c.user.tenant_id, &name, &scope, now)?;
        Audit::new(Event::ApiTokenCreated, now)
            .tenant(c.user.tenant_id)
            .target("api_token", &t.id)
            .details(json!({"name": name, "via": "cli", "user": c.user.id,
                "sensitive": t.sensitive, "expires_at": t.expires_at}))
            .append(tx)?;
        Ok(secret)
    })
}
