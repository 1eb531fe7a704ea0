//! Everything the agent does to the operating system, behind one trait: the Linux back end
//! drives the real shadow tools against a root (`/` or a throw-away one), the memory back end
//! serves unit tests and the simulator.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::error::{Error, Result};

pub trait Os: Send + Sync {
    /// Creates the account if missing, sets its password, unlocks it, and adds it to the
    /// administrators group when `admin`.
    fn ensure_account(&self, name: &str, password: &str, admin: bool) -> Result<()>;
    fn set_password(&self, name: &str, password: &str) -> Result<()>;
    fn disable_account(&self, name: &str) -> Result<()>;
    /// Removes the account (its home stays); nothing to do when it does not exist.
    fn delete_account(&self, name: &str) -> Result<()>;
    fn add_admin(&self, name: &str) -> Result<()>;
    fn remove_admin(&self, name: &str) -> Result<()>;
    fn admin_members(&self) -> Result<Vec<String>>;
    fn logoff(&self, name: &str) -> Result<()>;
    fn notify(&self, message: &str) -> Result<()>;
    /// Who is logged on now (utmp); nothing where the back end cannot tell.
    fn logged_on(&self) -> Vec<super::utmp::LoggedOn> {
        Vec::new()
    }
    /// Whether a local account exists; None where the back end cannot tell.
    fn has_account(&self, _name: &str) -> Option<bool> {
        None
    }
}

/// The refusal for an account the machine does not have (shown to the approver as is).
pub fn no_such_account(name: &str) -> Error {
    Error::InvalidState(format!(
        "there is no local account {name} on this workstation"
    ))
}

/// SHA-512-crypt, the format `chpasswd -e` expects; the plaintext never reaches a command line.
pub fn crypt_hash(password: &str) -> Result<String> {
    use sha_crypt::{PasswordHasher, ShaCrypt};
    let mut salt = [0u8; 12];
    crate::crypto::fill_random(&mut salt)?;
    ShaCrypt::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::internal(format!("sha-crypt: {e}")))
}

pub struct LinuxShadow {
    root: PathBuf,
    group: String,
}

