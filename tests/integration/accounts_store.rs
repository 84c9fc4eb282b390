//! Issue 21, the store's side of "many accounts into one warehouse": a lock per account on
//! PostgreSQL (one per file on SQLite), runs that record their account and are marked abandoned only
//! when their lock is free, the call log behind daily budgets, and the upgrade of an earlier database.

use chrono::{DateTime, Duration, TimeZone, Utc};
use rtc_quality_sync::domain::{PgSchema, RunCounts, RunStatus, WriteCounts};
use rtc_quality_sync::store::postgres::{account_lock_key, sync_lock_key};
use rtc_quality_sync::store::{Store, StoreError, StoreLock};
use sqlx::Connection;

use crate::helpers::on_both_urls;
use crate::store::{batch, key, t};

/// Three accounts as the database names them (`Credentials::account_id`: 16 hex digits).
const A: &str = "0a0a0a0a0a0a0a0a";
const B: &str = "0b0b0b0b0b0b0b0b";
const C: &str = "0c0c0c0c0c0c0c0c";

fn public() -> PgSchema {
    PgSchema::public()
}

/// Opens `url` under `account`'s lock, as a run of that account does.
async fn locked(url: &str, account: &str) -> (Store, StoreLock) {
    Store::connect_locked_for(url, &public(), &format!("sync {account}"), account)
        .await
        .unwrap_or_else(|e| panic!("account {account} could not take its lock: {e}"))
}

/// The error of a lock attempt that must be refused.
fn refused<T>(attempt: Result<T, StoreError>) -> (String, String) {
    match attempt {
        Err(StoreError::Locked { holder, since }) => (holder, since),
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("a second holder got the lock"),
    }
}

/// A one-window batch of stream `stream` (an hour of 5-minute points of one indicator).
fn window(stream: &str, start_minutes: i64) -> rtc_quality_sync::domain::WindowBatch {
    batch(
        stream,
        start_minutes,
        12,
        true,
        &[(key("stall_rate"), "%", 1.0)],
        t(10_000),
    )
}

fn inserted(n: u64) -> WriteCounts {
    WriteCounts {
        inserted: n,
        ..WriteCounts::default()
    }
}

