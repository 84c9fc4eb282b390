//! The PostgreSQL backend: binary `COPY` for new points, a staging table for changed ones, nothing for the rest.
//!
//! A window's stored points are read first (one index range scan) and compared in the process, so that
//! an unchanged point costs no write at all: `INSERT ... ON CONFLICT DO UPDATE WHERE ... IS DISTINCT
//! FROM` alone would still lock and WAL-log every conflicting row. New points then go straight into
//! `points` with binary `COPY` (nothing stored can conflict with them, see [`lock_series`]), and changed
//! ones through `COPY` into a session-local staging table and one `UPDATE ... FROM`.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use sqlx::Connection;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow, Postgres};

use super::commit::{Backend, FailHook, Found, Pending, shown_timezone};
use super::copy;
use super::diff::{NormBatch, Row};
use super::ledger;
use super::lock::{describe_holder, hostname};
use super::{Result, StoreError, db};
use crate::domain::{PgSchema, SeriesKey};
use crate::redact::{is_secret_key, redact_url, scrub};

/// PostgreSQL's binary `COPY` encoder, for the benchmark's ceiling.
#[cfg(feature = "testing")]
pub use super::copy::CopyEncoder;

/// The session advisory lock that lets one sync at a time write to the tables in `public`
/// ("rtcsync1"). Every earlier version took exactly this key, so a run of this version and one of
/// the previous version on the same database still exclude each other.
const SYNC_LOCK_KEY: i64 = 0x7274_6373_796e_6331;
/// The class of the transaction advisory locks on series ("rtcs"); the two-key form never collides
/// with the one-key sync lock.
const SERIES_LOCK_CLASS: i32 = 0x7274_6373;
/// Series locks are taken on `id % SERIES_LOCK_SLOTS`, so a window with thousands of series still
/// takes few locks (PostgreSQL's lock table is small); sharing a slot only serializes two commits.
const SERIES_LOCK_SLOTS: i64 = 64;
/// How long a pooled connection is waited for. A run commits at most `max_in_flight` windows at once
/// on six connections, so a healthy server never makes it wait this long: a longer wait means the
/// server is down, and the run should say so rather than hang.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the lock's session may take to answer the check before each commit, and a new session
/// to connect when the lock is taken again.
const LOCK_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// The condition on `pg_locks l` for the one-key advisory locks granted in this database; a key's
/// halves are `l.classid` and `l.objid` ([`lock_key_halves`]).
macro_rules! advisory_held {
    () => {
        "l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    };
}

pub struct PgStore {
    pool: PgPool,
    /// The schema every statement works in (the connections' `search_path`, unless `public`).
    schema: PgSchema,
    /// For the lock's dedicated connection (boxed: the options are large and `Store` holds this inline).
    options: Box<PgConnectOptions>,
    url: String,
    /// The sync lock's session while this process holds it, shared with the [`PgLock`] handle: each
    /// commit checks first that it is still alive (see [`PgStore::ensure_lock`]).
    lock: Arc<tokio::sync::Mutex<Option<LockSession>>>,
    /// The test hook `Store::set_fail_after_points` sets.
    pub(super) fail: FailHook,
}

/// `sync_lock`'s record: holder, pid, hostname, since, run id, account.
type HolderRow = (
    String,
    i64,
    String,
    DateTime<Utc>,
    Option<i64>,
    Option<String>,
);

/// The advisory locks a run holds on its session: the schema's key exclusively (the one-sync-per-
/// schema lock every earlier version took), or an account's key exclusively and the schema's key
/// shared. So runs of different accounts write one schema at once, while a run that holds the
/// schema's key (an earlier version's, or [`Store::connect_locked_in`](super::Store)'s) excludes
/// them all and is excluded by each of them.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct LockKeys {
    /// Taken exclusively: [`account_lock_key`], or [`sync_lock_key`] for the whole schema.
    own: i64,
    /// [`sync_lock_key`], taken shared beside an account's key; `None` for the whole schema.
    shared: Option<i64>,
    /// The account the lock is for (a hash of its access key id), recorded in `sync_lock`.
    account: Option<String>,
}

impl LockKeys {
    /// The whole schema's lock.
    fn schema(schema: &PgSchema) -> LockKeys {
        LockKeys {
            own: sync_lock_key(schema),
            shared: None,
            account: None,
        }
    }

    /// One account's lock in `schema`.
    fn account(schema: &PgSchema, account: &str) -> LockKeys {
        LockKeys {
            own: account_lock_key(schema, account),
            shared: Some(sync_lock_key(schema)),
            account: Some(account.to_string()),
        }
    }
}

/// The connection that holds the session advisory locks, and the holder it recorded.
struct LockSession {
    conn: PgConnection,
    holder: String,
    keys: LockKeys,
    /// The run recorded with the holder, recorded again when a lost lock is taken again.
    run_id: Option<i64>,
}

/// The sync lock's key for the tables in `schema`: today's key for `public`, another one per
/// schema otherwise, so that runs writing different schemas of one database never wait for each
/// other. Stable across versions and platforms (FNV-1a, not std's randomly seeded hasher): two
/// versions of the tool writing one schema must take the same key.
pub fn sync_lock_key(schema: &PgSchema) -> i64 {
    if schema.is_public() {
        return SYNC_LOCK_KEY;
    }
    fnv1a(&[b"rtc-quality-sync schema ", schema.as_str().as_bytes()])
}

/// The lock key of one account's syncs of the tables in `schema` (`account`: the hash of its access
/// key id, `Credentials::account_id`), stable like [`sync_lock_key`]; its prefix keeps it apart from
/// every schema's key.
pub fn account_lock_key(schema: &PgSchema, account: &str) -> i64 {
    fnv1a(&[
        b"rtc-quality-sync account ",
        schema.as_str().as_bytes(),
        b" ",
        account.as_bytes(),
    ])
}

/// 64-bit FNV-1a of the concatenated parts.
fn fnv1a(parts: &[&[u8]]) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in parts.iter().copied().flatten() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash as i64
}