/// The PATH a program run as root gets (sudo's secure_path): the shadow tools and programs
/// run elevated come from the system's own directories.
pub const SECURE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl LinuxShadow {
    pub fn new(root: &Path, admin_group: &str) -> Self {
        LinuxShadow {
            root: root.to_path_buf(),
            group: admin_group.to_string(),
        }
    }

    fn is_host(&self) -> bool {
        self.root == Path::new("/")
    }

    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let mut c = Command::new(program);
        // The shadow tools from the system's own directories, whoever started us (pam_exec
        // passes no PATH at all).
        c.env("PATH", SECURE_PATH)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c
            .spawn()
            .map_err(|e| Error::internal(format!("{program}: {e}")))?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
            return Err(Error::internal(format!(
                "{program} {}: {err}",
                args.first().copied().unwrap_or("")
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    }

    fn prefix(&self) -> String {
        self.root.display().to_string()
    }

    fn user_exists(&self, name: &str) -> Result<bool> {
        let passwd = std::fs::read_to_string(self.root.join("etc/passwd"))?;
        Ok(passwd.lines().any(|l| l.split(':').next() == Some(name)))
    }

    /// Actions with no effect inside a throw-away root (log-off, messages) are recorded there.
    fn record(&self, what: &str) -> Result<()> {
        let dir = self.root.join("var/log/hourglass-agent");
        std::fs::create_dir_all(&dir)?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("actions.log"))?;
        writeln!(f, "{what}")?;
        Ok(())
    }
}

impl Os for LinuxShadow {
    fn logged_on(&self) -> Vec<super::utmp::LoggedOn> {
        super::utmp::read(&self.root)
    }
    fn ensure_account(&self, name: &str, password: &str, admin: bool) -> Result<()> {
        let p = self.prefix();
        if !self.user_exists(name)? {
            self.run(
                "useradd",
                &[
                    "--prefix",
                    &p,
                    "--create-home",
                    "--shell",
                    "/bin/bash",
                    name,
                ],
                None,
            )?;
        }
        self.set_password(name, password)?;
        // Enabled again: unlocked and no longer expired (disable_account sets both).
        self.run(
            "usermod",
            &["--prefix", &p, "--unlock", "--expiredate", "", name],
            None,
        )?;
        if admin {
            self.add_admin(name)?;
        }
        Ok(())
    }

    fn set_password(&self, name: &str, password: &str) -> Result<()> {
        let line = format!("{name}:{}\n", crypt_hash(password)?);
        self.run(
            "chpasswd",
            &["--encrypted", "--root", &self.prefix()],
            Some(&line),
        )
        .map(|_| ())
    }

    fn disable_account(&self, name: &str) -> Result<()> {
        if !self.user_exists(name)? {
            return Ok(());
        }
        self.remove_admin(name)?;
        self.run(
            "usermod",
            &[
                "--prefix",
                &self.prefix(),
                "--lock",
                "--expiredate",
                "1",
                name,
            ],
            None,
        )?;
        Ok(())
    }

    fn delete_account(&self, name: &str) -> Result<()> {
        if !self.user_exists(name)? {
            return Ok(());
        }
        self.remove_admin(name)?;
        self.run("userdel", &["--prefix", &self.prefix(), name], None)?;
        Ok(())
    }

    fn has_account(&self, name: &str) -> Option<bool> {
        self.user_exists(name).ok()
    }
    fn add_admin(&self, name: &str) -> Result<()> {
        if !self.user_exists(name)? {
            return Err(no_such_account(name));
        }
        if self.admin_members()?.iter().any(|m| m == name) {
            return Ok(());
        }
        self.run(
            "gpasswd",
            &["--root", &self.prefix(), "--add", name, &self.group],
            None,
        )
        .map(|_| ())
    }

    fn remove_admin(&self, name: &str) -> Result<()> {
        if !self.admin_members()?.iter().any(|m| m == name) {
            return Ok(());
        }
        self.run(
            "gpasswd",
            &["--root", &self.prefix(), "--delete", name, &self.group],
            None,
        )
        .map(|_| ())
    }

    fn admin_members(&self) -> Result<Vec<String>> {
        let group = std::fs::read_to_string(self.root.join("etc/group"))?;
        Ok(group
            .lines()
            .find(|l| l.split(':').next() == Some(self.group.as_str()))
            .and_then(|l| l.split(':').nth(3))
            .map(|m| {
                m.split(',')
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default())
    }

    fn logoff(&self, name: &str) -> Result<()> {
        if self.is_host() {
            // No sessions is fine: the user is logged off either way.
            let _ = self.run("loginctl", &["terminate-user", name], None);
            return Ok(());
        }
        self.record(&format!("logoff {name}"))
    }

    fn notify(&self, message: &str) -> Result<()> {
        if self.is_host() {
            let _ = self.run("wall", &[], Some(message));
            return Ok(());
        }
        self.record(&format!("notify {message}"))
    }
}

/// An in-memory machine for unit tests and the simulator.
#[derive(Default)]
pub struct MemoryOs {
    pub state: Mutex<MemoryState>,
}

#[derive(Default, Debug, Clone)]
pub struct MemoryState {
    /// account → (password hash, locked)
    pub accounts: BTreeMap<String, (String, bool)>,
    pub admins: BTreeSet<String>,
    pub log: Vec<String>,
    /// What utmp would say is logged on.
    pub logged_on: Vec<super::utmp::LoggedOn>,
    /// Make listing the administrators fail (a broken `getent`), for tests.
    pub admin_list_fails: bool,
}

impl MemoryOs {
    fn with<T>(&self, f: impl FnOnce(&mut MemoryState) -> T) -> Result<T> {
        self.state
            .lock()
            .map(|mut s| f(&mut s))
            .map_err(|_| Error::internal("memory os poisoned"))
    }
}

impl Os for MemoryOs {
    fn ensure_account(&self, name: &str, password: &str, admin: bool) -> Result<()> {
        self.with(|s| {
            s.accounts.insert(name.into(), (password.into(), false));
            if admin {
                s.admins.insert(name.into());
            }
        })
    }
    fn set_password(&self, name: &str, password: &str) -> Result<()> {
        self.with(|s| {
            if let Some(a) = s.accounts.get_mut(name) {
                a.0 = password.into();
            }
        })
    }
    fn disable_account(&self, name: &str) -> Result<()> {
        self.with(|s| {
            s.admins.remove(name);
            if let Some(a) = s.accounts.get_mut(name) {
                a.1 = true;
            }
        })
    }
    fn delete_account(&self, name: &str) -> Result<()> {
        self.with(|s| {
            s.admins.remove(name);
            s.accounts.remove(name);
        })
    }
    fn add_admin(&self, name: &str) -> Result<()> {
        self.with(|s| {
            s.admins.insert(name.into());
        })
    }
    fn remove_admin(&self, name: &str) -> Result<()> {
        self.with(|s| {
            s.admins.remove(name);
        })
    }
    fn admin_members(&self) -> Result<Vec<String>> {
        self.with(|s| (!s.admin_list_fails).then(|| s.admins.iter().cloned().collect()))?
            .ok_or_else(|| Error::internal("cannot list the administrators"))
    }
    fn logged_on(&self) -> Vec<super::utmp::LoggedOn> {
        self.with(|s| s.logged_on.clone()).unwrap_or_default()
    }
    fn logoff(&self, name: &str) -> Result<()> {
        self.with(|s| s.log.push(format!("logoff {name}")))
    }
    fn notify(&self, message: &str) -> Result<()> {
        self.with(|s| s.log.push(format!("notify {message}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crypt_hashes_are_sha512_crypt_and_verify() {
        use sha_crypt::{PasswordHash, PasswordVerifier, ShaCrypt};
        let h = crypt_hash("correct horse").unwrap();
        assert!(h.starts_with("$6$"), "{h}");
        let parsed = PasswordHash::new(&h).unwrap();
        assert!(
            ShaCrypt::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        assert!(
            ShaCrypt::default()
                .verify_password(b"wrong", &parsed)
                .is_err()
        );
        assert_ne!(
            h,
            crypt_hash("correct horse").unwrap(),
            "fresh salt each time"
        );
    }

    #[test]
    fn memory_os_tracks_admins() {
        let m = MemoryOs::default();
        m.ensure_account("msp-nik", "h", true).unwrap();
        assert_eq!(m.admin_members().unwrap(), vec!["msp-nik".to_string()]);
        m.disable_account("msp-nik").unwrap();
        assert!(m.admin_members().unwrap().is_empty());
    }
}
