//! The sync lock (one per database file, or per account and schema on PostgreSQL): the handle a run
//! holds, and how its holder is recorded and named.
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

/// How a lock holder is named in [`StoreError::Locked`]: `run 42 (rtc-quality-sync sync, pid 7 on
/// box)`, or `a run that is starting (...)` before it has recorded its run; a lock for one account
/// adds `account` and its hash (of the access key id, never the key).
pub(crate) fn describe_holder(
    holder: &str,
    pid: i64,
    hostname: &str,
    run: Option<i64>,
    account: Option<&str>,
) -> String {
    let run = match run {
        Some(id) => format!("run {id}"),
        None => "a run that is starting".to_string(),
    };
    let on = if hostname.is_empty() {
        String::new()
    } else {
        format!(" on {hostname}")
    };
    let account = account
        .map(|a| format!(", account {a}"))
        .unwrap_or_default();
    format!("{run} ({holder}, pid {pid}{on}{account})")
}

/// The PostgreSQL `application_name` of the session that holds the lock: what a refused run can
/// read from the server before the holder has written its record (PostgreSQL keeps 63 bytes).
pub(crate) fn session_name(holder: &str) -> String {
    let mut name = format!("{holder} pid {} on {}", std::process::id(), hostname());
    while name.len() > 63 {
        name.pop();
    }
    name
}
