//! Domain types shared by the pipeline stages: jobs and streams, granularities, windows, series, points,
//! ledger rows and runs.
//!
//! These are what the stages speak to each other. The API's wire types live in `api::wire` and the
//! database's rows in `store`; both convert to and from these.

use std::fmt;

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

/// The bucket size of a stream: one of the two the API offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Granularity {
    #[serde(rename = "1d")]
    Day,
    #[serde(rename = "5min")]
    FiveMin,
}

impl Granularity {
    /// The spelling the API and the tables use: `1d` or `5min`.
    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Day => "1d",
            Granularity::FiveMin => "5min",
        }
    }

    /// The bucket length in seconds.
    pub fn seconds(self) -> i64 {
        match self {
            Granularity::Day => 86_400,
            Granularity::FiveMin => 300,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "1d" => Some(Granularity::Day),
            "5min" => Some(Granularity::FiveMin),
            _ => None,
        }
    }
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A half-open time range `[start, end)`, fetched with one API call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        debug_assert!(start < end, "a window must not be empty");
        Window { start, end }
    }

    /// Whether a bucket starting at `ts` belongs to this window.
    pub fn contains(&self, ts: DateTime<Utc>) -> bool {
        self.start <= ts && ts < self.end
    }

    pub fn duration(&self) -> chrono::Duration {
        self.end - self.start
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}, {})",
            self.start.format("%Y-%m-%dT%H:%M:%SZ"),
            self.end.format("%Y-%m-%dT%H:%M:%SZ")
        )
    }
}

/// Everything a point is unique by except its bucket start.
///
/// The filter fields are stored as comma lists sorted by byte order, `''` for none, exactly as
/// PRODUCT.md's `quality_metrics` lists them. A `ListQualityDistribution` series has a non-empty
/// `dimension` and is shown in `quality_distribution` instead (see [`SeriesKey::distribution`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    pub app_id: String,
    /// `''` = the whole app.
    pub room_id: String,
    /// The `Name` the API returned, never the requested indicator.
    pub indicator: String,
    pub granularity: Granularity,
    pub product_type: String,
    pub os: String,
    pub access: String,
    pub user_ids: String,
    /// `''` for a `ListQuality` series; for a `ListQualityDistribution` series what it groups by
    /// (`Province`, `Country`, `OS` or `Access`, [`Dimension::as_str`]).
    pub dimension: String,
    /// `''` for a `ListQuality` series; the dimension's value as the API returned it (e.g. `广东`).
    pub dimension_value: String,
    /// The offset of a `1d` (or distribution) series' day grid, e.g. `+08:00`: part of its identity,
    /// so a changed `window.timezone` makes new series beside the old grid's. `''` for `5min`,
    /// whose grid is the same in every offset the configuration allows.
    pub grid_timezone: String,
}

impl SeriesKey {
    /// The key of a `ListQualityDistribution` series: one returned `Name` and one value of one
    /// dimension, per day (`1d`); room, filters and users do not apply and are `''`.
    pub fn distribution(
        app_id: &str,
        product_type: &str,
        indicator: &str,
        dimension: Dimension,
        dimension_value: &str,
        timezone: FixedOffset,
    ) -> SeriesKey {
        SeriesKey {
            app_id: app_id.to_string(),
            room_id: String::new(),
            indicator: indicator.to_string(),
            granularity: Granularity::Day,
            product_type: product_type.to_string(),
            os: String::new(),
            access: String::new(),
            user_ids: String::new(),
            dimension: dimension.as_str().to_string(),
            dimension_value: dimension_value.to_string(),
            grid_timezone: offset_text(timezone),
        }
    }

    /// Whether this is a `ListQualityDistribution` series (shown in `quality_distribution`).
    pub fn is_distribution(&self) -> bool {
        !self.dimension.is_empty()
    }
}

/// One value of one series: the bucket that starts at `ts`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub ts: DateTime<Utc>,
    /// Always finite; a bucket without traffic is not a point.
    pub value: f64,
}

