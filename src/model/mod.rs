//! Pure types and rules: no I/O, no clock reads, no SQL.

pub mod audit;
pub mod audit_export;
pub mod checkpoint;
pub mod commands;
pub mod devices;
pub mod links;
pub mod logins;
pub mod net;
pub mod one_time_links;
pub mod passwords;
pub mod permissions;
pub mod policies;
pub mod requests;
pub mod roles;
pub mod sessions;
pub mod syslog;
pub mod tenants;
pub mod tokens;
pub mod users;
pub mod webhooks;
pub mod zones;

/// An enum stored and sent as text: `ALL`, `as_str` and `parse` come from one table, so the
/// words in the database and the variants cannot drift apart.
macro_rules! text_enum {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $v),+ }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),+ }
            }
            pub fn parse(s: &str) -> Option<$name> {
                match s { $($s => Some($name::$v),)+ _ => None }
            }
        }
    };
}
pub(crate) use text_enum;

#[cfg(test)]
mod tests {
    use super::commands::{CommandKind, CommandState};
    use super::logins::{CredentialReason, CredentialState};
    use super::one_time_links::LinkKind;
    use super::webhooks::DeliveryState;

    #[test]
    fn text_enums_read_back_what_they_write() {
        macro_rules! round_trip {
            ($($t:ty),*) => {$(
                for v in <$t>::ALL {
                    assert_eq!(<$t>::parse(v.as_str()), Some(*v));
                }
                assert_eq!(<$t>::parse("no such word"), None);
            )*};
        }
        round_trip!(
            LinkKind,
            CredentialReason,
            CredentialState,
            DeliveryState,
            CommandKind,
            CommandState,
            super::devices::Alert
        );
    }
}
