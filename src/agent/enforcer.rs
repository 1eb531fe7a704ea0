//! The agent's own rules: which commands it runs (AGT-03/04) and what it enforces on its own
//! clock even with the appliance unreachable (AGT-05, CRED-04).

use serde_json::json;

use super::os::Os;
use super::state::{Grant, OfflineSecret, PolicyBundle, State};
use crate::error::Result;
use crate::model::commands::{
    Action, MAX_GRANT_MS, MAX_GRANTS_PER_HOUR, SessionRef, is_managed_account, may_touch,
};
use crate::proto::{self, AckResult, Event, EventKind};

#[derive(Debug, PartialEq)]
pub enum Verdict {
    Run(Action),
    /// Seen before: acknowledge again with the stored result, never run twice.
    Reack(AckResult, String),
    Refuse(String),
}

/// Decides about one delivered command. `server_now` is the agent's estimate of server time.
pub fn check(state: &State, c: &proto::Command, server_now: i64) -> Verdict {
    if c.device_id != state.device_id {
        return Verdict::Refuse(format!("command for another device ({})", c.device_id));
    }
    if let Some((r, d)) = state.result_of(c.id) {
        return Verdict::Reack(r, d);
    }
    if c.seq <= state.last_seq {
        return Verdict::Refuse(format!(
            "old sequence number {} (last seen {})",
            c.seq, state.last_seq
        ));
    }
    if server_now > c.not_after {
        return Verdict::Refuse("command expired before it arrived".into());
    }
    let action = match Action::parse(&c.kind, &c.args) {
        Ok(a) => a,
        Err(e) => return Verdict::Refuse(e),
    };
    if !may_touch(&action, &state.end_users) {
        return Verdict::Refuse(format!(
            "account {:?} is not managed by Hourglass",
            action.account().unwrap_or("")
        ));
    }
    if let Action::GrantAdmin { expires_at, .. } = &action {
        if expires_at - server_now > MAX_GRANT_MS {
            return Verdict::Refuse("grants last at most 24 hours".into());
        }
        let recent = state
            .grant_times
            .iter()
            .filter(|t| server_now - **t < 3_600_000)
            .count();
        if recent >= MAX_GRANTS_PER_HOUR {
            return Verdict::Refuse(format!("more than {MAX_GRANTS_PER_HOUR} grants in an hour"));
        }
    }
    Verdict::Run(action)
}

fn ordered(state: &mut State, account: &str, on: bool) {
    state.ordered_admins.retain(|a| a != account);
    if on {
        state.ordered_admins.push(account.to_string());
    }
}

/// Adds the session's RequestIdentifier and TicketIdentifier to an event's data.
pub(super) fn stamped(
    mut data: serde_json::Value,
    session: Option<&SessionRef>,
) -> serde_json::Value {
    if let (Some(s), Some(map)) = (session, data.as_object_mut()) {
        map.insert("request_id".into(), json!(s.request_id));
        if let Some(t) = &s.ticket {
            map.insert("ticket".into(), json!(t));
        }
    }
    data
}

fn session_of<'a>(state: &'a State, account: &str) -> Option<&'a SessionRef> {
    state
        .grants
        .iter()
        .find(|g| g.account == account)
        .and_then(|g| g.session.as_ref())
}

fn remember_version(state: &mut State, account: &str, version: &Option<String>) {
    if let Some(v) = version {
        state
            .password_versions
            .insert(account.to_string(), v.clone());
    }
}

pub fn event(kind: EventKind, at: i64, data: serde_json::Value) -> Event {
    Event {
        id: uuid::Uuid::now_v7().to_string(),
        kind,
        at,
        data,
    }
}