/// Every table the migrations create (`migrations/postgres`), the order in which
/// [`StoreError::TablesElsewhere`] moves them; a unit test reads the migrations to keep it whole.
const TABLES: [&str; 9] = [
    "series",
    "points",
    "sync_ledger",
    "sync_runs",
    "sync_lock",
    "sync_streams",
    "sync_pacing",
    "rtc_rooms",
    "sync_calls",
];
/// Every view the migrations create; moved after the tables (a view follows its tables by oid,
/// so the order only keeps the statements easy to read).
const VIEWS: [&str; 3] = ["quality_metrics", "quality_distribution", "sync_coverage"];
/// sqlx's record of the applied migrations: moved last, so that statements run one by one and
/// stopped half-way leave a schema that is still refused (with what is left to move) rather than
/// one that migrations would call complete.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";
/// The table that marks a schema as this tool's: no other program names a table so, while
/// `series`, `points` or `_sqlx_migrations` may well be another team's.
const MARKER_TABLE: &str = "sync_ledger";

impl PgStore {
    /// [`PgStore::connect_in`] `public`: the tables where every earlier version kept them.
    pub async fn connect(url: &str) -> Result<PgStore> {
        PgStore::connect_in(url, &PgSchema::public()).await
    }

    /// Connects to the tables in `schema`. For a schema other than `public`, every connection's
    /// `search_path` is that schema alone, so every unqualified statement (and sqlx's migrations,
    /// whose table is unqualified) works there and nothing reaches `public`; `public` leaves the
    /// `search_path` as the server sets it (`"$user", public` unless the role says otherwise), as
    /// every earlier version did, so existing databases keep working. A schema that holds none of
    /// the tool's tables while the default search path finds them is refused
    /// ([`StoreError::TablesElsewhere`]): a fresh start there would fetch everything again.
    pub async fn connect_in(url: &str, schema: &PgSchema) -> Result<PgStore> {
        let redacted = redact_url(url);
        let connect_err = |e: sqlx::Error| StoreError::Connect {
            url: redacted.clone(),
            message: scrub(&e.to_string(), url),
        };
        let (driver_url, password) = without_secret_parameters(url)?;
        let mut options = PgConnectOptions::from_str(&driver_url).map_err(connect_err)?;
        if let Some(password) = password {
            options = options.password(&password);
        }
        let plain = options
            .application_name("rtc-quality-sync")
            // NOTICEs (`... already exists, skipping`) would reach the logs at info level.
            .options([("client_min_messages", "warning")]);
        let options = if schema.is_public() {
            plain.clone()
        } else {
            // Only a plain identifier gets here (`PgSchema::parse`): no space or backslash for the
            // startup packet's `options` to escape.
            plain.clone().options([("search_path", schema.quoted())])
        };
        // One direct connection first: the pool retries a refused connection until its acquire
        // timeout, and `check` should say at once that the database is not there. It keeps the
        // server's own search_path, to find where an earlier run left the tables.
        let mut probe = PgConnection::connect_with(&plain)
            .await
            .map_err(|e| match no_database(&e, &options) {
                Some(name) => StoreError::NoDatabase {
                    url: redacted.clone(),
                    quoted: shell_word(&name),
                    options: createdb_options(&options),
                    name,
                },
                None => connect_err(e),
            })?;
        let placed = if schema.is_public() {
            Ok(())
        } else {
            tables_in_place(&mut probe, schema, &redacted).await
        };
        let _ = probe.close().await;
        placed?;
        // A run commits a few windows at a time (the fetcher's in-flight calls) while `status`-like
        // reads may come in beside them; six connections cover that without crowding the server.
        let pool = PgPoolOptions::new()
            .max_connections(6)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options.clone());
        Ok(PgStore {
            pool,
            schema: schema.clone(),
            options: Box::new(options),
            url: redacted,
            lock: Arc::default(),
            fail: FailHook::default(),
        })
    }

    pub async fn migrate(&self) -> Result<()> {
        self.create_schema().await?;
        sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Migrate {
                url: self.url.clone(),
                message: e.to_string(),
                advice: super::error::MIGRATE_POSTGRES,
            })
    }

    /// Creates the configured schema when it does not exist yet (`public` always does). Asked
    /// first: `CREATE SCHEMA IF NOT EXISTS` needs the right to create schemas in the database even
    /// when the schema is there, which a user given only a schema of its own does not have.
    async fn create_schema(&self) -> Result<()> {
        if self.schema.is_public() {
            return Ok(());
        }
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(self.schema.as_str())
                .fetch_one(&self.pool)
                .await
                .map_err(db("looking for the schema"))?;
        if exists {
            return Ok(());
        }
        let created = sqlx::query(&format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            self.schema.quoted()
        ))
        .execute(&self.pool)
        .await;
        match created {
            Ok(_) => Ok(()),
            // Two commands creating it at the same instant: IF NOT EXISTS does not keep the
            // slower one from meeting the faster one's catalog row. The schema is there.
            Err(e) if matches!(sqlx_code(&e).as_deref(), Some("23505" | "42P06")) => Ok(()),
            Err(e) => Err(StoreError::Migrate {
                url: self.url.clone(),
                message: format!(
                    "cannot create the schema {}: {}",
                    self.schema.quoted(),
                    scrub(&e.to_string(), &self.url)
                ),
                advice: "create it as a user who may (`CREATE SCHEMA name AUTHORIZATION user`), or \
                         grant this user CREATE on the database",
            }),
        }
    }

    /// The schema the store works in.
    pub fn schema(&self) -> &PgSchema {
        &self.schema
    }

    /// The pool, for queries the store does not offer (tests, the benchmark's ceiling).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The database URL with its password replaced by `***`.
    pub fn redacted_url(&self) -> &str {
        &self.url
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Takes the sync lock, then migrates, then records the holder: of two runs started at once on a
    /// fresh database, the loser stops at the lock before it touches the schema.
    pub async fn connect_locked(url: &str, holder: &str) -> Result<(PgStore, PgLock)> {
        PgStore::connect_locked_in(url, &PgSchema::public(), holder).await
    }

    /// [`PgStore::connect_locked`] for the tables in `schema` (see [`PgStore::connect_in`]): the
    /// lock is the whole schema's ([`sync_lock_key`]), taken before the schema is created.
    pub async fn connect_locked_in(
        url: &str,
        schema: &PgSchema,
        holder: &str,
    ) -> Result<(PgStore, PgLock)> {
        PgStore::connect_locking(url, schema, holder, LockKeys::schema(schema)).await
    }

    /// [`PgStore::connect_locked_in`] with the lock of one account (a hash of its access key id):
    /// its own key ([`account_lock_key`]) and the schema's key shared, both taken before migrating.
    /// Runs of other accounts take theirs at the same time; the migrations wait for each other
    /// (sqlx's migrator holds an advisory lock of its own while it migrates).
    pub async fn connect_locked_for(
        url: &str,
        schema: &PgSchema,
        holder: &str,
        account: &str,
    ) -> Result<(PgStore, PgLock)> {
        PgStore::connect_locking(url, schema, holder, LockKeys::account(schema, account)).await
    }

    async fn connect_locking(
        url: &str,
        schema: &PgSchema,
        holder: &str,
        keys: LockKeys,
    ) -> Result<(PgStore, PgLock)> {
        let store = PgStore::connect_in(url, schema).await?;
        let conn = store.take_advisory_lock(&keys, holder).await?;
        store.migrate().await?;
        let lock = store.hold(conn, holder, keys).await?;
        Ok((store, lock))
    }

    /// Takes the whole schema's lock on a store already connected.
    pub async fn try_lock(&self, holder: &str) -> Result<PgLock> {
        self.try_lock_keys(holder, LockKeys::schema(&self.schema))
            .await
    }

    /// Takes one account's lock on a store already connected (see [`PgStore::connect_locked_for`]).
    pub async fn try_lock_for(&self, holder: &str, account: &str) -> Result<PgLock> {
        self.try_lock_keys(holder, LockKeys::account(&self.schema, account))
            .await
    }

    async fn try_lock_keys(&self, holder: &str, keys: LockKeys) -> Result<PgLock> {
        let conn = self.take_advisory_lock(&keys, holder).await?;
        self.hold(conn, holder, keys).await
    }

    /// Adds the run's id to the holder's record, so that a refused run names it.
    pub async fn record_lock_run(&self, run_id: i64) -> Result<()> {
        let mut slot = self.lock.lock().await;
        if let Some(session) = slot.as_mut() {
            session.run_id = Some(run_id);
            sqlx::query("UPDATE sync_lock SET run_id = $1 WHERE lock_key = $2")
                .bind(run_id)
                .bind(session.keys.own)
                .execute(&mut session.conn)
                .await
                .map_err(db("recording the lock holder's run"))?;
        }
        Ok(())
    }

    /// Records the holder on the lock's session and keeps the session where commits can check it.
    async fn hold(&self, conn: PgConnection, holder: &str, keys: LockKeys) -> Result<PgLock> {
        let conn = record_holder(conn, holder, &keys, None).await?;
        *self.lock.lock().await = Some(LockSession {
            conn,
            holder: holder.to_string(),
            keys,
            run_id: None,
        });
        Ok(PgLock {
            slot: self.lock.clone(),
        })
    }

    /// Which of the runs still `running` (`(id, account)`) are dead: those of an account in
    /// `mine` (this process holds its lock), of an account whose lock nobody holds, and, for a run
    /// of an earlier version (no account), when nobody holds the schema's key exclusively (an
    /// earlier version's lock). A store that holds the whole schema's lock has no live run beside
    /// it. A run whose lock's session ended a moment ago (a server restart) and is about to take it
    /// again is counted dead too; if it goes on, its end overwrites the mark.
    pub(super) async fn dead_runs(
        &self,
        running: &[(i64, Option<String>)],
        mine: &[String],
    ) -> Result<Vec<i64>> {
        let whole_schema = LockKeys::schema(&self.schema);
        if matches!(self.lock.lock().await.as_ref(), Some(s) if s.keys == whole_schema) {
            return Ok(running.iter().map(|(id, _)| *id).collect());
        }
        // Every advisory lock held in this database: (key, exclusive).
        let held: Vec<(i64, i64, bool)> = sqlx::query_as(concat!(
            "SELECT l.classid::int8, l.objid::int8, l.mode = 'ExclusiveLock' FROM pg_locks l WHERE ",
            advisory_held!()
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading which sync locks are held"))?;
        let held = |key: i64, exclusive_only: bool| {
            held.iter()
                .any(|&(h, l, x)| (h, l) == lock_key_halves(key) && (x || !exclusive_only))
        };
        Ok(running
            .iter()
            .filter(|(_, account)| match account {
                Some(a) => mine.contains(a) || !held(account_lock_key(&self.schema, a), false),
                None => !held(whole_schema.own, true),
            })
            .map(|(id, _)| *id)
            .collect())
    }

    /// Before each commit: whether this process still holds the sync lock. The advisory lock lives
    /// as long as its session, and a PostgreSQL restart (or `pg_terminate_backend`) ends the
    /// session without a word to the client, so the session is asked (one round trip). A dead one
    /// is replaced: the lock is taken again on a new session, or, when another run took it in the
    /// meantime, [`StoreError::LockLost`] names that run and nothing more is committed.
    pub(super) async fn ensure_lock(&self) -> Result<()> {
        let mut slot = self.lock.lock().await;
        let Some(session) = slot.as_mut() else {
            // This store holds no lock (a read-only command, or a test's own store).
            return Ok(());
        };
        let alive = tokio::time::timeout(
            LOCK_CHECK_TIMEOUT,
            sqlx::query("SELECT 1").execute(&mut session.conn),
        )
        .await;
        if matches!(alive, Ok(Ok(_))) {
            return Ok(());
        }
        tracing::warn!(
            "the session that held the sync lock ended (a PostgreSQL restart, or the session was \
             terminated); taking the lock again before the next commit"
        );
        let (holder, keys, run_id) = (session.holder.clone(), session.keys.clone(), session.run_id);
        let conn =
            match tokio::time::timeout(LOCK_CHECK_TIMEOUT, self.take_advisory_lock(&keys, &holder))
                .await
            {
                Ok(Ok(conn)) => conn,
                Ok(Err(StoreError::Locked { holder, since })) => {
                    // Nothing of ours to release any more: the dead session took the lock with it.
                    *slot = None;
                    return Err(StoreError::LockLost { holder, since });
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Err(StoreError::Connect {
                        url: self.url.clone(),
                        message: format!(
                            "no answer within {}s while taking the sync lock again",
                            LOCK_CHECK_TIMEOUT.as_secs()
                        ),
                    });
                }
            };
        let conn = record_holder(conn, &holder, &keys, run_id).await?;
        tracing::warn!("took the sync lock again; the run goes on");
        *slot = Some(LockSession {
            conn,
            holder,
            keys,
            run_id,
        });
        Ok(())
    }

    /// The session advisory locks `keys`, on a connection of its own: they live as long as this
    /// session, and must neither go back to the pool still held nor end with a pooled connection's
    /// recycling. When one is refused, [`StoreError::Locked`] names a holder of the key that refused
    /// it: from its record in `sync_lock` while its session still holds that key (so a record that a
    /// dead run left, this process's own included, names nobody), else as the server knows the
    /// session (a holder that has not recorded itself yet, or a version before records had sessions).
    async fn take_advisory_lock(&self, keys: &LockKeys, holder: &str) -> Result<PgConnection> {
        // The session's name says who holds the lock before the holder's record exists.
        let options = (*self.options)
            .clone()
            .application_name(&super::lock::session_name(holder));
        let mut conn =
            PgConnection::connect_with(&options)
                .await
                .map_err(|e| StoreError::Connect {
                    url: self.url.clone(),
                    message: e.to_string(),
                })?;
        // The schema's key first: a session that holds an account's key holds it too.
        let refused = match keys.shared {
            Some(key) if !try_advisory(&mut conn, "pg_try_advisory_lock_shared", key).await? => key,
            _ if try_advisory(&mut conn, "pg_try_advisory_lock", keys.own).await? => {
                return Ok(conn);
            }
            _ => keys.own,
        };
        let named = match recorded_holder(&mut conn, refused).await {
            Some(named) => Some(named),
            None => session_holder(&mut conn, refused).await,
        };
        // Ending the session lets go of the schema's key if it was taken.
        let _ = conn.close().await;
        let (holder, since) = named.unwrap_or_else(|| {
            // The holder let go of the key a moment ago.
            ("an unknown run".into(), "an unknown time".into())
        });
        Err(StoreError::Locked { holder, since })
    }
}

/// Refuses `schema` when it holds none of the tool's tables while a schema of the server's own
/// search path (`public`, or the user's) holds them: that is a database of an earlier run, and a
/// fresh start beside it would fetch the whole horizon again and leave its older history behind.
/// `conn` keeps the server's search_path. A schema that holds sqlx's migrations table is the
/// tool's (migrations then complete it); a schema without [`MARKER_TABLE`] is not the tool's.
async fn tables_in_place(conn: &mut PgConnection, schema: &PgSchema, url: &str) -> Result<()> {
    let names: Vec<&str> = TABLES
        .iter()
        .chain(&VIEWS)
        .chain(&[MIGRATIONS_TABLE])
        .copied()
        .collect();
    // (schema, relation, relkind) of the tool's relations in `schema` and on the search path, the
    // search path's first schema first.
    let found: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text, c.relkind::text \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relname = ANY($1) AND c.relkind IN ('r', 'p', 'v') \
         AND (n.nspname = $2 OR n.nspname = ANY(current_schemas(false))) \
         ORDER BY n.nspname = $2 DESC, array_position(current_schemas(false), n.nspname), c.relname",
    )
    .bind(&names)
    .bind(schema.as_str())
    .fetch_all(&mut *conn)
    .await
    .map_err(db("looking for the tool's tables"))?;
    let held = |nsp: &str, name: &str| found.iter().any(|(n, r, _)| n == nsp && r == name);
    if held(schema.as_str(), MIGRATIONS_TABLE) {
        return Ok(());
    }
    let Some(elsewhere) = found
        .iter()
        .find(|(n, r, _)| n != schema.as_str() && r == MARKER_TABLE)
        .map(|(n, _, _)| n.clone())
    else {
        return Ok(());
    };
    let schema_exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema.as_str())
            .fetch_one(&mut *conn)
            .await
            .map_err(db("looking for the schema"))?;
    let moves: Vec<(&str, bool)> = names
        .iter()
        .filter(|name| held(&elsewhere, name) && !held(schema.as_str(), name))
        .map(|&name| {
            let view = found
                .iter()
                .any(|(n, r, kind)| *n == elsewhere && r == name && kind == "v");
            (name, view)
        })
        .collect();
    Err(StoreError::TablesElsewhere {
        url: url.to_string(),
        schema: schema.quoted(),
        elsewhere: sql_name(&elsewhere),
        statements: move_statements(schema, schema_exists, &elsewhere, &moves),
    })
}