/// The points of one series inside one window.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesPoints {
    pub key: SeriesKey,
    /// The `Unit` the API returned (e.g. `%`).
    pub unit: String,
    pub points: Vec<Point>,
}

/// What a ledger row says about a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowState {
    /// Fetched at least `settle_hours` after its end: its values are final.
    Settled,
    /// Fetched too early to be final: the next run fetches it again.
    Provisional,
    /// The last attempt failed; the next run tries again.
    Failed,
    /// Marked by `sync --refetch` before its first call: fetched again by every run until a
    /// successful fetch of the window supersedes it, so an interrupted refetch is finished.
    Refetch,
}

impl WindowState {
    pub fn as_str(self) -> &'static str {
        match self {
            WindowState::Settled => "settled",
            WindowState::Provisional => "provisional",
            WindowState::Failed => "failed",
            WindowState::Refetch => "refetch",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "settled" => Some(WindowState::Settled),
            "provisional" => Some(WindowState::Provisional),
            "failed" => Some(WindowState::Failed),
            "refetch" => Some(WindowState::Refetch),
            _ => None,
        }
    }
}

/// One row of the checkpoint ledger: what happened to one fetched window of one stream, for one of
/// the indicators the call asked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LedgerEntry {
    /// The stream's identity, [`Stream::key`]: what it asks, not its name.
    pub stream: std::sync::Arc<str>,
    /// The requested indicator this row covers.
    pub indicator: String,
    pub window: Window,
    pub state: WindowState,
    /// Points of this indicator stored for this window (0 for a failed one).
    pub points: i64,
    /// How many calls this window has cost, counting every run.
    pub attempts: i64,
    pub last_error: Option<String>,
    /// The API's RequestId of the last response, when there was one.
    pub request_id: Option<String>,
    pub fetched_at: DateTime<Utc>,
}

/// A window whose fetch failed, as its `failed` ledger row records it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FailedWindow<'a> {
    /// The stream's identity, [`Stream::key`].
    pub stream: &'a str,
    /// The indicators the failed call asked: each gets its `failed` row.
    pub indicators: &'a [String],
    pub window: Window,
    /// The error as the user should read it.
    pub error: &'a str,
    /// The API's RequestId of the last response, when there was one.
    pub request_id: Option<&'a str>,
    /// How many calls this window has cost, counting every run.
    pub attempts: i64,
    pub fetched_at: DateTime<Utc>,
}

/// A fetched window, ready to be committed in one transaction with its ledger rows: the points of
/// the indicators it asked replace what is stored for them inside the window.
#[derive(Debug, Clone)]
pub struct WindowBatch {
    /// The stream's identity, [`Stream::key`].
    pub stream: String,
    /// The indicators the call asked: each gets its ledger rows, counting the points whose returned
    /// name it owns ([`owning_indicator`] among [`WindowBatch::owners`]).
    pub indicators: Vec<String>,
    /// Every indicator the stream asks: a returned name belongs to the one of these it contains
    /// (the longest), and only names owned by an asked indicator are replaced.
    pub owners: Vec<String>,
    pub window: Window,
    /// Buckets that start before this instant are settled (their values are final), the rest are
    /// provisional: the window's ledger gets a settled row for `[start, cut)` and a provisional
    /// one for `[cut, end)`, each only if not empty. Clamped to the window.
    pub settled_until: DateTime<Utc>,
    /// What every stored series of the stream's query shares: a [`SeriesKey`] whose `indicator`
    /// and `dimension_value` are ignored. The stored series in this scope whose names an asked
    /// indicator owns lose the points inside the window that the answer no longer has.
    pub scope: SeriesKey,
    /// The configured offset (`+08:00`), shown with new series and every `5min` one.
    pub timezone: String,
    pub series: Vec<SeriesPoints>,
    pub attempts: i64,
    pub request_id: Option<String>,
    pub fetched_at: DateTime<Utc>,
}

impl WindowBatch {
    pub fn point_count(&self) -> usize {
        self.series.iter().map(|s| s.points.len()).sum()
    }

