//! Pipeline benchmark: a 30-day 5-minute backfill of 20 streams against the simulator at the
//! documented 2 calls/s with 300 ms latency, run as the real binary.
//!
//! Prints calls made vs the plan's minimum, achieved calls/s vs the limit, throttled responses and
//! the sync process's peak memory, then one summary line:
//! `pipeline calls=100 min_calls=100 rate_ratio=0.97 throttled=0 peak_rss_mib=41`.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rtc_quality_sync::config::Settings;
use rtc_quality_sync::planner;
use rtc_quality_sync::simulator::{self, SimulatorConfig};

const STREAMS: usize = 20;

fn config_text(endpoint: &str) -> String {
    let mut text = format!(
        "[source]\nendpoint = \"{endpoint}\"\nrequests_per_second = 2.0\nmax_in_flight = 4\n"
    );
    for i in 0..STREAMS {
        text.push_str(&format!(
            "[[jobs]]\nname = \"bench-{i}\"\napp_id = \"bench_app_{i}\"\n\
             indicators = [\"join_room_success_rate\", \"stall_rate\", \"first_frame_send_success_rate\"]\n\
             granularity = \"5min\"\n"
        ));
    }
    text
}

/// The high-water mark of a process's resident memory, in KiB, from /proc.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    rt.block_on(async {
        let now: DateTime<Utc> = rtc_quality_sync::clock::now();
        let sim = simulator::spawn(SimulatorConfig {
            latency: Duration::from_millis(300),
            rate_limit_per_sec: 2,
            ..Default::default()
        })
        .await
        .expect("the simulator starts");
        sim.set_data_now(now);

        let dir = tempfile::tempdir().expect("a temp dir");
        let config = dir.path().join("bench.toml");
        let text = config_text(&sim.endpoint());
        std::fs::write(&config, &text).unwrap();
        let settings = Settings::parse(&text, Path::new("bench.toml")).unwrap();
        let min_calls = planner::plan(&settings.window, &settings.streams(), &[], now, Default::default())
            .unwrap()
            .request_count();

        let db = dir.path().join("bench.db");
        let started = Instant::now();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rtc-quality-sync"))
            .args(["sync", "--quiet", "--config"])
            .arg(&config)
            .arg("--database-url")
            .arg(format!("sqlite://{}", db.display()))
            .args(["--now", &now.to_rfc3339()])
            .env("VOLC_ACCESSKEY", simulator::DEMO_ACCESS_KEY)
            .env("VOLC_SECRETKEY", simulator::DEMO_SECRET_KEY)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let pid = child.id();
        let mut peak_kib = 0;
        let status = loop {
            if let Some(k) = vm_hwm_kib(pid) {
                peak_kib = peak_kib.max(k);
            }
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let elapsed = started.elapsed();
        let out = child.wait_with_output().unwrap();
        assert!(status.success(), "sync failed: {status}");
        print!("{}", String::from_utf8_lossy(&out.stdout));

        let log = sim.requests();
        let calls = log.len();
        let throttled = log.iter().filter(|r| r.status == 429).count();
        let span = (log.last().unwrap().at - log.first().unwrap().at).num_milliseconds() as f64 / 1000.0;
        let rate = (calls - 1) as f64 / span;
        let rate_ratio = rate / 2.0;
        let mut max_in_second = 0;
        for (i, r) in log.iter().enumerate() {
            let n = log[i..]
                .iter()
                .take_while(|u| u.at - r.at < chrono::Duration::seconds(1))
                .count();
            max_in_second = max_in_second.max(n);
        }
        println!(
            "{STREAMS} streams, 5-minute backfill of 30 days: {calls} calls (plan minimum {min_calls}) in {:.1} s, \
             {rate:.3} calls/s (limit 2), at most {max_in_second} calls in any second, {throttled} throttled, \
             peak RSS of the sync process {:.1} MiB",
            elapsed.as_secs_f64(),
            peak_kib as f64 / 1024.0
        );
        println!(
            "pipeline calls={calls} min_calls={min_calls} rate_ratio={rate_ratio:.3} throttled={throttled} peak_rss_mib={}",
            (peak_kib as f64 / 1024.0).round() as u64
        );
        sim.shutdown().await;
    });
}
