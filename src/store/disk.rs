//! The file system under the data directory: free space and a real write, for /healthz
//! (DUR-02, FLT-06). A probe inside SQLite alone can fit into WAL pages already allocated and
//! report a full disk as healthy.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

const PROBE_FILE: &str = ".health-probe";
/// One page more than SQLite's default page size: enough that a full disk cannot hide it.
const PROBE_BYTES: usize = 8192;

/// Bytes an unprivileged writer may still use on the data directory's file system.
#[cfg(unix)]
pub fn free_bytes(dir: &Path) -> Result<u64> {
    let st = rustix::fs::statvfs(dir)
        .map_err(|e| Error::internal(format!("statvfs {}: {e}", dir.display())))?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

#[cfg(not(unix))]
pub fn free_bytes(_dir: &Path) -> Result<u64> {
    Ok(u64::MAX)
}

/// Writes and fsyncs a fresh file beside the database, then removes it: `StorageFull` when
/// the disk cannot take it.
pub fn probe_write(dir: &Path) -> Result<()> {
    let path = dir.join(PROBE_FILE);
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&path)?;
        f.write_all(&[0u8; PROBE_BYTES])?;
        f.sync_all()
    })();
    let _ = std::fs::remove_file(&path);
    result.map_err(Error::from)
}