/// The statements that move `moves` (`(name, is a view)`, in that order) from `from` to `schema`,
/// in one transaction, one per line and indented for a message: paste them into `psql` as they are.
fn move_statements(
    schema: &PgSchema,
    schema_exists: bool,
    from: &str,
    moves: &[(&str, bool)],
) -> String {
    let mut lines = vec!["BEGIN;".to_string()];
    if !schema_exists {
        lines.push(format!("CREATE SCHEMA IF NOT EXISTS {};", schema.quoted()));
    }
    for (name, view) in moves {
        lines.push(format!(
            "ALTER {} {}.{name} SET SCHEMA {};",
            if *view { "VIEW" } else { "TABLE" },
            sql_name(from),
            schema.quoted()
        ));
    }
    lines.push("COMMIT;".into());
    lines
        .iter()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A schema name from the catalog as SQL reads it: `public` as it is, any other double-quoted
/// (its case kept, a `"` doubled).
fn sql_name(name: &str) -> String {
    if name == PgSchema::PUBLIC {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// The SQLSTATE of a server's error.
fn sqlx_code(e: &sqlx::Error) -> Option<String> {
    Some(e.as_database_error()?.code()?.into_owned())
}

/// The database's name when the server refused the connection because it does not exist
/// (SQLSTATE 3D000, `invalid_catalog_name`).
fn no_database(e: &sqlx::Error, options: &PgConnectOptions) -> Option<String> {
    let code = e.as_database_error()?.code()?;
    (code == "3D000").then(|| {
        // Without a name in the URL, PostgreSQL takes the user's name.
        options
            .get_database()
            .unwrap_or(options.get_username())
            .to_string()
    })
}

/// `createdb`'s options for the url's server (when it is not the local default) and user.
fn createdb_options(options: &PgConnectOptions) -> String {
    let mut out = String::new();
    if let Some(socket) = options.get_socket() {
        out.push_str(&format!(
            " -h {}",
            shell_word(&socket.display().to_string())
        ));
    } else if !matches!(options.get_host(), "localhost" | "127.0.0.1" | "::1") {
        out.push_str(&format!(" -h {}", shell_word(options.get_host())));
    }
    if options.get_port() != 5432 {
        out.push_str(&format!(" -p {}", options.get_port()));
    }
    out.push_str(&format!(" -U {}", shell_word(options.get_username())));
    out
}

/// `word` as one shell word: as it is when it is plain, else single-quoted.
fn shell_word(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.:/@".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// `url` without the query parameters that hold secrets (every name [`is_secret_key`] matches), and
/// the password among them. sqlx reads only `password`, spelled so, and logs every parameter it does
/// not know *with its value* ("ignoring unrecognized connect parameter"), so a `PassWord` or an
/// `sslpassword` must never reach it: the password (`password` in any case; the last one wins, as in
/// libpq) is applied through `PgConnectOptions::password`, and any other secret parameter is an
/// error that names it but not its value. A URL that does not parse is left as it is: sqlx refuses
/// it before it reads a parameter.
fn without_secret_parameters(url: &str) -> Result<(String, Option<String>)> {
    let Ok(mut parsed) = url::Url::parse(url.trim()) else {
        return Ok((url.to_string(), None));
    };
    if !parsed.query_pairs().any(|(k, _)| is_secret_key(&k)) {
        return Ok((url.to_string(), None));
    }
    let mut password = None;
    let mut kept = Vec::new();
    for (key, value) in parsed.query_pairs() {
        if !is_secret_key(&key) {
            kept.push((key.into_owned(), value.into_owned()));
        } else if key.eq_ignore_ascii_case("password") {
            password = Some(value.into_owned());
        } else {
            let advice = if key.to_ascii_lowercase().starts_with("ssl") {
                "an encrypted client key cannot be used: decrypt it (e.g. `openssl pkey -in client.key -out client-plain.key`), name the result in `sslkey` and remove this parameter"
            } else {
                "remove it; the database password goes in `password=` or in user:password@"
            };
            return Err(StoreError::UnsupportedParameter {
                url: redact_url(url),
                parameter: key.into_owned(),
                advice,
            });
        }
    }
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    Ok((parsed.to_string(), password))
}

impl Backend for PgStore {
    type DB = Postgres;
    type Writer<'a> = PoolConnection<Postgres>;

    const BEGIN: Option<&'static str> = None;

    async fn writer(&self) -> Result<Self::Writer<'_>> {
        self.pool
            .acquire()
            .await
            .map_err(db("starting a transaction"))
    }

    /// One statement for all of them: the key columns bound as arrays.
    async fn lookup_series(
        conn: &mut PgConnection,
        batch: &NormBatch<'_>,
        which: &[usize],
        found: &mut Found,
    ) -> Result<()> {
        let sql = "SELECT i.ord, s.id, s.unit \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
             $7::text[], $8::text[], $9::text[], $10::text[], $11::text[]) WITH ORDINALITY \
             AS i(app_id, room_id, indicator, granularity, product_type, os, access, user_ids, \
             dimension, dimension_value, grid_timezone, ord) \
             JOIN series s ON s.app_id = i.app_id AND s.room_id = i.room_id \
             AND s.indicator = i.indicator AND s.granularity = i.granularity \
             AND s.product_type = i.product_type AND s.os = i.os AND s.access = i.access \
             AND s.user_ids = i.user_ids AND s.dimension = i.dimension \
             AND s.dimension_value = i.dimension_value AND s.grid_timezone = i.grid_timezone";
        let mut q = sqlx::query_as(sql);
        for column in key_columns(batch, which) {
            q = q.bind(column);
        }
        let rows: Vec<(i64, i64, String)> = q
            .fetch_all(&mut *conn)
            .await
            .map_err(db("looking up series"))?;
        for (ord, id, unit) in rows {
            // ORDINALITY counts from 1.
            found[which[(ord - 1) as usize]] = Some((id, unit));
        }
        Ok(())
    }

    /// One statement for all of them, in one global order.
    async fn insert_series(
        conn: &mut PgConnection,
        batch: &NormBatch<'_>,
        which: &[usize],
        timezone: &str,
    ) -> Result<()> {
        // Two commits adding the same new series wait on each other's unique-index entries;
        // inserting in one global order keeps that from ever becoming a deadlock.
        let mut order = which.to_vec();
        order.sort_by_key(|&i| batch.series[i].key);
        let units: Vec<&str> = order.iter().map(|&i| batch.series[i].unit).collect();
        let shown: Vec<&str> = order
            .iter()
            .map(|&i| shown_timezone(batch.series[i].key, timezone))
            .collect();
        // DO NOTHING: a concurrent commit that added the same series first wins, and the lookup
        // that follows (a new snapshot) finds its row.
        let sql = "INSERT INTO series (app_id, room_id, indicator, granularity, product_type, os, \
             access, user_ids, dimension, dimension_value, grid_timezone, unit, timezone) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
             $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], \
             $12::text[], $13::text[]) \
             ON CONFLICT ON CONSTRAINT series_key DO NOTHING";
        let mut q = sqlx::query(sql);
        for column in key_columns(batch, &order) {
            q = q.bind(column);
        }
        q.bind(units)
            .bind(shown)
            .execute(&mut *conn)
            .await
            .map_err(db("adding series"))?;
        Ok(())
    }

    /// One statement for all of them.
    async fn update_units(conn: &mut PgConnection, units: &[(i64, &str)]) -> Result<()> {
        let (ids, units): (Vec<i64>, Vec<&str>) = units.iter().copied().unzip();
        sqlx::query(
            "UPDATE series SET unit = u.unit FROM unnest($1::bigint[], $2::text[]) AS u(id, unit) \
             WHERE series.id = u.id",
        )
        .bind(&ids)
        .bind(&units)
        .execute(&mut *conn)
        .await
        .map_err(db("updating series' units"))?;
        Ok(())
    }

    async fn lock_series(conn: &mut PgConnection, ids: &[i64]) -> Result<()> {
        lock_series(conn, ids).await
    }

    /// One index range scan.
    fn stored_points<'c>(
        conn: &'c mut PgConnection,
        ids: &'c [i64],
        (lo, hi): (i64, i64),
    ) -> BoxStream<'c, sqlx::Result<PgRow>> {
        sqlx::query(
            "SELECT series_id, ts, value, settled FROM points \
             WHERE series_id = ANY($1) AND ts >= $2 AND ts < $3",
        )
        .bind(ids)
        .bind(from_secs(lo))
        .bind(from_secs(hi))
        .fetch(conn)
    }

    /// New points by binary `COPY` straight into `points`; changed ones by `COPY` into a staging
    /// table and one `UPDATE ... FROM`.
    async fn write_points(&self, conn: &mut PgConnection, pending: &Pending<'_>) -> Result<()> {
        let Pending {
            batch,
            norm,
            ids,
            diff,
        } = *pending;
        if !diff.new.is_empty() {
            let data = copy_rows(&diff.new, 55, 2, |enc, settled| {
                enc.bool(settled);
                enc.timestamptz(batch.fetched_at);
            });
            copy_in(
                conn,
                "COPY points (series_id, ts, value, settled, updated_at) FROM STDIN (FORMAT binary)",
                data,
            )
            .await?;
        }
        self.fail.check(diff.new.len())?;

        if !diff.changed.is_empty() {
            // Session-local and emptied at each commit: created once per connection, never logged.
            sqlx::query(
                "CREATE TEMP TABLE IF NOT EXISTS points_stage_v2 \
                 (series_id bigint NOT NULL, ts timestamptz NOT NULL, value double precision NOT NULL, \
                 settled boolean NOT NULL) ON COMMIT DELETE ROWS",
            )
            .execute(&mut *conn)
            .await
            .map_err(db("creating the staging table"))?;
            let data = copy_rows(&diff.changed, 43, 1, |enc, settled| enc.bool(settled));
            copy_in(
                conn,
                "COPY points_stage_v2 (series_id, ts, value, settled) FROM STDIN (FORMAT binary)",
                data,
            )
            .await?;
            // The range conditions let the planner scan just the window's slice of `points`: the
            // staging table is never analyzed, so it has no statistics to go by.
            sqlx::query(
                "UPDATE points p SET value = st.value, settled = st.settled, updated_at = $1 \
                 FROM points_stage_v2 st \
                 WHERE p.series_id = st.series_id AND p.ts = st.ts \
                 AND p.series_id = ANY($2) AND p.ts >= $3 AND p.ts < $4",
            )
            .bind(batch.fetched_at)
            .bind(ids)
            .bind(from_secs(norm.range.0))
            .bind(from_secs(norm.range.1))
            .execute(&mut *conn)
            .await
            .map_err(db("updating changed points"))?;
        }
        self.fail.check(diff.new.len() + diff.changed.len())?;
        Ok(())
    }

    /// One statement for all of them.
    async fn delete_points(conn: &mut PgConnection, points: &[(i64, i64)]) -> Result<()> {
        let (ids, ts): (Vec<i64>, Vec<DateTime<Utc>>) =
            points.iter().map(|&(id, ts)| (id, from_secs(ts))).unzip();
        sqlx::query(
            "DELETE FROM points p USING unnest($1::bigint[], $2::timestamptz[]) AS d(id, ts) \
             WHERE p.series_id = d.id AND p.ts = d.ts",
        )
        .bind(&ids)
        .bind(&ts)
        .execute(&mut *conn)
        .await
        .map_err(db("deleting points"))?;
        Ok(())
    }

    fn shared(conn: &mut PgConnection) -> ledger::Conn<'_> {
        ledger::On::Postgres(conn)
    }
}

