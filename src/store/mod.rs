//! The only place with SQL. One SQLite file: a read pool and a single writer that runs every
//! change in `BEGIN IMMEDIATE`, both used from the blocking pool.

pub mod audit;
pub mod certificates;
pub mod commands;
pub mod devices;
pub mod disk;
pub mod erasure;
pub mod hot;
pub mod links;
pub mod logins;
pub mod migrate;
pub mod names;
pub mod policies;
pub mod requests;
pub mod roles;
pub mod sessions;
pub mod settings;
mod sql_types;
pub mod tenants;
pub mod tokens;
pub mod users;
pub mod webhooks;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::error::{Error, Result};

/// 'HGLS': written by schema.sql, checked before anything touches an existing file.
pub const APPLICATION_ID: i64 = 0x4847_4C53;

/// Read access, on a pool connection or inside a write transaction.
pub struct Reader<'a> {
    conn: &'a Connection,
}

/// A write transaction on the single writer. Audit entries can only be appended through one,
/// so an entry always commits or rolls back with the change it records.
pub struct WriteTx<'a> {
    tx: Transaction<'a>,
    /// Changes to what the poll path remembers, applied after the commit.
    notes: std::cell::RefCell<Vec<hot::Note>>,
}

impl WriteTx<'_> {
    pub fn reader(&self) -> Reader<'_> {
        Reader { conn: &self.tx }
    }
    fn conn(&self) -> &Connection {
        &self.tx
    }
    fn note(&self, n: hot::Note) {
        self.notes.borrow_mut().push(n);
    }
}

struct Inner {
    writer: Mutex<Connection>,
    /// None for the in-memory database, where the one connection also serves reads.
    readers: Option<r2d2::Pool<SqliteConnectionManager>>,
    path: Option<PathBuf>,
    hot: hot::Hot,
    /// Reads since start, for /metrics (a quiet poll adds none).
    reads: std::sync::atomic::AtomicU64,
}

#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

/// What `Db::open` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    Created,
    Existing { migrated_from: Option<i64> },
}

impl Db {
    /// Opens (or creates) the database file. A file that is not an Hourglass database, or one
    /// newer than this binary, is refused before anything is written to it.
    pub fn open(path: &Path, busy_timeout: Duration, pool_size: u32) -> Result<(Db, Opened)> {
        let existing = inspect(path)?;
        private_file(path)?;
        let writer = Connection::open(path).map_err(|e| open_error(path, &e))?;
        configure(&writer, busy_timeout, true).map_err(|e| open_error(path, &e))?;
        let opened = match existing {
            None => {
                migrate::create(&writer)?;
                Opened::Created
            }
            Some(v) => Opened::Existing {
                migrated_from: migrate::upgrade(&writer, v)?,
            },
        };
        let timeout = busy_timeout;
        let manager = SqliteConnectionManager::file(path)
            .with_flags(
                OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | OpenFlags::SQLITE_OPEN_URI,
            )
            .with_init(move |c| {
                configure(c, timeout, false)?;
                c.pragma_update(None, "query_only", true)
            });
        let readers = r2d2::Pool::builder()
            .max_size(pool_size.max(1))
            .min_idle(Some(1))
            .build(manager)
            .map_err(|e| {
                Error::startup(format!("cannot open read pool on {}: {e}", path.display()))
            })?;
        let inner = Inner {
            writer: Mutex::new(writer),
            readers: Some(readers),
            path: Some(path.to_path_buf()),
            hot: Default::default(),
            reads: Default::default(),
        };
        Ok((
            Db {
                inner: Arc::new(inner),
            },
            opened,
        ))
    }