/// The backend pid of the session that holds advisory lock `key`, exclusively, in `url`'s database.
pub(crate) async fn lock_session(conn: &mut sqlx::PgConnection, key: i64) -> i32 {
    sqlx::query_scalar(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 \
         AND mode = 'ExclusiveLock' AND classid::int8 = $1 AND objid::int8 = $2 \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .bind(((key as u64) >> 32) as i64)
    .bind(key & 0xffff_ffff)
    .fetch_one(conn)
    .await
    .expect("someone holds the lock")
}

// ---------------------------------------------------------------------------------------------
// Locks per account (PostgreSQL)

/// Two accounts lock one schema at once, each records itself, and both commit windows; a run that
/// wants the whole schema (an earlier version's lock) is refused while they run, and refuses them
/// while it holds it.
#[tokio::test]
async fn two_accounts_lock_one_schema_at_once_and_both_commit() {
    let Some(db) = crate::helpers::pg_empty_db().await else {
        return;
    };
    let url = db.url();
    let ((a, lock_a), (b, lock_b)) = tokio::join!(locked(&url, A), locked(&url, B));
    assert_eq!(
        a.commit_window(&window("ka", 0)).await.unwrap(),
        inserted(12)
    );
    assert_eq!(
        b.commit_window(&window("kb", 60)).await.unwrap(),
        inserted(12)
    );
    assert_eq!(
        a.commit_window(&window("ka", 120)).await.unwrap(),
        inserted(12)
    );
    assert_eq!(a.ledger(Some("ka")).await.unwrap().len(), 2);
    assert_eq!(a.ledger(Some("kb")).await.unwrap().len(), 1);

    let Store::Postgres(pg) = &a else {
        unreachable!()
    };
    let records: Vec<(i64, Option<String>, String)> =
        sqlx::query_as("SELECT lock_key, account, holder FROM sync_lock ORDER BY account")
            .fetch_all(pg.pool())
            .await
            .unwrap();
    assert_eq!(
        records,
        vec![
            (
                account_lock_key(&public(), A),
                Some(A.into()),
                format!("sync {A}")
            ),
            (
                account_lock_key(&public(), B),
                Some(B.into()),
                format!("sync {B}")
            ),
        ]
    );

    // The whole schema's lock (what `connect_locked_in` and every earlier version take) is
    // refused while they run, naming one of them.
    let (holder, _) =
        refused(Store::connect_locked_in(&url, &public(), "rtc-quality-sync migrate").await);
    assert!(
        [A, B].iter().any(|x| holder.starts_with(&format!(
            "a run that is starting (sync {x}, pid {}",
            std::process::id()
        )) && holder.ends_with(&format!(", account {x})"))),
        "{holder}"
    );
    lock_a.release().await.unwrap();
    lock_b.release().await.unwrap();
    let remaining: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_lock")
        .fetch_one(pg.pool())
        .await
        .unwrap();
    assert_eq!(remaining, 0, "each release clears its own record");
    let (whole, whole_lock) = Store::connect_locked_in(&url, &public(), "rtc-quality-sync migrate")
        .await
        .unwrap();
    let (holder, _) = refused(Store::connect_locked_for(&url, &public(), "sync c", C).await);
    assert!(
        holder.starts_with("a run that is starting (rtc-quality-sync migrate, pid "),
        "{holder}"
    );
    whole_lock.release().await.unwrap();
    let (c, lock_c) = locked(&url, C).await;
    lock_c.release().await.unwrap();
    for store in [a, b, whole, c] {
        store.close().await;
    }
}

/// A second lock of the same account is refused with the holder named (run, holder, pid, host,
/// account), and taken once the first is released.
#[tokio::test]
async fn a_second_lock_of_the_same_account_is_refused_naming_the_holder() {
    let Some(db) = crate::helpers::pg_empty_db().await else {
        return;
    };
    let url = db.url();
    let (a, lock_a) = locked(&url, A).await;
    let (holder, since) =
        refused(Store::connect_locked_for(&url, &public(), "sync again", A).await);
    assert!(
        holder.starts_with(&format!(
            "a run that is starting (sync {A}, pid {}",
            std::process::id()
        )) && holder.ends_with(&format!(", account {A})")),
        "{holder}"
    );
    assert!(since.starts_with("20") && since.ends_with('Z'), "{since}");
    a.record_lock_run(42).await.unwrap();
    let message = refused(a.try_lock_for("sync again", A).await).0;
    assert!(
        message.starts_with(&format!("run 42 (sync {A}, pid ")),
        "{message}"
    );
    let e = Store::connect_locked_for(&url, &public(), "sync again", A)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.starts_with("another run holds the lock on this database: run 42 (") && e.contains(A),
        "{e}"
    );

    // The same account in another schema is another lock.
    let other = PgSchema::parse("rtc_other").unwrap();
    assert_ne!(account_lock_key(&other, A), account_lock_key(&public(), A));
    lock_a.release().await.unwrap();
    let (again, lock_again) = locked(&url, A).await;
    lock_again.release().await.unwrap();
    for store in [a, again] {
        store.close().await;
    }
}

