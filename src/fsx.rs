//! Files and folders only their owner may use, on every OS the binary is built for. On Unix
//! that is mode 0600/0700 whatever the umask; on Windows the agent's state folder gets an ACL
//! for SYSTEM and Administrators only (`agent::win32`), which files created in it inherit, so
//! these are no-ops there.

use std::fs::{DirBuilder, Metadata, OpenOptions};
use std::path::Path;

pub trait OwnerOnly {
    /// Created readable and writable by the owner only.
    fn owner_only(&mut self) -> &mut Self;
}

impl OwnerOnly for OpenOptions {
    #[cfg(unix)]
    fn owner_only(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
    #[cfg(not(unix))]
    fn owner_only(&mut self) -> &mut Self {
        self
    }
}

/// Created readable, writable and executable by the owner only (0700: a program to run).
pub fn owner_program(o: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o700)
    }
    #[cfg(not(unix))]
    {
        o
    }
}

impl OwnerOnly for DirBuilder {
    #[cfg(unix)]
    fn owner_only(&mut self) -> &mut Self {
        use std::os::unix::fs::DirBuilderExt;
        self.mode(0o700)
    }
    #[cfg(not(unix))]
    fn owner_only(&mut self) -> &mut Self {
        self
    }
}

/// The permission bits (with setuid/setgid/sticky); on Windows, where ACLs decide, `0o600`.
pub fn mode(meta: &Metadata) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o7777
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        0o600
    }
}

/// Sets the permission bits (Unix only; ACLs decide on Windows).
pub fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}
