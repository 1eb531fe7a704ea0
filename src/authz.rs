//! Authorization: permissions (DESIGN §1) and the `TenantScope` that every tenant-scoped
//! store function requires. Only this module can mint a scope, so holding one *is* the check.

use crate::ids::TenantId;

pub use crate::model::permissions::{Permission, PermissionSet};

/// Proof that the current principal may act in one tenant. No public constructor: only this
/// module mints one (AZ-01), which the compiler enforces:
///
/// ```compile_fail
/// let scope = hourglass::authz::TenantScope { tenant: hourglass::ids::TenantId::new(), permission: None };
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TenantScope {
    tenant: TenantId,
    /// The permission that was checked to mint it; None for the appliance's own actions
    /// (`system_scope`) and appliance-level administration (`msp_scope`).
    permission: Option<Permission>,
}

impl TenantScope {
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// Which permission this scope proves (for logs and for services that narrow further).
    pub fn permission(&self) -> Option<Permission> {
        self.permission
    }
}

// --- principals ------------------------------------------------------------------------------

use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::UserId;
use crate::model::roles::BuiltinRole;
use crate::model::tenants::{Tenant, TenantKind};

/// Step-up window (SESS-05): sensitive actions need an authenticator code this recent.
pub const STEP_UP_MS: i64 = 5 * 60 * 1000;

/// What a token without the sensitive scope is told when it tries a sensitive action.
pub const TOKEN_NOT_SENSITIVE: &str = "this API token may not do sensitive actions (reveal a \
    password, approve or revoke, change roles or settings): create one with the sensitive scope \
    from My account, after a step-up";

/// Who is acting: a signed-in person or an API token acting as that person.
#[derive(Clone, Debug)]
pub struct Principal {
    pub user_id: UserId,
    pub tenant_id: TenantId,
    pub tenant_kind: TenantKind,
    pub builtin: Vec<BuiltinRole>,
    /// Union of the user's custom roles' permissions (in their own tenant).
    pub custom: PermissionSet,
    pub all_tenants: bool,
    pub assigned: Vec<TenantId>,
    /// When the session last proved the authenticator; for an API token, Some only when it
    /// has the sensitive scope.
    pub mfa_at: Option<Timestamp>,
    pub api_token: Option<String>,
}

impl Principal {
    pub fn is_msp_admin(&self) -> bool {
        self.tenant_kind == TenantKind::Msp && self.builtin.contains(&BuiltinRole::MspAdmin)
    }

    pub fn is_msp_staff(&self) -> bool {
        self.tenant_kind == TenantKind::Msp
    }

    /// What this principal may do in `t`; None when `t` is out of reach (answered as 404).
    pub fn permissions_in(&self, t: &Tenant) -> Option<PermissionSet> {
        if t.id == self.tenant_id {
            if !t.active && !self.is_msp_admin() {
                return None;
            }
            let mut set = self.custom;
            for r in &self.builtin {
                // MSP roles act on customer tenants; in the MSP tenant only the admin manages.
                if !r.for_msp() || *r == BuiltinRole::MspAdmin {
                    set = set.union(r.permissions());
                }
            }
            return Some(set);
        }
        if self.tenant_kind != TenantKind::Msp || t.kind != TenantKind::Customer {
            return None;
        }
        if self.is_msp_admin() {
            return Some(PermissionSet::all());
        }
        let assigned = self.all_tenants || self.assigned.contains(&t.id);
        if t.active && assigned && self.builtin.contains(&BuiltinRole::Technician) {
            return Some(BuiltinRole::Technician.permissions());
        }
        None
    }

    /// The tenant-admin role in `t` (DESIGN §1): an MSP admin in any tenant they reach, a
    /// co-managed admin in their own customer tenant. Promoting people needs it.
    pub fn is_tenant_admin(&self, t: &Tenant) -> bool {
        (self.is_msp_admin() && self.reaches(t))
            || (t.id == self.tenant_id && self.builtin.contains(&BuiltinRole::CoManaged))
    }

    /// Whether `t` is reachable at all (tenant switcher, `/t/{slug}` routing).
    pub fn reaches(&self, t: &Tenant) -> bool {
        self.permissions_in(t).is_some()
    }

    /// The authorization check: a scope for `t` if `p` is granted there. Out of reach →
    /// NotFound (like a tenant that does not exist); in reach without `p` → Forbidden.
    pub fn scope(&self, t: &Tenant, p: Permission) -> Result<TenantScope> {
        match self.permissions_in(t) {
            None => Err(Error::NotFound),
            Some(set) if set.contains(p) => Ok(TenantScope {
                tenant: t.id,
                permission: Some(p),
            }),
            Some(_) => Err(Error::Forbidden(format!(
                "you need the {} permission here",
                p.code()
            ))),
        }
    }

    /// A scope for appliance-level administration (tenants, MSP users): MSP admins only.
    pub fn msp_scope(&self) -> Result<TenantScope> {
        if self.is_msp_admin() {
            Ok(TenantScope {
                tenant: self.tenant_id,
                permission: None,
            })
        } else {
            Err(Error::NotFound)
        }
    }

    /// SESS-05: a sensitive action from a session needs an authenticator code from the last
    /// five minutes. An API token has no such code: only a token created with the sensitive
    /// scope (after a step-up, with an expiry) may act.
    pub fn require_fresh_mfa(&self, now: Timestamp) -> Result<()> {
        match (self.mfa_at, &self.api_token) {
            (None, Some(_)) => Err(Error::Forbidden(TOKEN_NOT_SENSITIVE.into())),
            (Some(at), _) if now.millis() - at.millis() > STEP_UP_MS => Err(Error::StepUpRequired),
            _ => Ok(()),
        }
    }
}

/// A scope for the appliance's own actions (first-run setup, CLI bootstrap, scheduler jobs),
/// never for a request's principal.
pub fn system_scope(tenant: TenantId) -> TenantScope {
    TenantScope {
        tenant,
        permission: None,
    }
}

#[cfg(test)]
mod scope_tests {
    use super::*;
    use crate::model::tenants::{Settings, Slug};

    #[test]
    fn a_scope_names_the_permission_it_was_minted_for() {
        let t = Tenant {
            id: TenantId::new(),
            kind: TenantKind::Customer,
            name: "Acme".into(),
            slug: Slug::parse("acme").unwrap(),
            active: true,
            settings: Settings::default(),
        };
        let tech = Principal {
            user_id: UserId::new(),
            tenant_id: TenantId::new(),
            tenant_kind: TenantKind::Msp,
            builtin: vec![BuiltinRole::Technician],
            custom: PermissionSet::default(),
            all_tenants: true,
            assigned: vec![],
            mfa_at: None,
            api_token: None,
        };
        let s = tech.scope(&t, Permission::RequestsApprove).unwrap();
        assert_eq!(
            (s.tenant(), s.permission()),
            (t.id, Some(Permission::RequestsApprove))
        );
        assert!(matches!(
            tech.scope(&t, Permission::SettingsManage),
            Err(Error::Forbidden(m)) if m.contains("settings.manage")
        ));
        assert_eq!(system_scope(t.id).permission(), None);
    }
}