/// One account's lock session ends (a restart, for that session) and another process takes that
/// account's lock: only that account's commits fail, with `LockLost` naming the new holder; the
/// other account's commits go on under its lock.
#[tokio::test]
async fn one_accounts_lost_lock_fails_only_its_commits() {
    let Some(db) = crate::helpers::pg_empty_db().await else {
        return;
    };
    let url = db.url();
    let ((a, _lock_a), (b, lock_b)) = tokio::join!(locked(&url, A), locked(&url, B));
    assert_eq!(
        a.commit_window(&window("ka", 0)).await.unwrap(),
        inserted(12)
    );
    assert_eq!(
        b.commit_window(&window("kb", 180)).await.unwrap(),
        inserted(12)
    );

    let mut outsider = sqlx::PgConnection::connect(&url).await.unwrap();
    let me: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut outsider)
        .await
        .unwrap();
    let key_a = account_lock_key(&public(), A);
    let pid = lock_session(&mut outsider, key_a).await;
    // One statement: the lock request queues before A can take its lock again.
    sqlx::query("SELECT pg_terminate_backend($1), pg_advisory_lock($2)")
        .bind(pid)
        .bind(key_a)
        .execute(&mut outsider)
        .await
        .unwrap();

    match a.commit_window(&window("ka", 60)).await {
        Err(StoreError::LockLost { holder, .. }) => {
            assert!(holder.contains(&format!("backend pid {me}")), "{holder}")
        }
        other => panic!("expected LockLost, got {other:?}"),
    }
    assert_eq!(
        a.ledger(Some("ka")).await.unwrap().len(),
        1,
        "nothing after the loss"
    );
    assert_eq!(
        b.commit_window(&window("kb", 240)).await.unwrap(),
        inserted(12)
    );
    assert_eq!(
        b.commit_window(&window("kb", 300)).await.unwrap(),
        inserted(12)
    );
    assert_eq!(b.ledger(Some("kb")).await.unwrap().len(), 3);
    // B still holds its lock, A's belongs to the outsider.
    refused(Store::connect_locked_for(&url, &public(), "sync b again", B).await);
    let (holder, _) = refused(Store::connect_locked_for(&url, &public(), "sync a again", A).await);
    assert!(holder.contains(&format!("backend pid {me}")), "{holder}");
    lock_b.release().await.unwrap();
    let _ = outsider.close().await;
    a.close().await;
    b.close().await;
}

