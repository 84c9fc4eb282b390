//! Helpers for driving the simulator over real HTTP: a test-side signer and a reader for its answers.
//!
//! The project's own client is built on another branch; these tests sign with `api::sign` directly, so
//! that they exercise the simulator's checks and nothing else.

use chrono::{DateTime, Utc};
use rtc_quality_sync::api::sign::{self, SignInput};
use rtc_quality_sync::api::wire::{Envelope, ListQualityRequest, ListQualityResult};
use rtc_quality_sync::simulator::{
    self, DEMO_ACCESS_KEY, DEMO_SECRET_KEY, SimulatorConfig, SimulatorHandle,
};

/// A fixed "now" for the data, so that the tests do not depend on the day they run.
pub fn data_now() -> DateTime<Utc> {
    "2026-03-10T12:00:00Z".parse().unwrap()
}

/// The default simulator with a fixed data clock and a rate limit high enough not to get in the way.
pub fn config() -> SimulatorConfig {
    SimulatorConfig {
        data_now: Some(data_now()),
        rate_limit_per_sec: 1000,
        ..SimulatorConfig::default()
    }
}

pub async fn start(config: SimulatorConfig) -> SimulatorHandle {
    simulator::spawn(config)
        .await
        .expect("the simulator starts")
}

/// A ListQuality body.
pub fn body(app: &str, start: &str, end: &str, indicators: &[&str], granularity: &str) -> Vec<u8> {
    serde_json::to_vec(&ListQualityRequest {
        app_id: app.into(),
        start_time: start.into(),
        end_time: end.into(),
        indicator: indicators.iter().map(|s| s.to_string()).collect(),
        aggregate_granularity: granularity.into(),
        product_type: None,
        os: vec![],
        access: vec![],
        room_id: None,
        user_id: vec![],
    })
    .unwrap()
}

/// One request, signed the way the official SDK signs it.
#[derive(Clone)]
pub struct Call {
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
    pub region: String,
    /// Signed and sent (as the canonical query).
    pub query: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub x_date: DateTime<Utc>,
}

impl Call {
    pub fn new(body: Vec<u8>) -> Self {
        Call {
            access_key: DEMO_ACCESS_KEY.into(),
            secret_key: DEMO_SECRET_KEY.into(),
            session_token: None,
            region: "cn-north-1".into(),
            query: vec![
                ("Action".into(), "ListQuality".into()),
                ("Version".into(), "2020-12-01".into()),
            ],
            body,
            x_date: rtc_quality_sync::clock::now(),
        }
    }

    /// The headers the SDK would send to `host`.
    pub fn signed_headers(&self, host: &str) -> Vec<(String, String)> {
        let x_date = self.x_date.format("%Y%m%dT%H%M%SZ").to_string();
        let s = sign::sign(
            &SignInput {
                method: "POST",
                host,
                path: "/",
                query: &self.query,
                body: &self.body,
                content_type: Some("application/json"),
                x_date: &x_date,
                region: &self.region,
                service: "rtc",
                session_token: self.session_token.as_deref(),
            },
            &self.access_key,
            &self.secret_key,
        );
        let mut h = vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            ("X-Date".to_string(), x_date),
            ("X-Content-Sha256".to_string(), s.body_sha256),
            ("Authorization".to_string(), s.authorization),
        ];
        if let Some(t) = &self.session_token {
            h.push(("X-Security-Token".to_string(), t.clone()));
        }
        h
    }

    /// Signs and sends.
    pub async fn send(&self, sim: &SimulatorHandle) -> Answer {
        let headers = self.signed_headers(&sim.addr().to_string());
        send_raw(sim, &self.query, headers, self.body.clone()).await
    }

    /// Sends the signed request with a different body than the one signed.
    pub async fn send_with_body(&self, sim: &SimulatorHandle, body: Vec<u8>) -> Answer {
        let headers = self.signed_headers(&sim.addr().to_string());
        send_raw(sim, &self.query, headers, body).await
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap()
}

/// POSTs exactly these headers and body to the simulator; the query is sent in canonical form.
pub async fn send_raw(
    sim: &SimulatorHandle,
    query: &[(String, String)],
    headers: Vec<(String, String)>,
    body: Vec<u8>,
) -> Answer {
    let url = format!("{}/?{}", sim.endpoint(), sign::canonical_query(query));
    let mut req = client().post(url);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req.body(body).send().await.expect("the simulator answers");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("the body arrives");
    Answer { status, text }
}

/// An answer: its status and body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub text: String,
}

impl Answer {
    pub fn envelope(&self) -> Envelope<ListQualityResult> {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not an envelope ({e}): {}", self.text))
    }

    /// The result of a successful call; panics on an error.
    pub fn result(&self) -> ListQualityResult {
        let env = self.envelope();
        assert_eq!(env.response_metadata.error, None, "{}", self.text);
        assert_eq!(self.status, 200, "{}", self.text);
        env.result.expect("a result")
    }
}

/// Every (name, time stamp, value) of a result, value `None` for a null one.
pub fn points(r: &ListQualityResult) -> Vec<(String, String, Option<f64>)> {
    let mut v: Vec<_> = r
        .indicators
        .iter()
        .flat_map(|i| {
            i.data
                .iter()
                .map(|d| (i.name.clone(), d.time_stamp.clone(), d.value))
        })
        .collect();
    v.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    v
}
