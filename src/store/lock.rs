//! The one-sync-per-database lock: the handle a run holds, and how its holder is recorded and named.
//!
//! Each backend takes the lock its own way (an OS file lock beside the SQLite file, a PostgreSQL
//! session advisory lock); both record the holder in `sync_lock` for people reading the database.

use super::{FileLock, PgLock, Result};

/// Holds the one-sync-per-database lock until dropped or released.
///
/// Dropping it releases the lock too (the OS drops the file lock, PostgreSQL ends the session that
/// holds the advisory lock), so a crashed run never leaves the database locked.
pub enum StoreLock {
    Sqlite(FileLock),
    Postgres(PgLock),
}

impl StoreLock {
    /// Releases the lock now and clears the holder's record.
    pub async fn release(self) -> Result<()> {
        match self {
            StoreLock::Sqlite(l) => l.release().await,
            StoreLock::Postgres(l) => l.release().await,
        }
    }
}

/// The machine's name for the lock record, when it is cheap to know.
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// How a lock holder is named in [`StoreError::Locked`].
pub(crate) fn describe_holder(holder: &str, pid: i64, hostname: &str) -> String {
    if hostname.is_empty() {
        format!("{holder} (pid {pid})")
    } else {
        format!("{holder} (pid {pid} on {hostname})")
    }
}