/// Two accounts start on a fresh database (and on a fresh schema) at the same instant: both take
/// their locks before migrating, sqlx's migrator lock (`pg_advisory_lock` in `Migrator::run`) lets
/// one migrate while the other waits, and both find the schema whole.
#[tokio::test]
async fn accounts_starting_at_once_on_a_fresh_schema_both_migrate_it_whole() {
    let Some(db) = crate::helpers::pg_empty_db().await else {
        return;
    };
    let url = db.url();
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .count() as i64;
    // `rtc_fresh` first: a schema without the tables is refused once `public` holds them.
    for schema in [PgSchema::parse("rtc_fresh").unwrap(), public()] {
        let open = |account: &'static str| {
            let (url, schema) = (url.clone(), schema.clone());
            async move {
                Store::connect_locked_for(&url, &schema, "sync", account)
                    .await
                    .map_err(|e| e.to_string())
            }
        };
        let opened = futures::future::join_all([open(A), open(B), open(C)]).await;
        let mut stores = Vec::new();
        for (i, o) in opened.into_iter().enumerate() {
            let (store, lock) = o.unwrap_or_else(|e| panic!("account {i} on {schema:?}: {e}"));
            stores.push((store, lock));
        }
        let Store::Postgres(pg) = &stores[0].0 else {
            unreachable!()
        };
        let applied: Vec<(i64, bool)> =
            sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
                .fetch_all(pg.pool())
                .await
                .unwrap();
        assert_eq!(applied.len() as i64, migrations, "{applied:?}");
        assert!(applied.iter().all(|(_, ok)| *ok), "{applied:?}");
        for (i, (store, lock)) in stores.into_iter().enumerate() {
            let stream = format!("k{i}");
            let start = 60 * i as i64;
            assert_eq!(
                store.commit_window(&window(&stream, start)).await.unwrap(),
                inserted(12)
            );
            store.record_call(A, "ListQuality", t(1)).await.unwrap();
            lock.release().await.unwrap();
            store.close().await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Abandoned runs

/// The runs table as `(id, account, status, windows_ok)`, by id.
async fn runs(store: &Store) -> Vec<(i64, Option<String>, String, i64)> {
    const Q: &str = "SELECT id, account, status, windows_ok FROM sync_runs ORDER BY id";
    match store {
        Store::Sqlite(s) => sqlx::query_as(Q).fetch_all(s.pool()).await.unwrap(),
        Store::Postgres(s) => sqlx::query_as(Q).fetch_all(s.pool()).await.unwrap(),
    }
}

/// On PostgreSQL a `running` row is marked abandoned when its account is the caller's, or its
/// account's lock is free, or (no account: an earlier version's run) nobody holds the whole
/// schema's lock; never another account's live run. An abandoned run counts the windows of its
/// own account's streams only.
#[tokio::test]
async fn abandon_marks_runs_of_free_and_own_accounts_never_a_live_one() {
    let Some(db) = crate::helpers::pg_empty_db().await else {
        return;
    };
    let url = db.url();
    let (a, lock_a) = locked(&url, A).await;
    let (b, lock_b) = locked(&url, B).await;
    for (stream, account) in [("ka", A), ("kb", B)] {
        a.register_streams(
            &[(stream.into(), stream.into(), vec![])],
            " (replaced)",
            Some(account),
        )
        .await
        .unwrap();
    }
    // An earlier version's run, then a dead run of A (its process is this one now), a live run of
    // B, a dead run of C (nobody holds C's lock).
    let old = a.start_run("sync", t(0), None).await.unwrap();
    let dead_a = a.start_run("sync", t(10), Some(A)).await.unwrap();
    let live_b = b.start_run("sync", t(10), Some(B)).await.unwrap();
    let dead_c = a.start_run("sync", t(10), Some(C)).await.unwrap();
    let at = |minutes| {
        let mut w = window("ka", 0);
        w.fetched_at = t(minutes);
        w
    };
    a.commit_window(&at(20)).await.unwrap();
    let mut kb = window("kb", 0);
    kb.fetched_at = t(20);
    b.commit_window(&kb).await.unwrap();

    let marked = a.abandon_unfinished_runs(&[A.to_string()]).await.unwrap();
    assert_eq!(marked, vec![old, dead_a, dead_c]);
    let status = |id: i64, rows: &[(i64, Option<String>, String, i64)]| {
        let r = rows.iter().find(|r| r.0 == id).unwrap();
        (r.2.clone(), r.3)
    };
    let rows = runs(&a).await;
    assert_eq!(
        status(dead_a, &rows),
        ("abandoned".into(), 1),
        "only A's window"
    );
    assert_eq!(
        status(live_b, &rows),
        ("running".into(), 0),
        "B holds its lock"
    );
    assert_eq!(
        status(dead_c, &rows),
        ("abandoned".into(), 0),
        "C has no stream"
    );
    assert_eq!(status(old, &rows).0, "abandoned");
    // A second call finds nothing more to mark; B's own process marks its dead run.
    assert!(
        a.abandon_unfinished_runs(&[A.to_string()])
            .await
            .unwrap()
            .is_empty()
    );
    b.finish_run(live_b, RunStatus::Ok, &RunCounts::default(), t(30))
        .await
        .unwrap();
    let dead_b = b.start_run("sync", t(40), Some(B)).await.unwrap();
    assert!(
        a.abandon_unfinished_runs(&[A.to_string()])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        b.abandon_unfinished_runs(&[B.to_string()]).await.unwrap(),
        vec![dead_b]
    );
    lock_a.release().await.unwrap();
    lock_b.release().await.unwrap();

    // A run of an earlier version is alive while a session holds the schema's key exclusively.
    let old_live = a.start_run("sync", t(50), None).await.unwrap();
    let mut earlier_version = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(sync_lock_key(&public()))
        .execute(&mut earlier_version)
        .await
        .unwrap();
    assert!(
        a.abandon_unfinished_runs(&[A.to_string()])
            .await
            .unwrap()
            .is_empty()
    );
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(sync_lock_key(&public()))
        .execute(&mut earlier_version)
        .await
        .unwrap();
    assert_eq!(
        a.abandon_unfinished_runs(&[A.to_string()]).await.unwrap(),
        vec![old_live]
    );
    let _ = earlier_version.close().await;
    a.close().await;
    b.close().await;
}

/// On SQLite the caller holds the file's lock, so every `running` row is dead, whatever its account.
#[tokio::test]
async fn sqlite_abandons_every_running_run_whatever_its_account() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let (store, lock) = locked(&url, A).await;
    let ids = [
        store.start_run("sync", t(0), None).await.unwrap(),
        store.start_run("sync", t(1), Some(A)).await.unwrap(),
        store.start_run("sync", t(2), Some(B)).await.unwrap(),
    ];
    assert_eq!(
        store.abandon_unfinished_runs(&[]).await.unwrap(),
        ids.to_vec()
    );
    assert!(runs(&store).await.iter().all(|r| r.2 == "abandoned"));
    // One sync per file, whatever the account.
    let (holder, _) = refused(Store::connect_locked_for(&url, &public(), "sync b", B).await);
    assert!(holder.contains(&format!("account {A}")), "{holder}");
    lock.release().await.unwrap();
    store.close().await;
}

// ---------------------------------------------------------------------------------------------
// The call log

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 5, 41, 0).unwrap() + Duration::microseconds(654_321)
}

