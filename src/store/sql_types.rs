//! SQLite conversions for the id newtypes and timestamps.

use rusqlite::ToSql;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};

use crate::clock::Timestamp;
use crate::ids::*;
use crate::model::commands::{CommandKind, CommandState};
use crate::model::devices::Alert;
use crate::model::logins::{CredentialReason, CredentialState};
use crate::model::one_time_links::LinkKind;
use crate::model::webhooks::DeliveryState;

macro_rules! sql_id {
    ($($name:ident),*) => {$(
        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.to_string()))
            }
        }
        impl FromSql for $name {
            fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
                let s = v.as_str()?;
                $name::parse(s).ok_or_else(|| FromSqlError::Other(format!("invalid {} {s:?}", stringify!($name)).into()))
            }
        }
    )*};
}

sql_id!(
    TenantId,
    UserId,
    DeviceId,
    RequestId,
    LoginId,
    CommandId,
    CertificateId,
    AuditEntryId
);

impl ToSql for Timestamp {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.millis()))
    }
}

impl FromSql for Timestamp {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        v.as_i64().map(Timestamp::from_millis)
    }
}

/// The text enums of `model` (see `model::text_enum`).
macro_rules! sql_text {
    ($($name:ident),*) => {$(
        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }
        impl FromSql for $name {
            fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
                let s = v.as_str()?;
                $name::parse(s).ok_or_else(|| FromSqlError::Other(format!("invalid {} {s:?}", stringify!($name)).into()))
            }
        }
    )*};
}

sql_text!(
    LinkKind,
    CredentialReason,
    CredentialState,
    DeliveryState,
    Alert,
    CommandKind,
    CommandState
);