    /// The settle instant inside the window.
    pub fn cut(&self) -> DateTime<Utc> {
        self.settled_until.clamp(self.window.start, self.window.end)
    }

    /// The settled part, then the provisional part, each only if it is not empty.
    pub fn parts(&self) -> Vec<(Window, WindowState)> {
        let cut = self.cut();
        [
            (self.window.start, cut, WindowState::Settled),
            (cut, self.window.end, WindowState::Provisional),
        ]
        .into_iter()
        .filter(|&(start, end, _)| start < end)
        .map(|(start, end, state)| (Window { start, end }, state))
        .collect()
    }
}

/// Windows a run did not fetch because a cap or a daily budget said so (PRODUCT.md, "deferred"):
/// not failed, planned again by the next run. Kept per stream for the last run that ran it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Deferred {
    pub windows: u64,
    /// Why, in plain words: `max_room_calls_per_run`, `daily budget of account two`; `None` when
    /// nothing was deferred.
    pub reason: Option<String>,
}

impl Deferred {
    /// What `block`'s cap deferred: `windows` of them.
    pub fn by_room_cap(windows: u64) -> Deferred {
        Deferred {
            windows,
            reason: (windows > 0).then(|| "max_room_calls_per_run".to_string()),
        }
    }

    /// Adds `other`'s windows; the reasons are kept once each, in the order met.
    pub fn add(&mut self, other: &Deferred) {
        self.windows += other.windows;
        if let Some(r) = &other.reason {
            match &mut self.reason {
                Some(mine) if mine.split(", ").any(|m| m == r) => {}
                Some(mine) => *mine = format!("{mine}, {r}"),
                None => self.reason = Some(r.clone()),
            }
        }
    }
}

impl fmt::Display for Deferred {
    /// `3 windows deferred (max_room_calls_per_run)`, as `status` says it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.windows == 1 { "" } else { "s" };
        write!(f, "{} window{s} deferred", self.windows)?;
        match &self.reason {
            Some(r) => write!(f, " ({r})"),
            None => Ok(()),
        }
    }
}

/// What an upsert did, point by point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WriteCounts {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Stored points that a fetched window no longer has (null or absent): deleted.
    pub deleted: u64,
}

impl std::ops::AddAssign for WriteCounts {
    fn add_assign(&mut self, o: Self) {
        self.inserted += o.inserted;
        self.updated += o.updated;
        self.unchanged += o.unchanged;
        self.deleted += o.deleted;
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Ok,
    Partial,
    Failed,
    Interrupted,
    /// The run died without finishing (killed, crashed, its machine lost); the next run that took
    /// the lock found it still `running` and marked it so.
    Abandoned,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Ok => "ok",
            RunStatus::Partial => "partial",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Abandoned => "abandoned",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "running" => Some(RunStatus::Running),
            "ok" => Some(RunStatus::Ok),
            "partial" => Some(RunStatus::Partial),
            "failed" => Some(RunStatus::Failed),
            "interrupted" => Some(RunStatus::Interrupted),
            "abandoned" => Some(RunStatus::Abandoned),
            _ => None,
        }
    }
}

/// One row of the runs table: a run's counts, written when it ends.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunCounts {
    pub requests: u64,
    pub retries: u64,
    pub throttled: u64,
    pub points: WriteCounts,
    pub windows_ok: u64,
    pub windows_failed: u64,
}

/// `native` (the SDKs for android, iOS, linux, mac, windows) or `web`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProductType {
    Native,
    Web,
}

impl ProductType {
    pub fn as_str(self) -> &'static str {
        match self {
            ProductType::Native => "native",
            ProductType::Web => "web",
        }
    }
}

/// What `ListQualityDistribution` groups by (volc-openapi.md section 5): `Province` (first-level
/// divisions, HK/MO/TW included), `Country`, device `OS` or network `Access`. Spelled as the API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Dimension {
    Province,
    Country,
    #[serde(rename = "OS")]
    Os,
    Access,
}