/// Calls recorded one by one are read back exactly (microseconds), oldest first, per account and
/// action; the last 24 hours exclude a call at exactly `now - 24h`; old rows are forgotten; all of
/// it survives a reopen.
async fn calls_are_recorded_and_counted(url: &str) {
    let store = Store::connect(url).await.unwrap();
    let day = Duration::hours(24);
    let us = Duration::microseconds(1);
    // Recorded out of order, as concurrent fetchers may.
    let a_quality = [
        now() - day + us,
        now() - day / 2,
        now() - Duration::minutes(5),
        now(),
    ];
    for at in [a_quality[2], a_quality[0], a_quality[3], a_quality[1]] {
        store.record_call(A, "ListQuality", at).await.unwrap();
    }
    let edge = now() - day;
    store.record_call(A, "ListQuality", edge).await.unwrap();
    store
        .record_call(A, "ListQuality", now() - Duration::hours(49))
        .await
        .unwrap();
    store
        .record_call(A, "ListRoomInfo", now() - Duration::hours(1))
        .await
        .unwrap();
    store
        .record_call(B, "ListQuality", now() - Duration::hours(2))
        .await
        .unwrap();
    store
        .record_call(B, "ListQuality", now() - Duration::hours(2))
        .await
        .unwrap();

    let check = |store: Store| async move {
        assert_eq!(
            store
                .calls_since(A, "ListQuality", now() - day)
                .await
                .unwrap(),
            a_quality.to_vec(),
            "strictly after `since`, oldest first"
        );
        assert_eq!(
            store
                .calls_since(A, "ListQuality", edge - us)
                .await
                .unwrap()
                .first(),
            Some(&edge)
        );
        assert_eq!(
            store.calls_24h(now()).await.unwrap(),
            vec![
                (A.to_string(), "ListQuality".to_string(), 4),
                (A.to_string(), "ListRoomInfo".to_string(), 1),
                (B.to_string(), "ListQuality".to_string(), 2),
            ]
        );
        store
    };
    let store = check(store).await;
    store.close().await;
    let store = check(Store::connect(url).await.unwrap()).await;

    assert_eq!(
        store
            .forget_calls_before(now() - Duration::hours(48))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .forget_calls_before(now() - Duration::hours(48))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .calls_since(A, "ListQuality", now() - Duration::hours(72))
            .await
            .unwrap()
            .len(),
        5,
        "the 49-hour-old call is gone, the one at exactly now - 24h is kept"
    );
    assert!(
        store
            .calls_since(C, "ListQuality", now() - day)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.calls_24h(now() + day * 3).await.unwrap().is_empty());
    store.close().await;
}

on_both_urls!(calls_are_recorded_and_counted);

// ---------------------------------------------------------------------------------------------
// A database of an earlier version (0001 to 0005) upgrades and keeps its rows