/// The eleven key columns of the series `which`, in table order: one text array each.
fn key_columns<'a>(batch: &NormBatch<'a>, which: &[usize]) -> [Vec<&'a str>; 11] {
    let col = |f: for<'x> fn(&'x SeriesKey) -> &'x str| -> Vec<&'a str> {
        which.iter().map(|&i| f(batch.series[i].key)).collect()
    };
    [
        col(|k| &k.app_id),
        col(|k| &k.room_id),
        col(|k| &k.indicator),
        col(|k| k.granularity.as_str()),
        col(|k| &k.product_type),
        col(|k| &k.os),
        col(|k| &k.access),
        col(|k| &k.user_ids),
        col(|k| &k.dimension),
        col(|k| &k.dimension_value),
        col(|k| &k.grid_timezone),
    ]
}

/// Keeps other transactions away from these series' points until this one ends, so the stored
/// points read next stay true until the commit and the new ones cannot meet a concurrent insert.
/// Advisory locks write nothing (a row lock on `series` would be WAL-logged on every window).
async fn lock_series(conn: &mut PgConnection, ids: &[i64]) -> Result<()> {
    let mut slots: Vec<i32> = ids
        .iter()
        .map(|id| id.rem_euclid(SERIES_LOCK_SLOTS) as i32)
        .collect();
    // One fixed order for everyone, so two commits never wait on each other in a cycle.
    slots.sort_unstable();
    slots.dedup();
    sqlx::query("SELECT count(pg_advisory_xact_lock($1, k)) FROM unnest($2::int4[]) AS k")
        .bind(SERIES_LOCK_CLASS)
        .bind(&slots)
        .execute(&mut *conn)
        .await
        .map_err(db("locking series"))?;
    Ok(())
}