impl Dimension {
    /// The four, in the order PRODUCT.md lists them (the configuration's default).
    pub const ALL: [Dimension; 4] = [
        Dimension::Province,
        Dimension::Country,
        Dimension::Os,
        Dimension::Access,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Province => "Province",
            Dimension::Country => "Country",
            Dimension::Os => "OS",
            Dimension::Access => "Access",
        }
    }

    /// Exactly the API's spelling; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        Dimension::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One configured query. Filters are normalized: sorted by byte order, deduplicated,
/// and `os`/`access` emptied for `web` (the API ignores them there).
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub name: String,
    pub app_id: String,
    pub indicators: Vec<String>,
    pub granularities: Vec<Granularity>,
    pub product_type: ProductType,
    pub os: Vec<String>,
    pub access: Vec<String>,
    /// Empty: the whole app.
    pub room_id: String,
    pub user_ids: Vec<String>,
}

/// A job at one granularity: the unit that plans and checkpoints are kept for.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    /// `<job name>/<granularity>`: a label for people, not the ledger's key.
    pub name: String,
    /// What the stream asks, as the ledger keys it ([`Stream::key_of`]): renaming a job keeps it,
    /// changing its app, room, users, product type, os, access or granularity makes a new stream.
    pub key: String,
    pub job: Job,
    pub granularity: Granularity,
    /// Set for a `ListQualityDistribution` stream: one indicator (`job.indicators[0]`) by one
    /// dimension, fetched one local day per call.
    pub distribution: Option<Distribution>,
    /// `window.timezone`: the grid of a `1d` or distribution stream (part of its key), and the
    /// offset its request times are written in.
    pub timezone: FixedOffset,
    /// The labels of other configured streams that ask exactly this query (rule 6): planned as one
    /// with this stream, under its label, which is the first in configuration order.
    pub aliases: Vec<String>,
    /// Set for a `[[rooms]]` block's room stream: planned over its calls' buckets only.
    pub room: Option<RoomNeeds>,
}

/// What makes a stream a `[[rooms]]` block's room stream (PRODUCT.md, "Room streams"): its block,
/// the peak users of its room's qualifying calls (the order rooms are fetched in), and the buckets
/// those calls cover.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomNeeds {
    pub block: String,
    pub peak_users: i64,
    /// Ordered, disjoint, whole buckets.
    pub needs: Vec<Window>,
}

/// What a distribution stream asks beyond its app, product type and indicator.
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    pub dimension: Dimension,
    /// Sent only when not empty.
    pub platform: String,
}

/// One configured `[[rooms]]` table (PRODUCT.md, "Room streams"): an app's calls listed with
/// `ListRoomInfo` into `rtc_rooms`, and the quality of each room that had a call of at least
/// `min_active_users`.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomsBlock {
    pub name: String,
    pub app_id: String,
    pub indicators: Vec<String>,
    pub granularities: Vec<Granularity>,
    pub product_type: ProductType,
    /// Calls with fewer active users are listed but never fetched.
    pub min_active_users: i64,
    /// `ListQuality` windows of this block's rooms per run; 0: no cap.
    pub max_room_calls_per_run: u64,
}

impl RoomsBlock {
    /// What the block's discovery asks (its ledger key): the app's calls, listed by local day in
    /// `timezone`.
    pub fn listing_key(&self, timezone: FixedOffset) -> String {
        serde_json::json!({
            "api": "ListRoomInfo",
            "app_id": self.app_id,
            "timezone": offset_text(timezone),
        })
        .to_string()
    }

    /// The label of the block's discovery, `<name>/rooms`.
    pub fn listing_label(&self) -> String {
        format!("{}/rooms", self.name)
    }

