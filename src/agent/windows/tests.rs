use super::*;

#[test]
fn command_lines_split_back_into_the_same_arguments() {
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        command_line(r"C:\Program Files\Tool\t.exe", &args(&["/S", "a b", ""])),
        r#""C:\Program Files\Tool\t.exe" /S "a b" """#
    );
    assert_eq!(
        command_line("t.exe", &args(&[r#"say "hi""#, r"C:\dir\", r"a\b"])),
        r#"t.exe "say \"hi\"" C:\dir\ a\b"#
    );
    assert_eq!(
        command_line("t.exe", &args(&[r"C:\my dir\"])),
        r#"t.exe "C:\my dir\\""#
    );
}

fn sam(state: FakeState) -> WindowsSam<FakeSam> {
    WindowsSam::new(FakeSam::with(state))
}

fn german() -> FakeState {
    FakeState {
        admin_group: Some("Administratoren".into()),
        ..FakeState::default()
    }
}

const PW: &str = "correct-horse-battery";

#[test]
fn the_administrators_group_is_found_by_its_sid_whatever_its_name() {
    let w = sam(german());
    w.ensure_account("msp-nik", PW, true).unwrap();
    assert!(w.admin_members().unwrap().contains(&"msp-nik".to_string()));
    w.remove_admin("MSP-NIK").unwrap();
    assert!(!w.admin_members().unwrap().contains(&"msp-nik".to_string()));
}

#[test]
fn names_over_twenty_characters_are_refused_before_anything_is_created() {
    let w = sam(german());
    let e = w
        .ensure_account("msp-a-very-long-name-x", PW, true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("at most 20 characters"), "{e}");
    assert!(w.api().snapshot().users.is_empty());
}

#[test]
fn a_refused_password_leaves_no_account_and_an_existing_one_unchanged() {
    let w = sam(german());
    let e = w.ensure_account("msp-nik", "short", true).unwrap_err();
    assert!(e.to_string().contains("password policy"), "{e}");
    assert!(w.api().snapshot().users.is_empty());
    assert!(!w.admin_members().unwrap().contains(&"msp-nik".to_string()));

    w.ensure_account("msp-nik", PW, false).unwrap();
    w.disable_account("msp-nik").unwrap();
    assert!(w.set_password("msp-nik", "short").is_err());
    let u = w.api().snapshot().users["msp-nik"].clone();
    assert_eq!(u.password, PW);
    assert!(!u.enabled);
}

#[test]
fn an_existing_account_is_reused_enabled_with_the_new_password() {
    let w = sam(german());
    w.ensure_account("msp-nik", PW, true).unwrap();
    w.disable_account("msp-nik").unwrap();
    assert!(!w.api().snapshot().users["msp-nik"].enabled);
    w.ensure_account("MSP-Nik", "another-long-password", true)
        .unwrap();
    let s = w.api().snapshot();
    assert_eq!(s.users.len(), 1, "NERR_UserExists is not a second account");
    assert!(s.users["msp-nik"].enabled);
    assert_eq!(s.users["msp-nik"].password, "another-long-password");
    assert_eq!(s.admins.iter().filter(|a| same(a, "msp-nik")).count(), 1);
}

#[test]
fn a_missing_administrators_group_is_said_and_leaves_the_account_disabled() {
    let w = sam(FakeState {
        admin_group: None,
        ..FakeState::default()
    });
    let e = w
        .ensure_account("msp-nik", PW, true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no local Administrators group"), "{e}");
    assert!(!w.api().snapshot().users["msp-nik"].enabled);
}

#[test]
fn log_off_ends_every_session_of_the_user_and_only_theirs() {
    let session = |id, user: &str| Session {
        id,
        user: user.into(),
        station: format!("RDP-Tcp#{id}"),
        logon_at: 1_800_000_000,
    };
    let w = sam(FakeState {
        sessions: vec![
            session(1, "msp-nik"),
            session(2, "MSP-NIK"),
            session(3, "anna"),
        ],
        ..german()
    });
    assert_eq!(w.logged_on().len(), 3);
    w.logoff("msp-nik").unwrap();
    let left: Vec<u32> = w.api().snapshot().sessions.iter().map(|s| s.id).collect();
    assert_eq!(left, vec![3]);
    w.notify("Your administrator rights end in 5 minutes")
        .unwrap();
    assert_eq!(w.api().snapshot().messages.len(), 1);
}

#[test]
fn status_codes_map_to_meanings() {
    assert_eq!(WinError::from_code("x", 2224), WinError::UserExists);
    assert_eq!(WinError::from_code("x", 1378), WinError::AlreadyMember);
    assert_eq!(
        WinError::from_code("NetUserAdd", 87),
        WinError::Failed {
            call: "NetUserAdd",
            code: 87
        }
    );
    assert!(check_name("msp-0001").is_ok());
    for bad in ["", "a/b", "name.", "co-\"x\"", &"x".repeat(21)] {
        assert!(check_name(bad).is_err(), "{bad:?}");
    }
}
