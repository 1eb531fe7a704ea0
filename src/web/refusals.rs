//! One authorization path for the portal and the management API (AZ-02, TI-02). The
//! signed-in person or token (`CurrentUser`, `ApiUser`) carries an `Acting` record, also
//! kept in the request's extensions; resolving the tenant of the path through it
//! (`CurrentUser::tenant`, `api::tenant`) notes the tenant there. When the answer is then a
//! 403 or a 404 — a permission the services refused, or an id that is foreign or missing —
//! the middleware (`headers`) records the `authz_fail` audit here, once, and turns the answer
//! into a 429 when the principal is guessing ids. Handlers write no refusal ceremony.
//! A tenant that does not resolve is audited by `service::tenants::resolve` itself.

use std::cell::Cell;
use std::rc::Rc;

use actix_web::body::BoxBody;
use actix_web::dev::ServiceResponse;
use actix_web::{HttpMessage, ResponseError};

use crate::authz::Principal;
use crate::http::AppState;
use crate::ids::TenantId;
use crate::model::tenants::Tenant;
use crate::service::{self, audit::Origin};

/// Who is acting in this request, and in which tenant once resolved.
pub struct Acting {
    pub principal: Principal,
    pub origin: Origin,
    /// Where refusals are audited: not yet (`None`), at the appliance level (`Some(None)`:
    /// MSP pages such as the tenant list or backups), or in a tenant.
    scope: Cell<Option<Option<TenantId>>>,
}

impl Acting {
    /// Kept in the request's extensions for the middleware to find. The person may be
    /// extracted more than once in a request (middlewares do too): all share one record.
    pub fn attach(
        req: &actix_web::HttpRequest,
        principal: &Principal,
        origin: &Origin,
    ) -> Rc<Acting> {
        if let Some(a) = req.extensions().get::<Rc<Acting>>() {
            return a.clone();
        }
        let a = Rc::new(Acting {
            principal: principal.clone(),
            origin: origin.clone(),
            scope: Cell::new(None),
        });
        req.extensions_mut().insert(a.clone());
        a
    }

    /// The tenant named in the path, as this principal may reach it (404 and audited if not).
    pub async fn tenant(&self, state: &AppState, slug: &str) -> crate::error::Result<Tenant> {
        let t = service::tenants::resolve(&state.ctx, &self.principal, slug, &self.origin).await?;
        self.scope.set(Some(Some(t.id)));
        Ok(t)
    }

    /// An appliance-level page (MSP admins'): a refusal here is audited without a tenant.
    pub fn appliance_level(&self) {
        if self.scope.get().is_none() {
            self.scope.set(Some(None));
        }
    }
}

/// After a 403 or 404 in a resolved tenant (or on an appliance-level page): the refusal
/// audit, and 429 once it is a burst.
pub async fn audit(res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let acting = res.request().extensions().get::<Rc<Acting>>().cloned();
    let (Some(a), Some(state)) = (
        acting,
        res.request()
            .app_data::<actix_web::web::Data<AppState>>()
            .cloned(),
    ) else {
        return res;
    };
    let Some(tenant) = a.scope.get() else {
        return res;
    };
    let why = res
        .response()
        .error()
        .map(|e| e.to_string())
        .unwrap_or_else(|| res.status().to_string());
    match service::tenants::authz_fail(&state.ctx, &a.principal, tenant, &why, &a.origin).await {
        Ok(()) => res,
        Err(e) => {
            let answer = if res.request().path().starts_with("/api/") {
                super::api::ApiError(e).error_response()
            } else {
                super::error::WebError(e).error_response()
            };
            res.into_response(answer)
        }
    }
}