    /// The block's stream of `room` at `granularity`, labelled `<name>/<room_id>/<granularity>`:
    /// the block's indicators with the room set and no user, the query of a `[[jobs]]` entry with
    /// that `room_id` (so the two share coverage, rule 6), planned over `needs`.
    pub fn room_stream(
        &self,
        room: &str,
        granularity: Granularity,
        timezone: FixedOffset,
        peak_users: i64,
        needs: Vec<Window>,
    ) -> Stream {
        let job = Job {
            name: self.name.clone(),
            app_id: self.app_id.clone(),
            indicators: self.indicators.clone(),
            granularities: vec![granularity],
            product_type: self.product_type,
            os: Vec::new(),
            access: Vec::new(),
            room_id: room.to_string(),
            user_ids: Vec::new(),
        };
        Stream {
            name: format!("{}/{room}/{}", self.name, granularity.as_str()),
            key: Stream::key_of(&job, granularity, timezone),
            job,
            granularity,
            distribution: None,
            timezone,
            aliases: Vec::new(),
            room: Some(RoomNeeds {
                block: self.name.clone(),
                peak_users,
                needs,
            }),
        }
    }

    /// The room a label of this block's room streams names, and its granularity: `None` for any
    /// other label (its listing's, another block's, a relabelled one).
    pub fn room_of_label<'a>(&self, label: &'a str) -> Option<(&'a str, Granularity)> {
        let rest = label.strip_prefix(&self.name)?.strip_prefix('/')?;
        let (room, g) = rest.rsplit_once('/')?;
        let g = Granularity::parse(g)?;
        (self.granularities.contains(&g) && !room.is_empty()).then_some((room, g))
    }
}

/// One call of an app, as `ListRoomInfo` lists it and `rtc_rooms` keeps it (one row per `CallId`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomCall {
    pub call_id: String,
    pub room_id: String,
    pub created_at: DateTime<Utc>,
    /// `None` while the call runs.
    pub destroyed_at: Option<DateTime<Utc>>,
    /// Never negative.
    pub active_user_num: i64,
    pub finished: bool,
}

/// One configured `[[distributions]]` table: an app's indicators by dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct DistributionJob {
    pub name: String,
    pub app_id: String,
    pub indicators: Vec<String>,
    pub dimensions: Vec<Dimension>,
    pub product_type: ProductType,
    /// Empty: not sent.
    pub platform: String,
}

impl DistributionJob {
    /// One stream per (indicator, dimension), labelled `<name>/<indicator>/<dimension>`, on the
    /// day grid of `timezone`.
    pub fn streams(&self, timezone: FixedOffset) -> Vec<Stream> {
        let mut out = Vec::new();
        for indicator in &self.indicators {
            for &dimension in &self.dimensions {
                let job = Job {
                    name: self.name.clone(),
                    app_id: self.app_id.clone(),
                    indicators: vec![indicator.clone()],
                    granularities: vec![Granularity::Day],
                    product_type: self.product_type,
                    os: Vec::new(),
                    access: Vec::new(),
                    room_id: String::new(),
                    user_ids: Vec::new(),
                };
                let mut key = serde_json::json!({
                    "api": "ListQualityDistribution",
                    "app_id": self.app_id,
                    "product_type": self.product_type.as_str(),
                    "platform": self.platform,
                    "indicator": indicator,
                    "dimension": dimension.as_str(),
                });
                key["timezone"] = offset_text(timezone).into();
                out.push(Stream {
                    name: format!("{}/{indicator}/{}", self.name, dimension.as_str()),
                    key: key.to_string(),
                    job,
                    granularity: Granularity::Day,
                    distribution: Some(Distribution {
                        dimension,
                        platform: self.platform.clone(),
                    }),
                    timezone,
                    aliases: Vec::new(),
                    room: None,
                });
            }
        }
        out
    }
}

/// A stream's key as [`Stream::key_of`] writes it: its fields in the order a JSON object's sorted
/// keys take, the order in which the keys have always been stored.
#[derive(Serialize)]
struct StreamKey<'a> {
    access: String,
    app_id: &'a str,
    granularity: &'a str,
    os: String,
    product_type: &'a str,
    room_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    timezone: Option<String>,
    user_ids: String,
}

