//! People: usernames (the workstation account name), emails, statuses.

use crate::clock::Timestamp;
use crate::ids::{TenantId, UserId};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const USERNAME_MAX: usize = 20;

/// 1–20 characters of `[a-z0-9._-]`, starting with a letter (20 = the Windows limit).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

impl Username {
    pub fn parse(s: &str) -> Result<Username> {
        let err = |m: &str| Err(Error::validation("username", m));
        if s.is_empty() {
            return err("is required");
        }
        if s.chars().count() > USERNAME_MAX {
            return err("must be at most 20 characters (the Windows account-name limit)");
        }
        if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
            return err("must start with a lowercase letter a–z");
        }
        if let Some(c) = s.chars().find(|c| {
            !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        }) {
            return Err(Error::validation(
                "username",
                format!("may only contain a–z, 0–9, '.', '_' and '-' (found {c:?})"),
            ));
        }
        Ok(Username(s.to_string()))
    }

    /// Generates `prefix` + the email's local part, lower-cased, stripped of what is not
    /// allowed, cut to `max` characters, and numbered on collision (`co-nik`, `co-nik2`, …).
    pub fn generate(
        prefix: &str,
        email: &Email,
        max: usize,
        taken: impl Fn(&str) -> bool,
    ) -> Result<Username> {
        let local = email.local_part().to_lowercase();
        let mut base: String = format!("{prefix}{local}")
            .chars()
            .filter(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
            })
            .collect();
        base = base
            .trim_start_matches(|c: char| !c.is_ascii_lowercase())
            .to_string();
        if base.is_empty() || base == prefix.trim_end_matches('-') {
            base = format!("{prefix}user");
        }
        let max = max.min(USERNAME_MAX);
        let base: String = base.chars().take(max).collect();
        if !taken(&base) {
            return Username::parse(&base);
        }
        for n in 2..10_000u32 {
            let suffix = n.to_string();
            let stem: String = base.chars().take(max - suffix.len()).collect();
            let candidate = format!("{stem}{suffix}");
            if !taken(&candidate) {
                return Username::parse(&candidate);
            }
        }
        Err(Error::Conflict(
            "no free username could be generated".into(),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Username {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Username::parse(&s)
    }
}

impl From<Username> for String {
    fn from(u: Username) -> String {
        u.0
    }
}

impl std::fmt::Display for Username {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address, lower-cased; the login identifier.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Email> {
        let s = s.trim().to_lowercase();
        let err = |m: &str| Err(Error::validation("email", m));
        if s.is_empty() {
            return err("is required");
        }
        if s.len() > 254 {
            return err("must be at most 254 characters");
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return err("must not contain spaces");
        }
        match s.split_once('@') {
            Some((local, domain))
                if !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.') =>
            {
                Ok(Email(s))
            }
            _ => err("must look like name@example.com"),
        }
    }
    pub fn local_part(&self) -> &str {
        self.0.split('@').next().unwrap_or("")
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Email::parse(&s)
    }
}

impl From<Email> for String {
    fn from(e: Email) -> String {
        e.0
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    Invited,
    Active,
    Disabled,
    Erased,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Invited => "invited",
            UserStatus::Active => "active",
            UserStatus::Disabled => "disabled",
            UserStatus::Erased => "erased",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            UserStatus::Invited,
            UserStatus::Active,
            UserStatus::Disabled,
            UserStatus::Erased,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// The pseudonym that replaces an erased person's names and email; audit rows keep the id.
pub fn pseudonym(user_id: &str) -> Pseudonym {
    let short: String = user_id
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .skip(20)
        .take(12)
        .collect();
    Pseudonym {
        first_name: "Erased".to_string(),
        last_name: format!("user {short}"),
        email: format!("erased-{short}@erased.invalid"),
        // 15 characters: `msp-` + it still fits Windows' 20 (USERNAME_MAX).
        username: format!("erased-{}", &short[short.len().saturating_sub(8)..]),
    }
}

/// What an erased person is called from then on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pseudonym {
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub username: String,
}

/// A row of `users` as the services see it (read by `store::users`).
#[derive(Clone, Debug)]
pub struct User {
    pub id: UserId,
    pub tenant_id: TenantId,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub username: String,
    pub status: UserStatus,
    pub mfa_locked: bool,
    pub login_locked: bool,
    pub mfa_pause_until: Timestamp,
    pub mfa_pause_next: bool,
    pub all_tenants: bool,
    pub created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn email(s: &str) -> Email {
        Email::parse(s).unwrap()
    }

    #[test]
    fn usernames_are_generated_like_idemeum() {
        let none = |_: &str| false;
        assert_eq!(
            Username::generate("co-", &email("nik@company.com"), USERNAME_MAX, none)
                .unwrap()
                .as_str(),
            "co-nik"
        );
        assert_eq!(
            Username::generate("", &email("Nik.Smith@x.io"), USERNAME_MAX, none)
                .unwrap()
                .as_str(),
            "nik.smith"
        );
        assert_eq!(
            Username::generate("", &email("9lives+tag@x.io"), USERNAME_MAX, none)
                .unwrap()
                .as_str(),
            "livestag"
        );
        assert_eq!(
            Username::generate("", &email("123@x.io"), USERNAME_MAX, none)
                .unwrap()
                .as_str(),
            "user"
        );
        assert_eq!(
            Username::generate("co-", &email("émile@x.io"), USERNAME_MAX, none)
                .unwrap()
                .as_str(),
            "co-mile"
        );
        let long = Username::generate(
            "co-",
            &email("averyveryverylongname@x.io"),
            USERNAME_MAX,
            none,
        )
        .unwrap();
        assert_eq!(long.as_str(), "co-averyveryverylong");
        let taken = |u: &str| u == "co-averyveryverylong" || u == "co-averyveryverylon2";
        assert_eq!(
            Username::generate(
                "co-",
                &email("averyveryverylongname@x.io"),
                USERNAME_MAX,
                taken
            )
            .unwrap()
            .as_str(),
            "co-averyveryverylon3"
        );
        let taken = |u: &str| u == "co-nik";
        assert_eq!(
            Username::generate("co-", &email("nik@other.com"), USERNAME_MAX, taken)
                .unwrap()
                .as_str(),
            "co-nik2"
        );
    }

    #[test]
    fn rejected_usernames_say_which_rule() {
        for (bad, why) in [
            ("", "required"),
            ("a23456789012345678901", "at most 20"),
            ("1abc", "start with"),
            ("-abc", "start with"),
            ("Abc", "start with"),
            ("ab c", "may only contain"),
            ("ab@c", "may only contain"),
        ] {
            let e = Username::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        assert!(Username::parse("a").is_ok());
        assert!(Username::parse("a2345678901234567890").is_ok());
        assert!(Username::parse("co-nik.s_2").is_ok());
    }

    #[test]
    fn emails() {
        assert_eq!(email(" Nik@Company.COM ").as_str(), "nik@company.com");
        for bad in ["", "nik", "@x.io", "nik@", "a b@x.io", "a@@x.io", "a@.x"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn generated_usernames_always_validate(local in "[ -~]{1,40}", prefix in prop::sample::select(vec!["", "co-"])) {
            if let Ok(e) = Email::parse(&format!("{}@x.io", local.replace(['@', ' '], ""))) {
                let u = Username::generate(prefix, &e, USERNAME_MAX, |_| false).unwrap();
                prop_assert!(Username::parse(u.as_str()).is_ok());
            }
        }

        #[test]
        fn the_validator_agrees_with_the_documented_pattern(s in "\\PC{0,24}") {
            let re_ok = !s.is_empty() && s.chars().count() <= 20 && s.starts_with(|c: char| c.is_ascii_lowercase())
                && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c));
            prop_assert_eq!(Username::parse(&s).is_ok(), re_ok);
        }
    }
}