// Long on purpose: one arm per command kind, each short; the match is the list of what an agent does.
/// Runs an accepted command; returns the events it produced.
pub fn apply(
    os: &dyn Os,
    state: &mut State,
    c: &proto::Command,
    action: &Action,
    server_now: i64,
) -> Result<Vec<Event>> {
    let mut events = Vec::new();
    match action {
        Action::GrantAdmin {
            account,
            expires_at,
            session,
        } => {
            // The same session again is an extension: the deadline moves, rights stay.
            let extended = session.is_some() && session_of(state, account) == session.as_ref();
            os.add_admin(account)?;
            ordered(state, account, true);
            state.grants.retain(|g| g.account != *account);
            state.grants.push(Grant {
                account: account.clone(),
                expires_at: *expires_at,
                command_id: c.id,
                warned: Vec::new(),
                session: session.clone(),
            });
            state.grant_times.retain(|t| server_now - *t < 3_600_000);
            state.grant_times.push(server_now);
            let data = stamped(
                json!({"account": account, "expires_at": expires_at, "command": c.id}),
                session.as_ref(),
            );
            if extended {
                events.push(event(EventKind::GrantExtended, server_now, data));
            } else {
                events.push(event(EventKind::GrantStarted, server_now, data.clone()));
                // The seeds' 300: the user's session as an administrator begins.
                events.push(event(EventKind::Logon, server_now, data));
            }
        }
        Action::RevokeAdmin { account } => {
            let data = stamped(
                json!({"account": account, "command": c.id}),
                session_of(state, account),
            );
            revoke(os, state, account)?;
            events.push(event(EventKind::GrantRevoked, server_now, data));
        }
        Action::EnsureAccount {
            account,
            password,
            admin,
            version,
        } => {
            if *admin {
                ordered(state, account, true);
            }
            os.ensure_account(account, password, *admin)?;
            remember_version(state, account, version);
        }
        Action::RotatePassword {
            account,
            password,
            version,
        } => {
            os.set_password(account, password)?;
            remember_version(state, account, version);
        }
        Action::DisableAccount { account } => {
            ordered(state, account, false);
            state.grants.retain(|g| g.account != *account);
            os.disable_account(account)?;
            os.logoff(account)?;
        }
        Action::DeleteAccount { account } => {
            ordered(state, account, false);
            state.grants.retain(|g| g.account != *account);
            state.password_versions.remove(account);
            os.logoff(account)?;
            os.delete_account(account)?;
        }
        Action::SetStandingAdmins { keep } => {
            // The baseline shrinks to what is kept; the PPAM check keeps the rest out later.
            let kept = |a: &str| keep.iter().any(|k| k.eq_ignore_ascii_case(a));
            for member in os.admin_members()? {
                if state.baseline_admins.contains(&member)
                    && !kept(&member)
                    && !state.ordered_admins.contains(&member)
                {
                    os.remove_admin(&member)?;
                    events.push(event(
                        EventKind::StandingAdminRemoved,
                        server_now,
                        json!({"account": member, "command": c.id}),
                    ));
                }
            }
            state.baseline_admins.retain(|a| kept(a));
        }
        Action::Logoff { account } => os.logoff(account)?,
        Action::Notify { message } => os.notify(message)?,
        Action::SetOfflineSecret { secret, minutes } => {
            state.offline = (!secret.is_empty()).then(|| OfflineSecret {
                secret: secret.clone(),
                minutes: minutes.unwrap_or(crate::model::logins::OFFLINE_MINUTES),
            });
        }
        Action::PolicyUpdate { version, bundle } => {
            // A bundle that does not parse or check is refused: the last good one stays.
            let policies: Vec<crate::model::policies::Policy> =
                serde_json::from_value(bundle.clone())
                    .map_err(|e| crate::error::Error::validation("bundle", e.to_string()))?;
            for p in &policies {
                crate::model::policies::check_policy(p)?;
            }
            if state.policies.as_ref().is_none_or(|b| b.version < *version) {
                state.policies = Some(PolicyBundle {
                    version: *version,
                    policies,
                });
            }
        }
    }
    Ok(events)
}

fn revoke(os: &dyn Os, state: &mut State, account: &str) -> Result<()> {
    ordered(state, account, false);
    state.grants.retain(|g| g.account != account);
    os.remove_admin(account)?;
    // A technician's account is also disabled at the deadline, so nothing stays usable
    // while the appliance cannot send the rotation (CRED-03, CRED-07).
    if is_managed_account(account) {
        os.disable_account(account)?;
    }
    os.logoff(account)
}

/// The periodic enforcement: warnings at 5 and 1 minutes, revocation at the deadline, and
/// reverting administrators nobody ordered (PPAM). Returns the events to upload.
pub fn tick(os: &dyn Os, state: &mut State, server_now: i64) -> Result<Vec<Event>> {
    let mut events = Vec::new();
    for g in state.grants.clone() {
        let left = g.expires_at - server_now;
        if left <= 0 {
            revoke(os, state, &g.account)?;
            let mut e = event(
                EventKind::GrantExpired,
                server_now,
                stamped(
                    json!({"account": g.account, "command": g.command_id}),
                    g.session.as_ref(),
                ),
            );
            // One id per grant: if the agent dies after queueing this but before saving the
            // state, the next start revokes again and the appliance keeps the event once.
            e.id = format!("grant-expired-{}", g.command_id);
            events.push(e);
            continue;
        }
        for minutes in [5u32, 1] {
            if left <= i64::from(minutes) * 60_000 && !g.warned.contains(&minutes) {
                os.notify(&format!(
                    "Your administrator rights end in {minutes} minute{}.",
                    if minutes == 1 { "" } else { "s" }
                ))?;
                if let Some(x) = state.grants.iter_mut().find(|x| x.account == g.account) {
                    x.warned.push(minutes);
                }
            }
        }
    }
    for member in os.admin_members()? {
        if !state.baseline_admins.contains(&member) && !state.ordered_admins.contains(&member) {
            os.remove_admin(&member)?;
            // Blocked during a user's session: the session it happened in is named.
            let during = state.grants.iter().find_map(|g| g.session.as_ref());
            events.push(event(
                EventKind::Ppam,
                server_now,
                stamped(
                    json!({"account": member, "action": "removed from the administrators group"}),
                    during,
                ),
            ));
        }
    }
    // Last, after everything that can fail: log-ons are marked seen as they are reported,
    // so a tick that fails must not have seen them.
    events.extend(logons(os, state, server_now));
    Ok(events)
}

