//! Issue 19 item 1: every scheduling recipe of the README runs its `status --check` against the same
//! configuration and environment as its `sync`. Each recipe's commands are taken from the README as
//! written and run the way the scheduler runs them: cron's `sh -c` with a minimal environment,
//! systemd's `EnvironmentFile`, the CronJobs' Secret and ConfigMap, the compose service's
//! environment. A check that looked at another database would find none and exit 1.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rtc_quality_sync::simulator;

const BIN: &str = env!("CARGO_BIN_EXE_rtc-quality-sync");

/// The README's fenced blocks of `kind` (`cron`, `ini`, `yaml`, `sh`) in the section `heading`.
fn blocks(heading: &str, kind: &str) -> Vec<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("README has no section {heading}"));
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    let mut out = Vec::new();
    let mut rest = section;
    let fence = format!("```{kind}\n");
    while let Some(i) = rest.find(&fence) {
        let body = &rest[i + fence.len()..];
        let end = body.find("```").unwrap();
        out.push(body[..end].to_string());
        rest = &body[end..];
    }
    out
}

/// A machine as the recipes assume it: the config, the env file, the state and log directories in a
/// temp dir, and a simulator standing in for the API.
struct Machine {
    dir: tempfile::TempDir,
    sim: simulator::SimulatorHandle,
}

impl Machine {
    async fn new() -> Machine {
        let sim = crate::cli::fast_simulator(0).await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.toml"),
            format!(
                "[source]\nendpoint = \"{}\"\nrequests_per_second = 50\n\n[[jobs]]\nname = \"lobby\"\n\
                 app_id = \"app_a\"\nindicators = [\"stall_rate\"]\n",
                sim.endpoint()
            ),
        )
        .unwrap();
        Machine { dir, sim }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The variables the recipes keep in their env file or Secret: the keys and a database.
    fn secrets(&self, database: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("VOLC_ACCESSKEY".into(), simulator::DEMO_ACCESS_KEY.into()),
            ("VOLC_SECRETKEY".into(), simulator::DEMO_SECRET_KEY.into()),
            (
                "DATABASE_URL".into(),
                format!("sqlite://{}", self.path(database).display()),
            ),
        ])
    }

    fn write_env_file(&self, database: &str) -> PathBuf {
        let path = self.path("env");
        let text: String = self
            .secrets(database)
            .iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The recipe's absolute paths mapped into the temp dir.
    fn localize(&self, text: &str) -> String {
        let d = self.dir.path().display().to_string();
        text.replace("/usr/local/bin/rtc-quality-sync", BIN)
            .replace("/etc/rtc-quality-sync/env", &format!("{d}/env"))
            .replace(
                "/etc/rtc-quality-sync/config.toml",
                &format!("{d}/config.toml"),
            )
            .replace("/var/lib/rtc-quality-sync/", &format!("{d}/"))
            .replace("/var/lib/node_exporter/textfile/", &format!("{d}/"))
            .replace("/var/log/", &format!("{d}/"))
            .replace("/tmp/rtc-check.txt", &format!("{d}/check.txt"))
    }

    /// Runs `command` as a scheduler would: `sh -c`, in `/`, with only `env`.
    async fn sh(&self, command: &str, env: &BTreeMap<String, String>) -> (i32, String) {
        let out = tokio::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .current_dir("/")
            .env_clear()
            .envs(env)
            .output()
            .await
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }
}

/// cron's environment: no variables of the user's shell.
fn cron_env(home: &Path) -> BTreeMap<String, String> {
    let mut env = harness();
    env.extend([
        ("PATH".into(), "/usr/bin:/bin".into()),
        ("SHELL".into(), "/bin/sh".into()),
        ("HOME".into(), home.display().to_string()),
    ]);
    env
}

/// What the test harness itself puts in the environment and every process must keep: libfaketime's
/// variables, when CI runs the suite at another hour (the simulator in this process is on that
/// clock, and a child on another one would sign requests from the wrong time).
fn harness() -> BTreeMap<String, String> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("FAKETIME") || k == "LD_PRELOAD")
        .collect()
}

#[tokio::test]
async fn item_01_the_cron_recipe_checks_the_database_it_synced() {
    let m = Machine::new().await;
    m.write_env_file("cron.db");
    let block = blocks("Scheduling", "cron").remove(0);
    let lines: Vec<&str> = block
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    let command = |word: &str| {
        let line = lines
            .iter()
            .find(|l| l.contains(word))
            .unwrap_or_else(|| panic!("no {word} line in {block}"));
        // Five schedule fields, then the command cron hands to sh.
        let fields: Vec<&str> = line.splitn(6, char::is_whitespace).collect();
        m.localize(fields[5].trim())
    };
    let env = cron_env(m.dir.path());
    let (code, out) = m.sh(&command(" sync "), &env).await;
    assert_eq!(code, 0, "{out}");
    // Healthy: cron mails nothing, because the check printed nothing.
    let (code, out) = m.sh(&command("status --check"), &env).await;
    assert_eq!(
        (code, out.as_str()),
        (0, ""),
        "the check found another database"
    );
    assert!(m.path("cron.db").exists());
    m.sim.shutdown().await;
}

/// `Key=value` lines of one `[Service]` section.
fn service_setting(unit: &str, key: &str) -> String {
    unit.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {unit}"))
        .to_string()
}

