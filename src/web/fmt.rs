//! Words people read: times in the tenant's zone ("today 14:05", "3 min ago", the exact
//! moment on hover), lengths of time, and validation messages that name the field as its
//! form labels it.

use maud::{Markup, html};

use crate::clock::Timestamp;
use crate::model::zones;

/// A moment: a `<time>` with the machine-readable value, the exact moment as its tooltip and
/// the relative words as its text.
pub fn when(t: Timestamp, now: Timestamp, zone: &str) -> Markup {
    let ms = t.millis();
    html! {
        time datetime=(zones::rfc3339(ms, zone)) title=(zones::exact(ms, zone)) {
            (zones::human(ms, now.millis(), zone))
        }
    }
}

/// An optional moment ("—" when there is none).
pub fn when_opt(t: Option<Timestamp>, now: Timestamp, zone: &str) -> Markup {
    match t {
        Some(t) => when(t, now, zone),
        None => html! { span.muted { "—" } },
    }
}

/// How long until `t` (or "over" when it has passed).
pub fn left(t: Timestamp, now: Timestamp) -> String {
    let ms = t.millis() - now.millis();
    if ms <= 0 {
        "over".into()
    } else {
        zones::span(ms)
    }
}

/// The label a form shows for a field name the services report.
pub fn field_label(field: &str) -> String {
    let known = match field {
        "duration_minutes" | "minutes" => "Minutes",
        "reason" => "Reason",
        "ticket" => "Ticket",
        "jit_max_minutes" => "Maximum session",
        "jit_pending_timeout_minutes" => "Pending requests time out after",
        "offline_login_minutes" => "Offline login lasts",
        "silence_alert_minutes" => "Silence alert after",
        "standing_admin_exceptions" => "Accounts kept as administrators",
        "seats" => "Co-managed seats",
        "co_management" => "Co-management",
        "time_zone" => "Time zone",
        "login_mode" => "Technician login mode",
        "acknowledge_shared" => "Shared mode acknowledgement",
        "hours" => "Hours",
        "uses" => "Number of workstations",
        "expires_in_days" => "Stops working after",
        "first_name" => "First name",
        "last_name" => "Last name",
        "email" => "Email",
        "username" => "Username",
        "password" => "Password",
        "password_confirm" => "Repeat the password",
        "msp_name" => "Organisation (MSP) name",
        "name" => "Name",
        "slug" => "Slug",
        "code" | "step_up_code" => "Code",
        "url" => "URL",
        "kind" => "Kind",
        "max_minutes" => "Longest session it approves",
        "from_minute" | "from" => "From",
        "to_minute" | "to" => "To",
        "account" => "Account",
        "device_id" => "Workstation",
        "state" => "State",
        "who" => "Account, workstation or ticket",
        "format" => "Format",
        "confirm" => "Confirmation",
        "offline_ack" => "Workstation offline",
        "role" => "Role",
        "permissions" => "Permissions",
        "rules" => "Rules",
        "description" => "Description",
        "span" | "duration" => "How long it applies",
        "access" => "Applications",
        "devices" => "Workstations",
        "users" => "Endpoint users",
        "hours_valid" => "Valid for (hours)",
        _ => "",
    };
    if known.is_empty() {
        let mut s = field.replace(['_', '.'], " ");
        if let Some(first) = s.get(..1) {
            s = first.to_uppercase() + &s[1..];
        }
        s
    } else {
        known.to_string()
    }
}

/// "Maximum session: must be a whole number".
pub fn validation_message(field: &str, msg: &str) -> String {
    format!("{}: {msg}", field_label(field))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_named_as_their_forms_label_them() {
        assert_eq!(
            validation_message("jit_max_minutes", "must be a whole number"),
            "Maximum session: must be a whole number"
        );
        assert_eq!(field_label("some_new_field"), "Some new field");
        assert_eq!(left(Timestamp(10_000), Timestamp(20_000)), "over");
        assert_eq!(left(Timestamp(20 * 60_000), Timestamp(0)), "20 min");
    }
}
