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

    /// The server answered that the database does not exist (SQLSTATE 3D000): connecting again
    /// cannot help, creating it does.
    #[error(
        "the database {name:?} does not exist on the PostgreSQL server at {url}; create it with `createdb {quoted}` (for this url's server and user: `createdb{options} {quoted}`), or correct the database name in the url"
    )]
    NoDatabase {
        url: String,
        name: String,
        /// `name` as a shell word.
        quoted: String,
        /// `createdb`'s options for the url's server and user (` -h … -p … -U …`).
        options: String,
    },

    /// A parameter whose name says it holds a secret and that the driver does not support: handed
    /// on, the driver would log it with its value ("ignoring unrecognized connect parameter").
    #[error(
        "the database url {url} has the parameter {parameter:?}, which is not supported (its value is not shown); {advice}"
    )]
    UnsupportedParameter {
        url: String,
        parameter: String,
        advice: &'static str,
    },

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

    /// Only with the `testing` feature: see `Store::set_fail_after_points`.
    #[cfg(feature = "testing")]
    #[error(
        "injected failure after writing {points} points (a test hook, never set in production)"
    )]
    Injected { points: usize },
}

/// Wraps a sqlx error with what the store was doing, for `map_err`.
pub(crate) fn db(action: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Database { action, source }
}
