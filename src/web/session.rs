//! The session cookie and the `CurrentUser` extractor: a full (password + TOTP) session,
//! its principal, and what the layout needs.

use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};

use super::error::WebError;
use super::headers::RequestId;
use crate::authz::Principal;
use crate::error::Error;
use crate::http::AppState;
use crate::model::sessions::Stage;
use crate::model::tenants::Tenant;
use crate::model::users::User;
use crate::service::{self, audit::Origin};

pub const COOKIE: &str = "__Host-hg_session";

/// `__Host-` prefixed, Secure, HttpOnly, SameSite=Strict, Path=/, no Domain (SESS-02).
pub fn cookie(token: &str) -> Cookie<'static> {
    Cookie::build(COOKIE, token.to_string())
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .finish()
}

/// The sign-in page's pre-auth cookie: a random value whose MAC is the login form's CSRF
/// token, so showing the page writes nothing to the database.
pub const PRE_COOKIE: &str = "__Host-hg_pre";

pub fn pre_cookie(value: &str) -> Cookie<'static> {
    Cookie::build(PRE_COOKIE, value.to_string())
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .finish()
}

pub fn pre_token_of(req: &HttpRequest) -> Option<String> {
    req.cookie(PRE_COOKIE)
        .map(|c| c.value().to_string())
        .filter(|v| v.len() >= 22 && v.len() <= 64)
}

pub fn clear_cookie() -> Cookie<'static> {
    let mut c = cookie("");
    c.set_max_age(CookieDuration::ZERO);
    c
}

/// A session id renewed while this request is served (a step-up code sent with the form):
/// the handler acts on it, and the response sets it as the cookie.
#[derive(Clone, Debug)]
pub struct Renewed(pub String);

pub fn token_of(req: &HttpRequest) -> Option<String> {
    if let Some(r) = req.extensions().get::<Renewed>() {
        return Some(r.0.clone());
    }
    req.cookie(COOKIE)
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty())
}

pub fn origin_of(req: &HttpRequest) -> Origin {
    Origin {
        ip: crate::http::client_ip(req),
        request_id: req.extensions().get::<RequestId>().map(|r| r.0.clone()),
    }
}

/// A signed-in person.
pub struct CurrentUser {
    pub principal: Principal,
    pub user: User,
    pub token: String,
    pub csrf: String,
    pub tenants: Vec<Tenant>,
    pub origin: Origin,
    pub acting: std::rc::Rc<super::refusals::Acting>,
}

impl FromRequest for CurrentUser {
    type Error = WebError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .ok_or(WebError(Error::internal("no state")))?
                .clone();
            let ctx = &state.ctx;
            let token = token_of(&req).ok_or(WebError(Error::Unauthenticated))?;
            let now = ctx.clock.now();
            let s = service::auth::session(ctx, &token, now)
                .await?
                .ok_or(WebError(Error::Unauthenticated))?;
            if s.stage != Stage::Full {
                return Err(WebError(Error::Unauthenticated));
            }
            let uid = s.user_id.ok_or(WebError(Error::Unauthenticated))?;
            let mfa_at = s.mfa_at;
            let csrf = service::auth::csrf_token(ctx, &s);
            let (principal, user) = service::auth::signed_in(ctx, uid, mfa_at)
                .await?
                .ok_or(WebError(Error::Unauthenticated))?;
            let tenants = service::tenants::visible(ctx, &principal).await?;
            let origin = origin_of(&req);
            let acting = super::refusals::Acting::attach(&req, &principal, &origin);
            Ok(CurrentUser {
                principal,
                user,
                token,
                csrf,
                tenants,
                origin,
                acting,
            })
        })
    }
}

impl CurrentUser {
    /// The tenant named in the path, as this person may reach it; a refusal after this is
    /// audited by the middleware (`refusals`).
    pub async fn tenant(&self, state: &AppState, slug: &str) -> Result<Tenant, WebError> {
        Ok(self.acting.tenant(state, slug).await?)
    }

    /// The zone a page shows times in: the tenant's own, or on the views across tenants the
    /// person's home tenant's (the MSP's for its staff).
    pub fn zone(&self, t: Option<&Tenant>) -> String {
        let home = || {
            self.tenants
                .iter()
                .find(|x| x.id == self.principal.tenant_id)
                .map(|x| x.settings.time_zone.clone())
        };
        t.map(|t| t.settings.time_zone.clone())
            .or_else(home)
            .unwrap_or_else(|| crate::model::zones::DEFAULT.to_string())
    }
}
