//! What can go wrong in the store, said so that the user knows what to check.

use std::path::PathBuf;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What can go wrong in the store. No message ever contains a database password: URLs are redacted.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "unsupported database url `{url}`: use sqlite://PATH (a file, created if missing) or postgres://USER@HOST:PORT/DB (postgresql:// works too)"
    )]
    UnsupportedUrl { url: String },

    #[error(
        "cannot connect to the database at {url}: {message}; check that it is running and that the url is right"
    )]
    Connect { url: String, message: String },

    #[error(
        "cannot apply the schema migrations to {url}: {message}; check that the database user may create tables and that this binary is not older than the database's schema"
    )]
    Migrate { url: String, message: String },

    #[error(
        "another run holds the lock on this database: {holder} since {since}; wait for it to finish or stop it"
    )]
    Locked { holder: String, since: String },

    #[error(
        "this run lost the lock on this database (its PostgreSQL session ended) and another run holds the lock now: {holder} since {since}; this run stopped and committed nothing more"
    )]
    LockLost { holder: String, since: String },

    #[error("cannot use the lock file {path}: {source}; check that its directory is writable")]
    LockFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "database error while {action}: {source}; check that the database is reachable and retry"
    )]
    Database {
        action: &'static str,
        #[source]
        source: sqlx::Error,
    },

    #[error(
        "unexpected {what} in the database: {value:?}; the tables may have been edited by hand"
    )]
    Corrupt { what: &'static str, value: String },

    /// SQLite says the file is damaged (`SQLITE_CORRUPT`, `SQLITE_NOTADB`), or `quick_check` found
    /// a damaged page: never "unreachable", and never worth a retry.
    #[error(
        "the database file is damaged ({message}); restore it from a backup, or recover what it holds \
         with `sqlite3 FILE .recover | sqlite3 NEW.db` and point the configuration at NEW.db"
    )]
    Damaged { message: String },

    /// The SQLite file the run opened is no longer at its path (removed, or replaced by another
    /// file): what the run committed went into a file that nothing names any more.
    #[error(
        "the database file {path} was removed or replaced while this run wrote it: nothing this run \
         committed was kept; keep the file in place while a run writes it, and run `sync` again"
    )]
    FileReplaced { path: PathBuf },

    /// Only with the `testing` feature: see `Store::set_fail_after_points`.
    #[cfg(feature = "testing")]
    #[error(
        "injected failure after writing {points} points (a test hook, never set in production)"
    )]
    Injected { points: usize },
}

impl StoreError {
    /// The database itself is lost or damaged: whatever the run committed cannot be counted on.
    pub fn is_lost_database(&self) -> bool {
        matches!(
            self,
            StoreError::Damaged { .. } | StoreError::FileReplaced { .. }
        )
    }
}

/// Wraps a sqlx error with what the store was doing, for `map_err`; SQLite's word that the file is
/// damaged becomes [`StoreError::Damaged`].
pub(crate) fn db(action: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| match damaged(&source) {
        Some(message) => StoreError::Damaged { message },
        None => StoreError::Database { action, source },
    }
}

/// SQLite's primary result codes for a damaged file: `SQLITE_CORRUPT` (11) and `SQLITE_NOTADB` (26);
/// the extended codes keep the primary one in their low byte.
pub(crate) fn damaged(e: &sqlx::Error) -> Option<String> {
    let sqlx::Error::Database(d) = e else {
        return None;
    };
    d.try_downcast_ref::<sqlx::sqlite::SqliteError>()?;
    let code: i64 = d.code()?.parse().ok()?;
    matches!(code & 0xff, 11 | 26).then(|| format!("{} (SQLite code {code})", d.message()))
}