/// New log-ons of managed accounts (CRED-03): each reported once, saying whether this agent
/// knows a session for the account (an online login, or an offline one the appliance may
/// not have heard of yet). The appliance decides whether to rotate.
fn logons(os: &dyn Os, state: &mut State, server_now: i64) -> Vec<Event> {
    let mut events = Vec::new();
    for l in os.logged_on() {
        if !is_managed_account(&l.user) {
            continue;
        }
        let key = format!("{}|{}|{}", l.user, l.line, l.at);
        if state.seen_logons.contains(&key) {
            continue;
        }
        state.seen_logons.push(key);
        let in_session = state.ordered_admins.contains(&l.user)
            || state.grants.iter().any(|g| g.account == l.user);
        events.push(event(
            EventKind::Logon,
            server_now,
            json!({"account": l.user, "line": l.line, "host": l.host, "logged_on_at": l.at,
                   "observed": true, "in_session": in_session}),
        ));
    }
    let n = state.seen_logons.len();
    if n > 200 {
        state.seen_logons.drain(..n - 200);
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::os::MemoryOs;
    use crate::ids::{CommandId, DeviceId, TenantId};

    fn state() -> State {
        State::for_tests()
    }

    fn cmd(s: &State, seq: i64, action: Action) -> proto::Command {
        proto::Command {
            id: CommandId::new(),
            device_id: s.device_id,
            tenant_id: TenantId::new(),
            seq,
            issued_at: 0,
            not_after: 10_000_000,
            kind: action.kind().as_str().into(),
            args: action.args(),
        }
    }

    #[test]
    fn replays_wrong_devices_and_expired_commands_are_refused() {
        let mut s = state();
        let grant = cmd(
            &s,
            5,
            Action::GrantAdmin {
                account: "msp-nik".into(),
                expires_at: 600_000,
                session: None,
            },
        );
        assert!(matches!(check(&s, &grant, 1000), Verdict::Run(_)));
        s.last_seq = 5;
        s.remember(grant.id, AckResult::Done, "ok".into());
        assert_eq!(
            check(&s, &grant, 1000),
            Verdict::Reack(AckResult::Done, "ok".into()),
            "a re-sent id is re-acknowledged"
        );
        let replay = proto::Command {
            id: CommandId::new(),
            ..grant.clone()
        };
        assert!(
            matches!(check(&s, &replay, 1000), Verdict::Refuse(r) if r.contains("old sequence"))
        );
        let other = proto::Command {
            device_id: DeviceId::new(),
            seq: 6,
            id: CommandId::new(),
            ..grant.clone()
        };
        assert!(
            matches!(check(&s, &other, 1000), Verdict::Refuse(r) if r.contains("another device"))
        );
        let late = proto::Command {
            seq: 7,
            id: CommandId::new(),
            not_after: 500,
            ..grant.clone()
        };
        assert!(matches!(check(&s, &late, 1000), Verdict::Refuse(r) if r.contains("expired")));
        let unknown = proto::Command {
            seq: 8,
            id: CommandId::new(),
            kind: "run_shell".into(),
            ..grant
        };
        assert!(
            matches!(check(&s, &unknown, 1000), Verdict::Refuse(r) if r.contains("unknown command type"))
        );
    }

    #[test]
    fn root_long_grants_and_the_eleventh_grant_in_an_hour_are_refused() {
        let mut s = state();
        let root = cmd(
            &s,
            1,
            Action::EnsureAccount {
                account: "root".into(),
                password: "x".into(),
                admin: true,
                version: None,
            },
        );
        assert!(matches!(check(&s, &root, 0), Verdict::Refuse(_)));
        let long = cmd(
            &s,
            1,
            Action::GrantAdmin {
                account: "msp-nik".into(),
                expires_at: 48 * 3_600_000,
                session: None,
            },
        );
        assert!(matches!(check(&s, &long, 0), Verdict::Refuse(r) if r.contains("24 hours")));
        s.grant_times = (0..10).map(|i| i * 1000).collect();
        let eleventh = cmd(
            &s,
            1,
            Action::GrantAdmin {
                account: "msp-nik".into(),
                expires_at: 60_000,
                session: None,
            },
        );
        assert!(
            matches!(check(&s, &eleventh, 20_000), Verdict::Refuse(r) if r.contains("in an hour"))
        );
        assert!(
            matches!(check(&s, &eleventh, 3_700_000), Verdict::Run(_)),
            "an hour later it is allowed"
        );
    }

    #[test]
    fn a_log_on_seen_in_a_failing_tick_is_reported_by_the_next() {
        let os = MemoryOs::default();
        let mut s = state();
        {
            let mut m = os.state.lock().unwrap();
            m.logged_on.push(crate::agent::utmp::LoggedOn {
                user: "msp-nik".into(),
                line: "pts/1".into(),
                host: String::new(),
                at: 1,
            });
            m.admin_list_fails = true;
        }
        assert!(tick(&os, &mut s, 1000).is_err());
        os.state.lock().unwrap().admin_list_fails = false;
        let ev = tick(&os, &mut s, 2000).unwrap();
        assert_eq!(
            ev.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
            vec!["logon"]
        );
        assert!(tick(&os, &mut s, 3000).unwrap().is_empty(), "once");
    }

    #[test]
    fn grants_expire_on_the_agents_clock_with_warnings_and_intruders_are_reverted() {
        let os = MemoryOs::default();
        os.add_admin("alice").unwrap();
        let mut s = state();
        let g = cmd(
            &s,
            1,
            Action::GrantAdmin {
                account: "msp-nik".into(),
                expires_at: 600_000,
                session: None,
            },
        );
        let Verdict::Run(a) = check(&s, &g, 0) else {
            panic!()
        };
        apply(&os, &mut s, &g, &a, 0).unwrap();
        os.add_admin("mallory").unwrap();
        let ev = tick(&os, &mut s, 1000).unwrap();
        assert_eq!(
            ev.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
            vec!["ppam"]
        );
        assert_eq!(
            os.admin_members().unwrap(),
            vec!["alice", "msp-nik"],
            "baseline kept, grant kept, intruder gone"
        );
        tick(&os, &mut s, 600_000 - 4 * 60_000).unwrap();
        tick(&os, &mut s, 600_000 - 30_000).unwrap();
        let before = s.clone();
        let ev = tick(&os, &mut s, 600_000).unwrap();
        assert_eq!(ev[0].kind, EventKind::GrantExpired);
        // A crash before the state was saved: the repeated expiry has the same event id.
        let mut again = before;
        assert_eq!(tick(&os, &mut again, 600_000).unwrap()[0].id, ev[0].id);
        assert_eq!(os.admin_members().unwrap(), vec!["alice"]);
        let log = os.state.lock().unwrap().log.clone();
        assert!(
            log.iter().any(|l| l.contains("5 minutes"))
                && log.iter().any(|l| l.contains("1 minute.")),
            "{log:?}"
        );
        assert!(log.contains(&"logoff msp-nik".to_string()));
    }

    #[test]
    fn a_bad_or_older_bundle_leaves_the_last_good_one() {
        let os = MemoryOs::default();
        let mut s = state();
        let good = serde_json::to_value(crate::model::policies::cases::policies()).unwrap();
        let update =
            |version: i64, bundle: serde_json::Value| Action::PolicyUpdate { version, bundle };
        let c = cmd(&s, 1, update(3, good.clone()));
        apply(&os, &mut s, &c, &update(3, good.clone()), 0).unwrap();
        assert_eq!(s.policies.as_ref().unwrap().version, 3);
        let n = s.policies.as_ref().unwrap().policies.len();
        // A rule value that does not check, and a body that does not parse.
        let mut bad = good.clone();
        bad[0]["rules"] = serde_json::json!([{"id": "r", "kind": "hash", "value": "xyz"}]);
        for b in [bad, serde_json::json!({"not": "a list"})] {
            let c = cmd(&s, 2, update(4, b.clone()));
            assert!(apply(&os, &mut s, &c, &update(4, b), 0).is_err());
            assert_eq!(s.policies.as_ref().unwrap().version, 3);
        }
        // An older version arriving late does not replace a newer one.
        let c = cmd(&s, 3, update(2, serde_json::json!([])));
        apply(&os, &mut s, &c, &update(2, serde_json::json!([])), 0).unwrap();
        assert_eq!(s.policies.as_ref().unwrap().version, 3);
        assert_eq!(s.policies.as_ref().unwrap().policies.len(), n);
    }
}