/// Binary `COPY` data of `(series id, bucket start, value)` rows, each followed by the `extra`
/// fields that `tail` writes (given the row's settled flag); `bytes_per_row` sizes the buffer once.
fn copy_rows(
    rows: &[Row],
    bytes_per_row: usize,
    extra: i16,
    tail: impl Fn(&mut copy::CopyEncoder, bool),
) -> Vec<u8> {
    let mut enc = copy::CopyEncoder::with_capacity(rows.len() * bytes_per_row);
    for &(id, ts, value, settled) in rows {
        enc.row(3 + extra);
        enc.int8(id);
        enc.timestamptz_secs(ts);
        enc.float8(value);
        tail(&mut enc, settled);
    }
    enc.finish()
}

async fn copy_in(conn: &mut PgConnection, statement: &str, data: Vec<u8>) -> Result<u64> {
    let mut copy = conn
        .copy_in_raw(statement)
        .await
        .map_err(db("starting a COPY"))?;
    // On an error the dropped `copy` tells the server to abort the COPY.
    copy.send(data).await.map_err(db("sending COPY data"))?;
    copy.finish().await.map_err(db("finishing a COPY"))
}

fn from_secs(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A one-key advisory lock on a bigint, as `pg_locks` shows it: its high half as `classid`, its low
/// half as `objid`, both unsigned 32-bit oids. The high half is shifted as unsigned, so a key with
/// its top bit set (half of the schemas' keys) is found too.
fn lock_key_halves(key: i64) -> (i64, i64) {
    (((key as u64) >> 32) as i64, key & 0xffff_ffff)
}

/// The session that holds the sync lock `key`, as the server knows it: `(holder, connected since)`.
async fn session_holder(conn: &mut PgConnection, key: i64) -> Option<(String, String)> {
    let (high, low) = lock_key_halves(key);
    let row: Option<(i32, String, String, String, DateTime<Utc>)> = sqlx::query_as(concat!(
        "SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.usename::text, ''), \
         coalesce(host(a.client_addr), 'a local socket'), a.backend_start \
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE ",
        advisory_held!(),
        " AND l.classid::int8 = $1 AND l.objid::int8 = $2 LIMIT 1"
    ))
    .bind(high)
    .bind(low)
    .fetch_optional(conn)
    .await
    .ok()
    .flatten();
    let (pid, app, user, from, since) = row?;
    let holder = if app.starts_with("rtc-quality-sync") {
        // Our own session name: `<holder> pid <pid> on <host>`.
        format!("a run that is starting ({app}; PostgreSQL backend pid {pid}, from {from})")
    } else if app.is_empty() {
        format!("a PostgreSQL session (backend pid {pid}, user {user}, from {from})")
    } else {
        format!(
            "a PostgreSQL session (backend pid {pid}, application {app}, user {user}, from {from})"
        )
    };
    Some((
        holder,
        format!(
            "{} (when it connected)",
            since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
    ))
}

/// `pg_try_advisory_lock` or `pg_try_advisory_lock_shared` of `key` on `conn`: whether it was granted.
async fn try_advisory(conn: &mut PgConnection, function: &str, key: i64) -> Result<bool> {
    sqlx::query_scalar(&format!("SELECT {function}($1)"))
        .bind(key)
        .fetch_one(conn)
        .await
        .map_err(db("taking the sync lock"))
}

/// The record in `sync_lock` of a holder of the lock `key` whose session still holds it (the
/// earliest, when runs of several accounts hold the schema's key together): `(holder, since)`.
/// `None` before the holder has recorded itself, or on a database whose `sync_lock` an earlier
/// version made (without `backend_pid`).
async fn recorded_holder(conn: &mut PgConnection, key: i64) -> Option<(String, String)> {
    let (high, low) = lock_key_halves(key);
    let row: Option<HolderRow> = sqlx::query_as(concat!(
        "SELECT r.holder, r.pid, r.hostname, r.since, r.run_id, r.account \
         FROM sync_lock r JOIN pg_locks l ON l.pid = r.backend_pid WHERE ",
        advisory_held!(),
        " AND l.classid::int8 = $1 AND l.objid::int8 = $2 ORDER BY r.since LIMIT 1"
    ))
    .bind(high)
    .bind(low)
    .fetch_optional(conn)
    .await
    .ok()
    .flatten();
    let (holder, pid, host, since, run, account) = row?;
    Some((
        describe_holder(&holder, pid, &host, run, account.as_deref()),
        since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    ))
}

/// Writes the holder's row on the lock's own session, under its own key, with the session's
/// backend pid (a refused run names only a holder whose session still holds the lock).
async fn record_holder(
    mut conn: PgConnection,
    holder: &str,
    keys: &LockKeys,
    run_id: Option<i64>,
) -> Result<PgConnection> {
    sqlx::query(
        "INSERT INTO sync_lock (lock_key, account, holder, pid, hostname, since, run_id, backend_pid) \
         VALUES ($1, $2, $3, $4, $5, now(), $6, pg_backend_pid()) \
         ON CONFLICT (lock_key) DO UPDATE SET account = excluded.account, holder = excluded.holder, \
         pid = excluded.pid, hostname = excluded.hostname, since = excluded.since, \
         run_id = excluded.run_id, backend_pid = excluded.backend_pid",
    )
    .bind(keys.own)
    .bind(keys.account.as_deref())
    .bind(holder)
    .bind(i64::from(std::process::id()))
    .bind(hostname())
    .bind(run_id)
    .execute(&mut conn)
    .await
    .map_err(db("recording the lock holder"))?;
    Ok(conn)
}

/// Holds the sync's advisory lock on a connection of its own, which the store shares to check it
/// before each commit; dropping this ends the session, which releases the lock on the server.
pub struct PgLock {
    slot: Arc<tokio::sync::Mutex<Option<LockSession>>>,
}

impl Drop for PgLock {
    fn drop(&mut self) {
        // Released already, or a commit is checking it right now (then the store drops it later).
        if let Ok(mut slot) = self.slot.try_lock() {
            slot.take();
        }
    }
}

impl PgLock {
    pub async fn release(self) -> Result<()> {
        let session = self.slot.lock().await.take();
        if let Some(LockSession { mut conn, keys, .. }) = session {
            // Clear the record while still holding the lock, so a new holder's is never erased.
            sqlx::query("DELETE FROM sync_lock WHERE lock_key = $1")
                .bind(keys.own)
                .execute(&mut conn)
                .await
                .map_err(db("clearing the lock holder"))?;
            sqlx::query("SELECT pg_advisory_unlock_all()")
                .execute(&mut conn)
                .await
                .map_err(db("releasing the sync lock"))?;
            let _ = conn.close().await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 19 item 13: what a schema move covers is exactly what the migrations create, so a
    /// migration that adds a table or a view cannot leave it behind in `public`.
    #[test]
    fn item_19_13_the_tool_tables_are_those_the_migrations_create() {
        let migrations = [
            include_str!("../../migrations/postgres/0001_schema.sql"),
            include_str!("../../migrations/postgres/0002_coverage_per_query_and_indicator.sql"),
            include_str!("../../migrations/postgres/0003_quality_distribution.sql"),
            include_str!("../../migrations/postgres/0004_timezones_refetch_deletes.sql"),
            include_str!("../../migrations/postgres/0005_rtc_rooms.sql"),
            include_str!("../../migrations/postgres/0006_deferred_windows.sql"),
            include_str!("../../migrations/postgres/0007_accounts.sql"),
        ];
        let listed = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
            .unwrap()
            .count();
        assert_eq!(listed, migrations.len(), "a new migration: add it above");
        let (mut tables, mut views) = (Vec::new(), Vec::new());
        for sql in migrations {
            for line in sql.lines() {
                let words: Vec<&str> = line.split_whitespace().collect();
                let name = |i: usize| words[i].trim_end_matches(['(', ';']).to_string();
                match words.as_slice() {
                    ["CREATE", "TABLE", ..] => tables.push(name(2)),
                    ["CREATE", "VIEW", ..] => views.push(name(2)),
                    ["CREATE", "OR", "REPLACE", "VIEW", ..] => views.push(name(4)),
                    ["CREATE", what, ..] if *what != "INDEX" => panic!("{line}"),
                    _ => {}
                }
            }
        }
        tables.sort();
        tables.dedup();
        views.sort();
        views.dedup();
        let mut known: Vec<&str> = TABLES.to_vec();
        known.sort();
        assert_eq!(tables, known);
        let mut known: Vec<&str> = VIEWS.to_vec();
        known.sort();
        assert_eq!(views, known);
        assert!(TABLES.contains(&MARKER_TABLE));
    }

    /// Issue 19 item 13: `public` keeps the previous version's lock key; every other schema has
    /// its own, stable one, which `session_holder` finds in `pg_locks` by its unsigned halves.
    #[test]
    fn item_19_13_the_sync_lock_is_per_schema() {
        let key = |name: &str| sync_lock_key(&PgSchema::parse(name).unwrap());
        assert_eq!(key("public"), 0x7274_6373_796e_6331);
        let keys: std::collections::BTreeSet<i64> =
            ["public", "rtc", "Rtc", "rtc_a", "rtc_b", "team_x"]
                .iter()
                .map(|n| key(n))
                .collect();
        assert_eq!(keys.len(), 6);
        // Pinned: another version must take the same key for the same schema.
        assert_eq!(key("rtc"), 5_603_235_106_710_906_672);
        assert_eq!(key("rtc_a"), -2_910_288_425_449_513_164);
        assert_eq!(lock_key_halves(SYNC_LOCK_KEY), (0x7274_6373, 0x796e_6331));
        assert_eq!(lock_key_halves(-1), (0xffff_ffff, 0xffff_ffff));
        assert_eq!(lock_key_halves(i64::MIN + 5), (0x8000_0000, 5));
    }

    /// Issue 19 item 13: the statements that move the tables, one a line, in one transaction; the
    /// schema is created only when it is missing (creating needs a right its owner may not have).
    #[test]
    fn item_19_13_the_move_statements_run_as_printed() {
        let rtc = PgSchema::parse("Rtc").unwrap();
        let moves = [
            ("series", false),
            ("quality_metrics", true),
            ("_sqlx_migrations", false),
        ];
        assert_eq!(
            move_statements(&rtc, false, "public", &moves),
            "  BEGIN;\n  CREATE SCHEMA IF NOT EXISTS \"Rtc\";\n  ALTER TABLE public.series SET SCHEMA \"Rtc\";\n  \
             ALTER VIEW public.quality_metrics SET SCHEMA \"Rtc\";\n  \
             ALTER TABLE public._sqlx_migrations SET SCHEMA \"Rtc\";\n  COMMIT;"
        );
        assert_eq!(
            move_statements(&rtc, true, "app\"user", &moves[..1]),
            "  BEGIN;\n  ALTER TABLE \"app\"\"user\".series SET SCHEMA \"Rtc\";\n  COMMIT;"
        );
    }

    /// Issue 18 item 10: sqlx logs every URL parameter it does not know with its value, so no
    /// parameter whose name holds `pass` reaches it; the password is taken out and applied apart.
    #[test]
    fn item_18_10_secret_parameters_never_reach_the_driver() {
        let (url, password) =
            without_secret_parameters("postgres://u@h:5432/db?sslmode=disable&PassWord=hunter2x")
                .unwrap();
        assert_eq!(
            (url.as_str(), password.as_deref()),
            ("postgres://u@h:5432/db?sslmode=disable", Some("hunter2x"))
        );
        let (url, password) =
            without_secret_parameters("postgres://u@h/db?Pass%57ord=a%20b&password=last").unwrap();
        assert_eq!(
            (url.as_str(), password.as_deref()),
            ("postgres://u@h/db", Some("last"))
        );
        let plain = "postgres://u:pw@h/db?application_name=x";
        assert_eq!(
            without_secret_parameters(plain).unwrap(),
            (plain.to_string(), None)
        );
        for (url, parameter) in [
            (
                "postgres://u@h/db?PassWord=hunter2x&sslpassword=hunter3x",
                "sslpassword",
            ),
            ("postgres://u@h/db?passfile=hunter3x", "passfile"),
            ("postgres://u@h/db?pwd=hunter3x", "pwd"),
        ] {
            let e = without_secret_parameters(url).unwrap_err().to_string();
            assert!(
                e.contains(&format!("{parameter:?}")) && !e.contains("hunter"),
                "{e}"
            );
        }
        // The options sqlx builds from what is left carry the password.
        let (url, password) =
            without_secret_parameters("postgres://u@h/db?PASSWORD=hunter2x").unwrap();
        let options = PgConnectOptions::from_str(&url)
            .unwrap()
            .password(&password.unwrap());
        assert!(format!("{options:?}").contains("hunter2x"));
    }
}