impl Stream {
    /// The identity of a query at granularity `g`: a JSON object of everything a call asks except
    /// the indicators (whose coverage is kept per indicator) and the time range; for `1d`, also the
    /// offset whose midnights its buckets start at. Keys are sorted, so the text is canonical: it is
    /// the text every earlier version stored, written from [`StreamKey`] without building a map.
    pub fn key_of(job: &Job, g: Granularity, timezone: FixedOffset) -> String {
        let key = StreamKey {
            access: job.access.join(","),
            app_id: &job.app_id,
            granularity: g.as_str(),
            os: job.os.join(","),
            product_type: job.product_type.as_str(),
            room_id: &job.room_id,
            timezone: (g == Granularity::Day).then(|| offset_text(timezone)),
            user_ids: job.user_ids.join(","),
        };
        serde_json::to_string(&key).expect("strings always serialize")
    }

    /// The key a database of the version before time zones were part of a `1d` stream's identity
    /// gave this stream (`None` for `5min`, whose key did not change). Such rows are adopted as
    /// they are, under the configured offset (PRODUCT.md, rule 6).
    pub fn key_before_timezones(&self) -> Option<String> {
        if self.granularity != Granularity::Day {
            return None;
        }
        let mut key: serde_json::Value = serde_json::from_str(&self.key).ok()?;
        key.as_object_mut()?.remove("timezone")?;
        Some(key.to_string())
    }

    /// Every label this stream answers to: its own, then its aliases'.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.name.as_str()).chain(self.aliases.iter().map(String::as_str))
    }

    /// What every series this stream stores shares ([`WindowBatch::scope`]).
    pub fn scope(&self) -> SeriesKey {
        let job = &self.job;
        let grid_timezone = match self.granularity {
            Granularity::Day => offset_text(self.timezone),
            Granularity::FiveMin => String::new(),
        };
        match &self.distribution {
            Some(d) => SeriesKey::distribution(
                &job.app_id,
                job.product_type.as_str(),
                "",
                d.dimension,
                "",
                self.timezone,
            ),
            None => SeriesKey {
                app_id: job.app_id.clone(),
                room_id: job.room_id.clone(),
                indicator: String::new(),
                granularity: self.granularity,
                product_type: job.product_type.as_str().to_string(),
                os: job.os.join(","),
                access: job.access.join(","),
                user_ids: job.user_ids.join(","),
                dimension: String::new(),
                dimension_value: String::new(),
                grid_timezone,
            },
        }
    }

    /// The ledger key that a database written before coverage was kept per query gave this stream:
    /// its name. The store adopts such rows for the configured stream of that name.
    pub fn legacy_key(name: &str) -> String {
        format!("{LEGACY_PREFIX}{name}")
    }
}

/// How the ledger keys rows it adopted from a database of an earlier version (`0002` migration).
pub const LEGACY_PREFIX: &str = "legacy:";
/// The indicator of an adopted row: the call asked every indicator the job had then.
pub const EVERY_INDICATOR: &str = "*";

/// The quality indicators `volc-openapi.md` lists (a partial list: the full one is not published).
/// A configured name outside it is a warning, not an error, since the API judges; the simulator
/// answers any other name `InvalidParameter`, so a typo fails in the demo as it may for real.
pub const DOCUMENTED_INDICATORS: [&str; 5] = [
    "join_room_success_rate",
    "stall_rate",
    "first_frame_send_success_rate",
    "first_frame_recv_success_rate",
    "network_trans_delay",
];

impl Job {
    /// One stream per granularity, labelled `<name>/<granularity>`; `timezone` draws the `1d` grid.
    pub fn streams(&self, timezone: FixedOffset) -> Vec<Stream> {
        self.granularities
            .iter()
            .map(|&g| Stream {
                name: format!("{}/{}", self.name, g.as_str()),
                key: Stream::key_of(self, g, timezone),
                job: self.clone(),
                granularity: g,
                distribution: None,
                timezone,
                aliases: Vec::new(),
                room: None,
            })
            .collect()
    }
}

