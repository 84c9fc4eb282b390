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

    /// A PostgreSQL server that cannot be reached or refuses the connection.
    #[error(
        "cannot connect to the database at {url}: {message}; check that the server is running and that the url is right"
    )]
    Connect { url: String, message: String },

    /// A SQLite file that cannot be opened: there is no server to check, only the path.
    #[error(
        "cannot open the SQLite database file {}: {message}; check the path, that its directory exists and that this user may read and write the file and the directory", path.display()
    )]
    OpenFile { path: PathBuf, message: String },

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

    #[error("cannot apply the schema migrations to {url}: {message}; {advice}")]
    Migrate {
        url: String,
        message: String,
        /// What to check, which differs for a file and a server ([`MIGRATE_SQLITE`], [`MIGRATE_POSTGRES`]).
        advice: &'static str,
    },

    /// `[storage] schema` names a schema without the tool's tables while the server's own search
    /// path finds them (`public`, most often): a database an earlier run filled. A fresh start
    /// would fetch the whole horizon again and leave the older history behind, so it is refused,
    /// with the statements that move the tables.
    #[error(
        "the schema {schema} of {url} holds none of rtc-quality-sync's tables, but the schema {elsewhere} \
         does: a fresh start in {schema} would fetch the whole horizon again and leave the history \
         older than it behind, so nothing was changed; to keep them, move them as their owner \
         (e.g. paste these lines into psql), then run again:\n{statements}\n\
         or, to keep them where they are, leave [storage] schema out (the default is public)"
    )]
    TablesElsewhere {
        url: String,
        /// The configured schema, as SQL reads it.
        schema: String,
        /// Where the tables are, as SQL reads it.
        elsewhere: String,
        /// One statement a line, indented, from `BEGIN;` to `COMMIT;`.
        statements: String,
    },

    #[error(
        "another run holds the lock on this database: {holder} since {since}; wait for it to finish or stop it"
    )]
    Locked { holder: String, since: String },

    #[error(
        "this run lost the lock on this database (its PostgreSQL session ended) and another run holds the lock now: {holder} since {since}; this run stopped and committed nothing more"
    )]
    LockLost { holder: String, since: String },

    // The causes below are said in the message, where a log line that prints `{e}` shows them
    // too; they are no `source` as well, or an error chain would say them twice.
    #[error(
        "cannot use the lock file {} beside the SQLite database: {error}; check the path, that its directory exists and that this user may write in it", path.display()
    )]
    LockFile {
        path: PathBuf,
        error: std::io::Error,
    },

    #[error("database error while {action}: {error}; {}", database_advice(.error))]
    Database {
        action: &'static str,
        error: sqlx::Error,
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

/// What to check when a migration fails on a SQLite file.
pub(crate) const MIGRATE_SQLITE: &str = "check that the file is this tool's database and writable by this user, and that this binary is not older than the database's schema";
/// What to check when a migration fails on a PostgreSQL server.
pub(crate) const MIGRATE_POSTGRES: &str = "check that the database user may create tables and that this binary is not older than the database's schema";

/// What to check after a failed statement: a SQLite error is about the file (its permissions, the
/// disk), never a server to reach; anything else came from the PostgreSQL server or the way to it.
fn database_advice(e: &sqlx::Error) -> &'static str {
    let sqlite = match e {
        sqlx::Error::Database(d) => d.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some(),
        // Only SQLite runs its statements on a worker thread.
        sqlx::Error::WorkerCrashed => true,
        _ => false,
    };
    if sqlite {
        "check the database file, the permissions of the file and its directory, and the free disk space, then retry"
    } else {
        "check that the database server is reachable and retry"
    }
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
    move |error| match damaged(&error) {
        Some(message) => StoreError::Damaged { message },
        None => StoreError::Database { action, error },
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

#[cfg(test)]
mod tests {
    use sqlx::Connection;

    use super::*;

    /// Issue 18 item 17c: "check that it is running" was printed for a SQLite path. A SQLite error
    /// names the file and what to check on it; server advice is for PostgreSQL only.
    #[tokio::test]
    async fn item_18_17c_sqlite_errors_give_file_advice_and_never_server_advice() {
        let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        let source = sqlx::query("SELECT * FROM no_such_table")
            .execute(&mut conn)
            .await
            .unwrap_err();
        let e = db("reading the ledger")(source).to_string();
        assert!(
            e.contains("no_such_table")
                && e.contains("the permissions of the file and its directory"),
            "{e}"
        );
        let e = StoreError::OpenFile {
            path: "/srv/rtc/q.db".into(),
            message: "unable to open database file".into(),
        }
        .to_string();
        assert!(
            e.contains("/srv/rtc/q.db") && e.contains("directory"),
            "{e}"
        );
        let migrate = StoreError::Migrate {
            url: "sqlite:///srv/rtc/q.db".into(),
            message: "file is not a database".into(),
            advice: MIGRATE_SQLITE,
        }
        .to_string();
        for sqlite in [e, migrate] {
            for server in ["running", "reachable", "database user", "server"] {
                assert!(!sqlite.contains(server), "{server}: {sqlite}");
            }
        }
        let e = db("reading the ledger")(sqlx::Error::PoolTimedOut).to_string();
        assert!(e.contains("server is reachable"), "{e}");
    }
}
