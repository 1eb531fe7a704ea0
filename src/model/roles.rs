//! Built-in roles (fixed) and what each may do (DESIGN §1). Custom roles are permission sets
//! stored per tenant.

use crate::model::permissions::{Permission, PermissionSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BuiltinRole {
    MspAdmin,
    Technician,
    CoManaged,
    Approver,
    Auditor,
    EndUser,
}

impl BuiltinRole {
    pub const ALL: &'static [BuiltinRole] = &[
        BuiltinRole::MspAdmin,
        BuiltinRole::Technician,
        BuiltinRole::CoManaged,
        BuiltinRole::Approver,
        BuiltinRole::Auditor,
        BuiltinRole::EndUser,
    ];

    pub fn key(self) -> &'static str {
        match self {
            BuiltinRole::MspAdmin => "msp_admin",
            BuiltinRole::Technician => "technician",
            BuiltinRole::CoManaged => "co_managed",
            BuiltinRole::Approver => "approver",
            BuiltinRole::Auditor => "auditor",
            BuiltinRole::EndUser => "end_user",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            BuiltinRole::MspAdmin => "MSP admin",
            BuiltinRole::Technician => "Technician",
            BuiltinRole::CoManaged => "Co-managed admin",
            BuiltinRole::Approver => "Approver",
            BuiltinRole::Auditor => "Auditor",
            BuiltinRole::EndUser => "End user",
        }
    }

    pub fn parse(key: &str) -> Option<BuiltinRole> {
        BuiltinRole::ALL.iter().copied().find(|r| r.key() == key)
    }

    /// MSP roles live in the MSP tenant; the others in a customer tenant.
    pub fn for_msp(self) -> bool {
        matches!(self, BuiltinRole::MspAdmin | BuiltinRole::Technician)
    }

    /// Permissions in the tenants the role reaches (for MSP roles: customer tenants).
    pub fn permissions(self) -> PermissionSet {
        use Permission::*;
        match self {
            BuiltinRole::MspAdmin | BuiltinRole::CoManaged => PermissionSet::all(),
            BuiltinRole::Technician => [RequestsView, RequestsApprove, DevicesView, DevicesLogin]
                .into_iter()
                .collect(),
            BuiltinRole::Approver => [RequestsView, RequestsApprove, DevicesView]
                .into_iter()
                .collect(),
            BuiltinRole::Auditor => [
                AuditView,
                AuditExport,
                RequestsView,
                DevicesView,
                UsersView,
                SettingsView,
                PoliciesView,
            ]
            .into_iter()
            .collect(),
            BuiltinRole::EndUser => PermissionSet::default(),
        }
    }
}

/// A role as assigned: built-in, or a tenant's custom role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoleRef {
    Builtin(BuiltinRole),
    Custom(String),
}

impl RoleRef {
    pub fn parse(s: &str) -> RoleRef {
        match BuiltinRole::parse(s) {
            Some(b) => RoleRef::Builtin(b),
            None => RoleRef::Custom(s.to_string()),
        }
    }
    pub fn key(&self) -> String {
        match self {
            RoleRef::Builtin(b) => b.key().to_string(),
            RoleRef::Custom(id) => id.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct CustomRole {
    pub id: String,
    pub name: String,
    pub permissions: PermissionSet,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_roles_match_the_design_table() {
        assert!(
            BuiltinRole::CoManaged
                .permissions()
                .contains(Permission::UsersManage)
        );
        assert!(
            BuiltinRole::Technician
                .permissions()
                .contains(Permission::DevicesLogin)
        );
        assert!(
            !BuiltinRole::Technician
                .permissions()
                .contains(Permission::UsersManage)
        );
        assert!(
            !BuiltinRole::Auditor
                .permissions()
                .contains(Permission::RequestsApprove)
        );
        assert_eq!(BuiltinRole::EndUser.permissions().iter().count(), 0);
        for r in BuiltinRole::ALL {
            assert_eq!(BuiltinRole::parse(r.key()), Some(*r));
        }
    }
}