/// An offset as the tables show it: `+08:00`, `-05:30`, `+00:00`.
pub fn offset_text(timezone: FixedOffset) -> String {
    timezone.to_string()
}

/// The requested indicator that a returned `Name` belongs to: the one the name contains
/// (`5s_join_room_success_rate` → `join_room_success_rate`, `80ms_audio_stall_rate` → `stall_rate`).
///
/// When several requested indicators are contained in the name, the longest wins, so that a job asking
/// for both `stall_rate` and `audio_stall_rate` gets `audio_stall_rate`'s series under the more specific
/// one; of equally long ones, the first requested. `None` when the name contains none of them.
pub fn owning_indicator<'a>(name: &str, requested: &'a [String]) -> Option<&'a str> {
    let mut best: Option<&'a str> = None;
    for r in requested {
        // An empty indicator would be contained in every name; the config never has one.
        if r.is_empty() || !name.contains(r.as_str()) {
            continue;
        }
        if best.is_none_or(|b| r.len() > b.len()) {
            best = Some(r.as_str());
        }
    }
    best
}

/// Parses a UTC offset: `+08:00`, `-05:30`, `Z` or `UTC`.
pub fn parse_offset(s: &str) -> Option<FixedOffset> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("z") || s.eq_ignore_ascii_case("utc") {
        return FixedOffset::east_opt(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if h > 14 || m > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

/// The PostgreSQL schema that holds every table and view of the tool, and the migrations' own
/// table (`[storage] schema`). Only a plain identifier is accepted (ASCII letters, digits and `_`,
/// not starting with a digit, at most 63 bytes), so it can be written into a connection's
/// `search_path` and into printed SQL without escaping; it is always written double-quoted, so its
/// case is kept exactly as configured.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PgSchema(String);

impl PgSchema {
    /// The default: what every earlier version used.
    pub const PUBLIC: &'static str = "public";

    /// The schema named `name`, or what is allowed instead.
    pub fn parse(name: &str) -> Result<PgSchema, &'static str> {
        let first = name.as_bytes().first().copied();
        if name.is_empty() {
            return Err("a schema name is required; leave the key out for the default, public");
        }
        if name.len() > 63 {
            return Err("at most 63 bytes are allowed (PostgreSQL cuts longer names)");
        }
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            || first.is_some_and(|b| b.is_ascii_digit())
        {
            return Err(
                "a plain PostgreSQL identifier is expected: ASCII letters, digits and \
                        underscores, not starting with a digit, e.g. \"rtc_quality\"",
            );
        }
        // PostgreSQL reserves these for its own schemas; CREATE SCHEMA refuses the first.
        if name.to_ascii_lowercase().starts_with("pg_") || name == "information_schema" {
            return Err(
                "pg_* and information_schema are PostgreSQL's own schemas; choose another \
                        name, e.g. \"rtc_quality\"",
            );
        }
        Ok(PgSchema(name.to_string()))
    }

    pub fn public() -> PgSchema {
        PgSchema(Self::PUBLIC.to_string())
    }

    /// The name as configured.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as SQL reads it: double-quoted, so `Rtc` stays `Rtc` (unquoted PostgreSQL would
    /// fold it to `rtc`) and a keyword such as `user` is a plain name.
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }

    pub fn is_public(&self) -> bool {
        self.0 == Self::PUBLIC
    }
}

impl Default for PgSchema {
    fn default() -> Self {
        PgSchema::public()
    }
}