    /// Opens an existing database for reading only (audit verification, exports): nothing
    /// is migrated or written.
    pub fn open_read_only(path: &Path) -> Result<Db> {
        match inspect(path)? {
            None => {
                return Err(Error::startup(format!(
                    "no Hourglass database at {}",
                    path.display()
                )));
            }
            Some(v) if v < migrate::CURRENT_VERSION => {
                return Err(Error::startup(format!(
                    "{} has schema version {v}; start `hourglass serve` once to upgrade it to {}",
                    path.display(),
                    migrate::CURRENT_VERSION
                )));
            }
            Some(_) => {}
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| open_error(path, &e))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| open_error(path, &e))?;
        let inner = Inner {
            writer: Mutex::new(conn),
            readers: None,
            path: Some(path.to_path_buf()),
            hot: Default::default(),
            reads: Default::default(),
        };
        Ok(Db {
            inner: Arc::new(inner),
        })
    }

    /// A private in-memory database with the canonical schema, for tests.
    pub fn open_memory() -> Result<Db> {
        let conn = Connection::open_in_memory()?;
        conn.pragma_update(None, "foreign_keys", true)?;
        migrate::create(&conn)?;
        let inner = Inner {
            writer: Mutex::new(conn),
            readers: None,
            path: None,
            hot: Default::default(),
            reads: Default::default(),
        };
        Ok(Db {
            inner: Arc::new(inner),
        })
    }

    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// What the agent poll path remembers (see `hot`).
    pub fn hot(&self) -> &hot::Hot {
        &self.inner.hot
    }

    /// Reads run since the database was opened.
    pub fn reads(&self) -> u64 {
        self.inner.reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs `f` on a read connection, blocking the calling thread.
    pub fn read_blocking<T>(&self, f: impl FnOnce(&Reader<'_>) -> Result<T>) -> Result<T> {
        self.inner
            .reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match &self.inner.readers {
            Some(pool) => {
                let conn = pool
                    .get()
                    .map_err(|e| Error::internal(format!("database pool: {e}")))?;
                f(&Reader { conn: &conn })
            }
            None => {
                let conn = self.lock_writer()?;
                f(&Reader { conn: &conn })
            }
        }
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction on the writer; commits only if `f` succeeds.
    pub fn write_blocking<T>(&self, f: impl FnOnce(&WriteTx<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.lock_writer()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let wtx = WriteTx {
            tx,
            notes: Default::default(),
        };
        let out = f(&wtx)?;
        let notes = wtx.notes.take();
        wtx.tx.commit()?;
        // Still holding the writer: no later change can be overtaken by these notes.
        self.inner.hot.apply(&notes);
        Ok(out)
    }

    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Reader<'_>) -> Result<T> + Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.read_blocking(f))
            .await
            .map_err(|e| Error::internal(format!("blocking task: {e}")))?
    }

    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTx<'_>) -> Result<T> + Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.write_blocking(f))
            .await
            .map_err(|e| Error::internal(format!("blocking task: {e}")))?
    }

    /// Proves the writer can take the write lock and change a row, then rolls back, so a
    /// health check never changes anything.
    pub fn probe_write_blocking(&self, now: crate::clock::Timestamp) -> Result<()> {
        let mut conn = self.lock_writer()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let wtx = WriteTx {
            tx,
            notes: Default::default(),
        };
        settings::touch_health_probe(&wtx, now)?;
        wtx.tx.rollback()?;
        Ok(())
    }

    /// Copies the WAL into the database and empties it, so no older page image (say, a row
    /// before erasure) stays in the WAL file. False when a reader kept part of it.
    pub fn truncate_wal(&self) -> Result<bool> {
        let conn = self.lock_writer()?;
        let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        Ok(busy == 0)
    }

    /// (connections, idle) of the read pool, for /metrics.
    pub fn pool_state(&self) -> (u32, u32) {
        self.inner
            .readers
            .as_ref()
            .map(|p| {
                let s = p.state();
                (s.connections, s.idle_connections)
            })
            .unwrap_or((1, 1))
    }

    /// The durability settings actually in force on the writer (DUR-01), read back.
    pub fn pragmas(&self) -> Result<(String, i64, i64)> {
        let conn = self.lock_writer()?;
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
        let sync: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0))?;
        let fk: i64 = conn.pragma_query_value(None, "foreign_keys", |r| r.get(0))?;
        Ok((mode, sync, fk))
    }

    /// `PRAGMA integrity_check`: "ok", or the first problems SQLite found.
    pub fn integrity_check(&self) -> Result<String> {
        self.read_blocking(|r| {
            let mut st = r.conn.prepare("PRAGMA integrity_check")?;
            let rows = st.query_map([], |row| row.get::<_, String>(0))?;
            let lines = rows.take(5).collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(lines.join("; "))
        })
    }

    /// Writes `path` as a consistent copy of the live database (SQLite `VACUUM INTO`).
    /// On a connection of its own, not the writer's: VACUUM INTO only reads the database, so
    /// in WAL mode writers go on while the copy is made (BR-01). (A read-only pooled
    /// connection cannot, as it could not write the copy.)
    pub fn snapshot_to(&self, path: &Path) -> Result<()> {
        let target = path
            .to_str()
            .ok_or_else(|| Error::validation("out", "path is not valid UTF-8"))?;
        match self.path() {
            Some(db) => {
                let c = Connection::open_with_flags(
                    db,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.busy_timeout(Duration::from_secs(5))?;
                c.execute("VACUUM INTO ?1", [target])?;
            }
            None => {
                self.lock_writer()?.execute("VACUUM INTO ?1", [target])?;
            }
        }
        Ok(())
    }

    fn lock_writer(&self) -> Result<std::sync::MutexGuard<'_, Connection>> {
        self.inner
            .writer
            .lock()
            .map_err(|_| Error::internal("database writer poisoned"))
    }
}