/// systemd's `EnvironmentFile`: `KEY=value` lines.
fn environment_file(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn item_01_the_systemd_recipe_checks_the_database_it_synced() {
    let m = Machine::new().await;
    m.write_env_file("systemd.db");
    let units = blocks("Scheduling", "ini");
    let unit = |name: &str| {
        units
            .iter()
            .find(|u| u.contains(name))
            .unwrap_or_else(|| panic!("no unit {name}"))
            .clone()
    };
    let service = unit("/etc/systemd/system/rtc-quality-sync.service");
    let alert = unit("/etc/systemd/system/rtc-quality-sync-alert.service");
    for u in [&service, &alert] {
        assert_eq!(
            service_setting(u, "EnvironmentFile"),
            "/etc/rtc-quality-sync/env",
            "the check's unit loads the sync's environment"
        );
    }
    let mut env = harness();
    env.extend(environment_file(Path::new(
        &m.localize(&service_setting(&service, "EnvironmentFile")),
    )));
    env.insert("PATH".into(), "/usr/bin:/bin".into());
    let (code, out) = m
        .sh(&m.localize(&service_setting(&service, "ExecStart")), &env)
        .await;
    assert_eq!(code, 0, "{out}");
    // The alert unit's check, its mail replaced by printing what would be mailed.
    let exec = service_setting(&alert, "ExecStart");
    let inner = exec
        .strip_prefix("/bin/sh -c '")
        .and_then(|e| e.strip_suffix('\''))
        .unwrap();
    let mail = inner.find("| mail ").expect("the check is mailed");
    let check = format!("{} | cat", &inner[..mail]);
    let (code, out) = m.sh(&m.localize(&check), &env).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("ok: every configured stream is healthy\n"),
        "{out}"
    );
    m.sim.shutdown().await;
}

#[tokio::test]
async fn item_01_the_kubernetes_recipe_checks_the_database_it_synced() {
    let m = Machine::new().await;
    let secret = m.secrets("k8s.db");
    let yaml = blocks("Scheduling", "yaml").remove(0);
    let jobs: Vec<serde_norway::Value> = yaml
        .split("\n---\n")
        .map(|doc| serde_norway::from_str(doc).unwrap())
        .collect();
    let container = |job: &serde_norway::Value| {
        job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0].clone()
    };
    let run = async |job: &serde_norway::Value| {
        let c = container(job);
        // Each variable from the Secret the recipe names.
        let mut env = harness();
        env.extend(c["env"].as_sequence().unwrap().iter().map(|e| {
            let key = e["valueFrom"]["secretKeyRef"]["key"].as_str().unwrap();
            (e["name"].as_str().unwrap().to_string(), secret[key].clone())
        }));
        let args: Vec<String> = c["args"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| m.localize(a.as_str().unwrap()))
            .collect();
        let out = tokio::process::Command::new(BIN)
            .args(&args)
            .current_dir("/")
            .env_clear()
            .envs(&env)
            .output()
            .await
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
            c,
        )
    };
    assert_eq!(jobs.len(), 2, "a sync CronJob and a check CronJob");
    let (code, out, sync) = run(&jobs[0]).await;
    assert_eq!(code, 0, "{out}");
    let (code, out, check) = run(&jobs[1]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("every configured stream is healthy"), "{out}");
    // The same Secret variables and the same ConfigMap mount.
    assert_eq!(sync["env"], check["env"]);
    assert_eq!(sync["volumeMounts"], check["volumeMounts"]);
    m.sim.shutdown().await;
}

#[tokio::test]
async fn item_01_the_compose_recipe_checks_the_database_it_synced() {
    let m = Machine::new().await;
    let lines = blocks("Docker compose", "sh").remove(0);
    let check = lines
        .lines()
        .find(|l| l.contains("status --check"))
        .expect("a compose check line");
    // `docker compose run --rm sync ARGS`: the `sync` service, its environment, ARGS for its command.
    let words: Vec<&str> = check
        .split('#')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(&words[..4], ["docker", "compose", "run", "--rm"]);
    assert_eq!(words[4], "sync", "the check runs in the sync service");
    let compose: serde_norway::Value = serde_norway::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml"))
            .unwrap(),
    )
    .unwrap();
    let service = &compose["services"]["sync"];
    let secrets = m.secrets("compose.db");
    // The service's environment, `${VAR:-}` from the host's, and its database (a host name only the
    // compose network knows) in place of PostgreSQL.
    let mut env = harness();
    env.extend(
        service["environment"]
            .as_mapping()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                let k = k.as_str().unwrap().to_string();
                let v = v.as_str().unwrap();
                let v = if k == "DATABASE_URL" {
                    assert!(v.contains("@postgres:5432/"), "{v}");
                    secrets["DATABASE_URL"].clone()
                } else if let Some(var) = v.strip_prefix("${").and_then(|v| v.split(':').next()) {
                    secrets[var].clone()
                } else {
                    v.to_string()
                };
                (k, v)
            }),
    );
    // The image's working directory is /app, with ./config mounted at /app/config.
    let app = m.path("app");
    std::fs::create_dir_all(app.join("config")).unwrap();
    std::fs::copy(m.path("config.toml"), app.join("config/default.toml")).unwrap();
    let run = async |args: &[&str]| {
        let out = tokio::process::Command::new(BIN)
            .args(args)
            .current_dir(&app)
            .env_clear()
            .envs(&env)
            .output()
            .await
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let command: Vec<&str> = service["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let (code, out) = run(&command).await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(&words[5..]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("every configured stream is healthy"), "{out}");
    m.sim.shutdown().await;
}
