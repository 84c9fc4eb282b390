//! Fresh databases per test: SQLite files in a temp dir, PostgreSQL databases created from `TEST_DATABASE_URL`.

use std::sync::atomic::{AtomicU32, Ordering};

use rtc_quality_sync::store::Store;
use sqlx::Connection;
use tempfile::TempDir;

/// Runs `async fn NAME(url)` on a fresh SQLite file and on a fresh PostgreSQL database.
macro_rules! on_both_urls {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("t.db").display());
                super::$name(&url).await;
            }

            #[tokio::test]
            async fn postgres() {
                let Some(db) = crate::helpers::pg_empty_db().await else {
                    return;
                };
                super::$name(&db.url()).await;
            }
        }
    )*};
}
pub(crate) use on_both_urls;

/// A new SQLite database file in its own temp dir (deleted when the `TempDir` drops).
pub async fn sqlite_store() -> (TempDir, Store) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    let store = Store::connect(&url).await.expect("a fresh sqlite store");
    (dir, store)
}

/// A PostgreSQL database created for one test; dropped (with its connections) when this drops.
pub struct PgDb {
    admin_url: String,
    name: String,
}

impl PgDb {
    /// The test database's URL, for tests that run raw SQL beside the store.
    pub fn url(&self) -> String {
        database_url(&self.admin_url, &self.name)
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime, which cannot be blocked on; a thread with its own can.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// A store on a new PostgreSQL database, or `None` when `TEST_DATABASE_URL` is unset.
///
/// With `REQUIRE_POSTGRES=1` a missing or unreachable server fails the test instead of skipping it,
/// so CI cannot pass without having run the PostgreSQL half.
pub async fn pg_store() -> Option<(PgDb, Store)> {
    let db = pg_empty_db().await?;
    let store = Store::connect(&db.url())
        .await
        .expect("a fresh postgres store");
    Some((db, store))
}

/// A new, empty PostgreSQL database (no schema yet), or `None` as for [`pg_store`].
pub async fn pg_empty_db() -> Option<PgDb> {
    let required = std::env::var("REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
    let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
        assert!(
            !required,
            "REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is unset"
        );
        eprintln!("skipping the postgres half: TEST_DATABASE_URL is unset");
        return None;
    };
    let name = unique_name("rqs_test");
    let mut admin = match sqlx::PgConnection::connect(&admin_url).await {
        Ok(c) => c,
        Err(e) if !required => {
            eprintln!("skipping the postgres half: cannot reach TEST_DATABASE_URL: {e}");
            return None;
        }
        Err(e) => panic!("REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is unreachable: {e}"),
    };
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("CREATE DATABASE");
    let _ = admin.close().await;
    Some(PgDb { admin_url, name })
}

/// `url` pointing at database `name` instead.
pub fn database_url(url: &str, name: &str) -> String {
    let mut u = url::Url::parse(url).expect("TEST_DATABASE_URL is a url");
    u.set_path(&format!("/{name}"));
    u.to_string()
}

/// A database name no other test (in this or another process) uses.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = rtc_quality_sync::clock::system_now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The ledger as one row per window of a stream, as people read it: the stream's label for its key,
/// and the points of every indicator the window asked summed into one row (`indicator` is `*`).
pub async fn windows(store: &Store) -> Vec<rtc_quality_sync::domain::LedgerEntry> {
    let labels: std::collections::HashMap<String, String> =
        store.stream_labels().await.unwrap().into_iter().collect();
    let mut out: Vec<rtc_quality_sync::domain::LedgerEntry> = Vec::new();
    for e in store.ledger(None).await.unwrap() {
        let label = labels
            .get(&*e.stream)
            .cloned()
            .unwrap_or(e.stream.to_string());
        match out
            .iter_mut()
            .find(|o| *o.stream == *label && o.window == e.window && o.state == e.state)
        {
            Some(o) => o.points += e.points,
            None => out.push(rtc_quality_sync::domain::LedgerEntry {
                stream: label.into(),
                indicator: "*".into(),
                ..e
            }),
        }
    }
    out
}

/// Builds the database at `url` (a fresh SQLite file or an empty PostgreSQL database) as the
/// version before `version` left it: the migrations before `version` (`"0005"` runs `0001` to
/// `0004`), then `statements`, its rows. `absent`, a table or view that `version` adds, must not
/// exist yet: the database really is that old. The store's own migrations then upgrade it.
pub async fn database_before(url: &str, version: &str, statements: &[&str], absent: &str) {
    let sqlite = url.starts_with("sqlite:");
    let migrations = tempfile::tempdir().unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(if sqlite { "sqlite" } else { "postgres" });
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name.as_str() < version {
            std::fs::copy(&path, migrations.path().join(&name)).unwrap();
        }
    }
    let migrator = sqlx::migrate::Migrator::new(migrations.path())
        .await
        .unwrap();
    let last = migrator.iter().last().map(|m| m.version);
    assert_eq!(
        last,
        Some(version.parse::<i64>().unwrap() - 1),
        "the migrations before {version}"
    );
    let count = if sqlite {
        format!("SELECT count(*) FROM sqlite_master WHERE name = '{absent}'")
    } else {
        format!("SELECT count(*) FROM pg_class WHERE relname = '{absent}'")
    };
    // The same steps on either backend's pool.
    macro_rules! build {
        ($pool:expr) => {{
            let pool = $pool;
            migrator.run(&pool).await.unwrap();
            for sql in statements {
                sqlx::query(sql).execute(&pool).await.unwrap();
            }
            let has: i64 = sqlx::query_scalar(&count).fetch_one(&pool).await.unwrap();
            assert_eq!(has, 0, "{absent} exists before {version}");
            pool.close().await;
        }};
    }
    if sqlite {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(url.trim_start_matches("sqlite://"))
            .create_if_missing(true)
            .foreign_keys(true);
        build!(sqlx::SqlitePool::connect_with(options).await.unwrap());
    } else {
        build!(sqlx::PgPool::connect(url).await.unwrap());
    }
}

/// Runs the binary's `sync --quiet` on `config` into `db_url` at `now`, signed with the simulator's
/// demo pair; returns it running (killed if dropped), its stderr piped.
pub fn spawn_sync(
    config: &std::path::Path,
    db_url: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_rtc-quality-sync"))
        .args(["sync", "--quiet", "--config"])
        .arg(config)
        .args(["--database-url", db_url, "--now", &now.to_rfc3339()])
        .env(
            "VOLC_ACCESSKEY",
            rtc_quality_sync::simulator::DEMO_ACCESS_KEY,
        )
        .env(
            "VOLC_SECRETKEY",
            rtc_quality_sync::simulator::DEMO_SECRET_KEY,
        )
        .env_remove("VOLCENGINE_ACCESS_KEY")
        .env_remove("VOLCENGINE_SECRET_KEY")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts")
}
