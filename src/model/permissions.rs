//! Permissions (DESIGN §1): what a role grants in a tenant, as codes and compact sets. Pure
//! data; `authz` decides with them.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    SettingsView,
    SettingsManage,
    RequestsView,
    RequestsApprove,
    DevicesView,
    DevicesManage,
    DevicesLogin,
    UsersView,
    UsersManage,
    PoliciesView,
    PoliciesManage,
    AuditView,
    AuditExport,
}

impl Permission {
    pub const ALL: &'static [Permission] = &[
        Permission::SettingsView,
        Permission::SettingsManage,
        Permission::RequestsView,
        Permission::RequestsApprove,
        Permission::DevicesView,
        Permission::DevicesManage,
        Permission::DevicesLogin,
        Permission::UsersView,
        Permission::UsersManage,
        Permission::PoliciesView,
        Permission::PoliciesManage,
        Permission::AuditView,
        Permission::AuditExport,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Permission::SettingsView => "settings.view",
            Permission::SettingsManage => "settings.manage",
            Permission::RequestsView => "requests.view",
            Permission::RequestsApprove => "requests.approve",
            Permission::DevicesView => "devices.view",
            Permission::DevicesManage => "devices.manage",
            Permission::DevicesLogin => "devices.login",
            Permission::UsersView => "users.view",
            Permission::UsersManage => "users.manage",
            Permission::PoliciesView => "policies.view",
            Permission::PoliciesManage => "policies.manage",
            Permission::AuditView => "audit.view",
            Permission::AuditExport => "audit.export",
        }
    }

    pub fn parse(code: &str) -> Option<Permission> {
        Permission::ALL.iter().copied().find(|p| p.code() == code)
    }

    fn bit(self) -> u32 {
        1 << (Permission::ALL
            .iter()
            .position(|p| *p == self)
            .unwrap_or(31) as u32)
    }
}

/// A set of permissions, stored compactly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PermissionSet(u32);

impl PermissionSet {
    pub fn all() -> Self {
        Permission::ALL.iter().copied().collect()
    }
    pub fn contains(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }
    pub fn insert(&mut self, p: Permission) {
        self.0 |= p.bit();
    }
    pub fn union(self, other: PermissionSet) -> Self {
        PermissionSet(self.0 | other.0)
    }
    /// Every permission of `self` is also in `other`.
    pub fn is_subset(self, other: PermissionSet) -> bool {
        self.0 & !other.0 == 0
    }
    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL
            .iter()
            .copied()
            .filter(move |p| self.contains(*p))
    }
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        let mut s = PermissionSet::default();
        for p in iter {
            s.insert(p);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_codes_round_trip_and_sets_hold_them() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.code()), Some(*p));
        }
        let s: PermissionSet = [Permission::AuditView, Permission::DevicesLogin]
            .into_iter()
            .collect();
        assert!(s.contains(Permission::AuditView) && !s.contains(Permission::AuditExport));
        assert_eq!(s.iter().count(), 2);
        assert_eq!(PermissionSet::all().iter().count(), Permission::ALL.len());
    }
}
