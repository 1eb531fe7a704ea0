//! Id newtypes (UUIDv7, stored as TEXT) so ids of different things never mix.

macro_rules! id_type {
    ($($name:ident),* $(,)?) => {$(
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub uuid::Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7())
            }
            pub fn parse(s: &str) -> Option<Self> {
                uuid::Uuid::parse_str(s).ok().map(Self)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = crate::error::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s).ok_or(crate::error::Error::NotFound)
            }
        }

    )*};
}

id_type!(
    TenantId,
    UserId,
    DeviceId,
    RequestId,
    LoginId,
    CommandId,
    CertificateId,
    AuditEntryId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuid_v7_text_and_round_trip() {
        let a = TenantId::new();
        let s = a.to_string();
        assert_eq!(s.len(), 36);
        assert_eq!(a.0.get_version_num(), 7);
        assert_eq!(TenantId::parse(&s), Some(a));
        assert_eq!(TenantId::parse("nope"), None);
    }
}