impl fmt::Display for PgSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn job(app: &str, room: &str, os: &[&str], access: &[&str], users: &[&str], web: bool) -> Job {
        Job {
            name: "j".into(),
            app_id: app.into(),
            indicators: names(&["stall_rate"]),
            granularities: vec![Granularity::Day],
            product_type: if web {
                ProductType::Web
            } else {
                ProductType::Native
            },
            os: names(os),
            access: names(access),
            room_id: room.into(),
            user_ids: names(users),
        }
    }

    /// A stream's key is its identity in every database: this is the text stored since keys were
    /// introduced, byte for byte.
    #[test]
    fn a_streams_key_is_the_text_databases_hold() {
        let tz = FixedOffset::east_opt(8 * 3600).unwrap();
        let j = job(
            "app1",
            "room \"1\"/ü",
            &["ios", "android"],
            &["wifi"],
            &["u1", "u2"],
            false,
        );
        assert_eq!(
            Stream::key_of(&j, Granularity::Day, tz),
            r#"{"access":"wifi","app_id":"app1","granularity":"1d","os":"ios,android","product_type":"native","room_id":"room \"1\"/ü","timezone":"+08:00","user_ids":"u1,u2"}"#
        );
        assert_eq!(
            Stream::key_of(&job("a", "", &[], &[], &[], true), Granularity::FiveMin, tz),
            r#"{"access":"","app_id":"a","granularity":"5min","os":"","product_type":"web","room_id":"","user_ids":""}"#
        );
    }

    proptest! {
        /// Whatever a job holds, its key is the JSON object of its fields with sorted keys: the
        /// text the map-built keys of earlier versions had.
        #[test]
        fn a_streams_key_is_the_sorted_json_object_of_its_query(
            app in any::<String>(),
            room in any::<String>(),
            os in proptest::collection::vec(any::<String>(), 0..3),
            access in proptest::collection::vec(any::<String>(), 0..3),
            users in proptest::collection::vec(any::<String>(), 0..3),
            web in any::<bool>(),
            day in any::<bool>(),
            offset_minutes in -14 * 60..=14 * 60i32,
        ) {
            let tz = FixedOffset::east_opt(offset_minutes * 60).unwrap();
            fn refs(v: &[String]) -> Vec<&str> {
                v.iter().map(String::as_str).collect()
            }
            let j = job(&app, &room, &refs(&os), &refs(&access), &refs(&users), web);
            let g = if day { Granularity::Day } else { Granularity::FiveMin };
            let mut map = serde_json::json!({
                "app_id": j.app_id,
                "room_id": j.room_id,
                "user_ids": j.user_ids.join(","),
                "product_type": j.product_type.as_str(),
                "os": j.os.join(","),
                "access": j.access.join(","),
                "granularity": g.as_str(),
            });
            if day {
                map["timezone"] = offset_text(tz).into();
            }
            prop_assert_eq!(Stream::key_of(&j, g, tz), map.to_string());
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_returned_name_belongs_to_the_requested_indicator_it_contains() {
        let req = names(&["join_room_success_rate", "stall_rate"]);
        for (name, owner) in [
            ("5s_join_room_success_rate", Some("join_room_success_rate")),
            ("10s_join_room_success_rate", Some("join_room_success_rate")),
            ("join_room_success_rate", Some("join_room_success_rate")),
            ("80ms_audio_stall_rate", Some("stall_rate")),
            ("video_stall_rate", Some("stall_rate")),
            ("stall_rate", Some("stall_rate")),
            ("first_frame_send_success_rate", None),
            ("stall", None),
            ("", None),
        ] {
            assert_eq!(owning_indicator(name, &req), owner, "{name}");
        }
        assert_eq!(owning_indicator("stall_rate", &[]), None);
    }

    #[test]
    fn of_several_contained_indicators_the_longest_wins() {
        // In either order of the request.
        for req in [
            names(&["stall_rate", "audio_stall_rate"]),
            names(&["audio_stall_rate", "stall_rate"]),
        ] {
            assert_eq!(
                owning_indicator("80ms_audio_stall_rate", &req),
                Some("audio_stall_rate")
            );
            assert_eq!(
                owning_indicator("video_stall_rate", &req),
                Some("stall_rate")
            );
        }
        // Equally long: the first requested.
        let req = names(&["ab_x", "x_cd"]);
        assert_eq!(owning_indicator("ab_x_cd", &req), Some("ab_x"));
        // An empty requested name owns nothing.
        assert_eq!(owning_indicator("anything", &names(&[""])), None);
    }
}