/// Rows written at 0005, in SQL both backends read (SQLite's time text is a `timestamptz` literal):
/// a finished run, a run left `running` by a crash, its stale lock record, a ledger row, pacing.
const DATA_0005: [&str; 5] = [
    "INSERT INTO sync_runs (mode, started_at, finished_at, status, requests, windows_ok) VALUES \
     ('sync', '2024-05-02T00:00:00.000000Z', '2024-05-02T00:01:00.000000Z', 'ok', 7, 3), \
     ('sync', '2024-05-03T00:00:00.000000Z', NULL, 'running', 0, 0)",
    "INSERT INTO sync_lock (id, holder, pid, hostname, since, run_id) \
     VALUES (1, 'rtc-quality-sync sync', 4242, 'old-box', '2024-05-03T00:00:00.000000Z', 2)",
    "INSERT INTO sync_ledger (stream, indicator, window_start, window_end, state, points, attempts, \
     last_error, request_id, fetched_at) VALUES ('k', 'stall_rate', '2024-05-01T00:00:00Z', \
     '2024-05-01T00:10:00Z', 'settled', 1, 1, NULL, 'r', '2024-05-02T00:00:30.000000Z')",
    "INSERT INTO sync_pacing (account, action, last_call_at) \
     VALUES ('0a0a0a0a0a0a0a0a', 'ListQuality', '2024-05-02T00:00:59.000000Z')",
    "INSERT INTO sync_streams (stream, label, account) VALUES ('k', 'app-wide/5min', NULL)",
];

async fn after_upgrade_to_0007(url: &str) {
    let (store, lock) = locked(url, A).await;
    let last_ok = store.last_successful_run().await.unwrap().unwrap();
    assert_eq!(
        (
            last_ok.id,
            last_ok.requests,
            last_ok.windows_ok,
            last_ok.account
        ),
        (1, 7, 3, None)
    );
    assert_eq!(store.ledger(None).await.unwrap().len(), 1);
    assert_eq!(
        store.last_calls(A).await.unwrap(),
        vec![(
            "ListQuality".to_string(),
            Some(Utc.with_ymd_and_hms(2024, 5, 2, 0, 0, 59).unwrap())
        )]
    );
    assert_eq!(store.stream_labels().await.unwrap().len(), 1);
    // The crashed run of the earlier version is dead: nobody holds the schema's lock.
    assert_eq!(
        store.abandon_unfinished_runs(&[A.into()]).await.unwrap(),
        vec![2]
    );
    let run = store.start_run("sync", t(100), Some(A)).await.unwrap();
    store.record_lock_run(run).await.unwrap();
    store.record_call(A, "ListQuality", t(101)).await.unwrap();
    assert_eq!(store.calls_24h(t(102)).await.unwrap().len(), 1);
    let (holder, _) = refused(Store::connect_locked_for(url, &public(), "second", A).await);
    assert!(
        holder.starts_with(&format!("run {run} (sync {A}")),
        "{holder}"
    );
    lock.release().await.unwrap();
    store.close().await;
}

/// A temp dir holding the migrations before `0006` of one backend.
fn migrations_to_0005(backend: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name.as_str() < "0006" {
            std::fs::copy(&path, dir.path().join(&name)).unwrap();
        }
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 5);
    dir
}

mod upgrade_0005_to_0007 {
    use super::*;
    use sqlx::ConnectOptions;
    use sqlx::migrate::Migrator;

    #[tokio::test]
    async fn sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v5.db");
        let migrations = migrations_to_0005("sqlite");
        {
            let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                .foreign_keys(true)
                .connect()
                .await
                .unwrap();
            Migrator::new(migrations.path())
                .await
                .unwrap()
                .run(&mut conn)
                .await
                .unwrap();
            for sql in DATA_0005 {
                sqlx::query(sql).execute(&mut conn).await.unwrap();
            }
        }
        after_upgrade_to_0007(&format!("sqlite://{}", path.display())).await;
    }

    #[tokio::test]
    async fn postgres() {
        let Some(db) = crate::helpers::pg_empty_db().await else {
            return;
        };
        let migrations = migrations_to_0005("postgres");
        {
            let pool = sqlx::PgPool::connect(&db.url()).await.unwrap();
            Migrator::new(migrations.path())
                .await
                .unwrap()
                .run(&pool)
                .await
                .unwrap();
            for sql in DATA_0005 {
                sqlx::query(sql).execute(&pool).await.unwrap();
            }
            pool.close().await;
        }
        after_upgrade_to_0007(&db.url()).await;
    }
}