/// The database file exists and is readable by its owner only (0600, whatever the umask);
/// SQLite gives its WAL and shared-memory files the same mode as the database.
fn private_file(path: &Path) -> Result<()> {
    use crate::fsx::OwnerOnly;
    let cannot =
        |e: std::io::Error| Error::startup(format!("cannot prepare {}: {e}", path.display()));
    if !path.exists() {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .owner_only()
            .open(path)
            .map_err(cannot)?;
    }
    let mode = crate::fsx::mode(&std::fs::metadata(path).map_err(cannot)?);
    if mode & 0o077 != 0 {
        crate::fsx::set_mode(path, 0o600).map_err(cannot)?;
    }
    Ok(())
}

/// Reads the header of an existing file without changing it: its schema version, or `None`
/// when there is no database yet. Foreign and too-new files are refused here.
pub fn inspect(path: &Path) -> Result<Option<i64>> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::startup(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
        Ok(m) if !m.is_file() => {
            return Err(Error::startup(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        Ok(m) if m.len() == 0 => return Ok(None),
        Ok(_) => {}
    }
    let not_ours = |why: String| {
        Error::startup(format!(
            "{} is not an Hourglass database ({why}); it was left untouched",
            path.display()
        ))
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| not_ours(e.to_string()))?;
    let header = (|| -> rusqlite::Result<(i64, i64, i64)> {
        let app: i64 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let objects: i64 =
            conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
        Ok((app, version, objects))
    })();
    let (app, version, objects) = header.map_err(|e| not_ours(e.to_string()))?;
    if app != APPLICATION_ID {
        if app == 0 && version == 0 && objects == 0 {
            return Ok(None);
        }
        return Err(not_ours(format!(
            "application id {app:#x}, {objects} schema objects"
        )));
    }
    if version > migrate::CURRENT_VERSION {
        return Err(Error::startup(format!(
            "{} has schema version {version}, newer than this binary supports ({}): run a newer hourglass; the file was left untouched",
            path.display(),
            migrate::CURRENT_VERSION
        )));
    }
    Ok(Some(version))
}

fn configure(c: &Connection, busy_timeout: Duration, writer: bool) -> rusqlite::Result<()> {
    // busy_timeout first: switching a fresh file to WAL can otherwise fail with "locked".
    c.busy_timeout(busy_timeout)?;
    if writer {
        c.pragma_update(None, "journal_mode", "WAL")?;
    }
    c.pragma_update(None, "synchronous", "FULL")?;
    c.pragma_update(None, "foreign_keys", true)?;
    // What is deleted or overwritten is zeroed in the file, so an erased person's data does
    // not linger in free pages (DESIGN §1).
    c.pragma_update(None, "secure_delete", true)?;
    Ok(())
}

fn open_error(path: &Path, e: &rusqlite::Error) -> Error {
    Error::startup(format!("cannot open database {}: {e}", path.display()))
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        // SQLite reports a disk that cannot grow the WAL or database as SQLITE_FULL.
        if let rusqlite::Error::SqliteFailure(f, _) = &e
            && f.code == rusqlite::ErrorCode::DiskFull
        {
            return Error::StorageFull;
        }
        Error::Internal(format!("database: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_nothing_behind() {
        let db = Db::open_memory().unwrap();
        let r: Result<()> = db.write_blocking(|tx| {
            settings::put(tx, "k", "v", crate::clock::Timestamp(1))?;
            Err(Error::Conflict("no".into()))
        });
        assert!(r.is_err());
        assert_eq!(db.read_blocking(|r| settings::get(r, "k")).unwrap(), None);
    }
}
