//! `prune`: which stored streams are retired, whose they are, and which of their series can go.
//!
//! Pure: the configured streams, the stored streams' keys, labels and accounts, and the stored
//! series of a query in; a verdict out. `app` reads the store and deletes what this says.
//!
//! **Invariant:** a series that a configured query asks for is never chosen, and a stream of
//! another account is never chosen (one whose account is unknown only when named by `--stream`).

use std::collections::HashSet;

use serde::Serialize;

use crate::domain::{Dimension, Granularity, SeriesKey, Stream, owning_indicator};
use crate::store::StoredStream;

/// Whose a stored stream is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    /// Asked by the account of these credentials.
    Ours,
    /// Stored before accounts were recorded: pruned only when named by `--stream`.
    Unknown,
    /// Another account's (its hash): never pruned from here.
    Other(String),
}

/// A stored stream that no configured query asks for any more.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Retired {
    pub key: String,
    pub label: String,
    pub owner: Owner,
}

/// The stored streams that no configured stream asks (and that no configured stream will adopt:
/// `adoptable`), with their owners as `account` (this configuration's, if known) sees them.
pub fn retired(
    configured: &[Stream],
    listings: &[String],
    stored: &[StoredStream],
    adoptable: &HashSet<String>,
    account: Option<&str>,
) -> Vec<Retired> {
    stored
        .iter()
        .filter(|(key, _, _)| !configured.iter().any(|s| &s.key == key))
        .filter(|(key, _, _)| !listings.contains(key))
        .filter(|(key, _, _)| !adoptable.contains(key))
        .map(|(key, label, owner)| Retired {
            key: key.clone(),
            label: label.clone(),
            owner: match (owner, account) {
                (None, _) => Owner::Unknown,
                (Some(o), Some(a)) if o == a => Owner::Ours,
                (Some(o), _) => Owner::Other(o.clone()),
            },
        })
        .collect()
}

/// What a stored stream asked, read back from its key: the series it wrote share `scope` (its
/// `indicator` and `dimension_value` ignored), lie on the grid `grid_timezone` (`None`: a key from
/// before grids were recorded, any grid), and for a distribution stream their names belong to
/// `indicator`. `None` for a key that names no query (an earlier version's name-keyed rows).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredQuery {
    pub scope: SeriesKey,
    pub grid_timezone: Option<String>,
    pub indicator: Option<String>,
}

pub fn query_of(key: &str) -> Option<StoredQuery> {
    let v: serde_json::Value = serde_json::from_str(key).ok()?;
    // A listing of calls wrote no series.
    if v["api"] == "ListRoomInfo" {
        return None;
    }
    let text = |k: &str| v[k].as_str().map(str::to_string);
    let grid_timezone = text("timezone");
    if v["api"] == "ListQualityDistribution" {
        let dimension = Dimension::parse(v["dimension"].as_str()?)?;
        return Some(StoredQuery {
            scope: SeriesKey {
                app_id: text("app_id")?,
                room_id: String::new(),
                indicator: String::new(),
                granularity: Granularity::Day,
                product_type: text("product_type")?,
                os: String::new(),
                access: String::new(),
                user_ids: String::new(),
                dimension: dimension.as_str().to_string(),
                dimension_value: String::new(),
                grid_timezone: String::new(),
            },
            grid_timezone,
            indicator: Some(text("indicator")?),
        });
    }
    let granularity = Granularity::parse(v["granularity"].as_str()?)?;
    Some(StoredQuery {
        scope: SeriesKey {
            app_id: text("app_id")?,
            room_id: text("room_id")?,
            indicator: String::new(),
            granularity,
            product_type: text("product_type")?,
            os: text("os")?,
            access: text("access")?,
            user_ids: text("user_ids")?,
            dimension: String::new(),
            dimension_value: String::new(),
            grid_timezone: String::new(),
        },
        // A 5min grid is the same in every offset: its series are keyed without one.
        grid_timezone: match granularity {
            Granularity::FiveMin => Some(String::new()),
            Granularity::Day => grid_timezone,
        },
        indicator: None,
    })
}

/// Whether a stored series of `query` (its returned `name`, `dimension_value` and grid offset) is
/// the retired stream's to remove: its name belongs to the stream's indicator (distribution), and
/// no configured stream asks for it.
pub fn removable(
    query: &StoredQuery,
    (name, dimension_value, grid_timezone): (&str, &str, &str),
    configured: &[Stream],
) -> bool {
    if let Some(indicator) = &query.indicator
        && owning_indicator(name, std::slice::from_ref(indicator)).is_none()
    {
        return false;
    }
    let series = SeriesKey {
        indicator: name.to_string(),
        dimension_value: dimension_value.to_string(),
        grid_timezone: grid_timezone.to_string(),
        ..query.scope.clone()
    };
    !configured.iter().any(|s| {
        let scope = s.scope();
        let same_query = SeriesKey {
            indicator: series.indicator.clone(),
            dimension_value: series.dimension_value.clone(),
            ..scope
        } == series;
        same_query && owning_indicator(name, &s.job.indicators).is_some()
    })
}

#[cfg(test)]
mod tests {
    use chrono::FixedOffset;

    use super::*;
    use crate::domain::{DistributionJob, Job, ProductType};

    fn tz(h: i32) -> FixedOffset {
        FixedOffset::east_opt(h * 3600).unwrap()
    }

    fn job(app: &str, indicators: &[&str]) -> Job {
        Job {
            name: app.into(),
            app_id: app.into(),
            indicators: indicators.iter().map(|s| s.to_string()).collect(),
            granularities: vec![Granularity::Day, Granularity::FiveMin],
            product_type: ProductType::Native,
            os: vec![],
            access: vec![],
            room_id: String::new(),
            user_ids: vec![],
        }
    }

    fn stored(key: &str, label: &str, account: Option<&str>) -> StoredStream {
        (key.into(), label.into(), account.map(str::to_string))
    }

    #[test]
    fn a_stream_no_configured_query_asks_is_retired_and_its_owner_named() {
        let now = job("a", &["stall_rate"]).streams(tz(8));
        let old = job("b", &["stall_rate"]).streams(tz(8));
        let rows = vec![
            stored(&now[0].key, "a/1d", Some("me")),
            stored(&old[0].key, "b/1d", Some("me")),
            stored(&old[1].key, "b/5min", None),
            stored("{\"app_id\":\"c\"}", "c/1d", Some("them")),
            stored("legacy:a/1d", "a/1d", None),
        ];
        let adoptable = HashSet::from(["legacy:a/1d".to_string()]);
        let r = retired(&now, &[], &rows, &adoptable, Some("me"));
        let got: Vec<(&str, &Owner)> = r.iter().map(|r| (r.label.as_str(), &r.owner)).collect();
        assert_eq!(
            got,
            [
                ("b/1d", &Owner::Ours),
                ("b/5min", &Owner::Unknown),
                ("c/1d", &Owner::Other("them".into()))
            ]
        );
        // Without credentials nothing is ours.
        assert!(
            retired(&now, &[], &rows, &adoptable, None)
                .iter()
                .all(|r| r.owner != Owner::Ours)
        );
    }

    #[test]
    fn keys_read_back_as_the_query_they_asked() {
        let s = job("a", &["stall_rate"]).streams(tz(8));
        let day = query_of(&s[0].key).unwrap();
        assert_eq!(day.grid_timezone.as_deref(), Some("+08:00"));
        assert_eq!(
            day.scope,
            SeriesKey {
                grid_timezone: String::new(),
                ..s[0].scope()
            }
        );
        let five = query_of(&s[1].key).unwrap();
        assert_eq!(five.grid_timezone.as_deref(), Some(""));
        // A key from before grids were recorded: any grid.
        let before = query_of(&s[0].key_before_timezones().unwrap()).unwrap();
        assert_eq!(before.grid_timezone, None);
        let d = DistributionJob {
            name: "w".into(),
            app_id: "a".into(),
            indicators: vec!["stall_rate".into()],
            dimensions: vec![Dimension::Os],
            product_type: ProductType::Web,
            platform: String::new(),
        }
        .streams(tz(8))
        .remove(0);
        let q = query_of(&d.key).unwrap();
        assert_eq!(q.indicator.as_deref(), Some("stall_rate"));
        assert_eq!(q.scope.dimension, "OS");
        assert_eq!(q.scope.product_type, "web");
        assert_eq!(query_of("legacy:a/1d"), None);
    }

    #[test]
    fn a_series_a_configured_query_asks_is_never_removable() {
        // The same app's distribution by OS, stall rate retired, join success still configured.
        let make = |indicator: &str| {
            DistributionJob {
                name: "w".into(),
                app_id: "a".into(),
                indicators: vec![indicator.into()],
                dimensions: vec![Dimension::Os],
                product_type: ProductType::Native,
                platform: String::new(),
            }
            .streams(tz(8))
            .remove(0)
        };
        let configured = vec![make("join_room_success_rate")];
        let q = query_of(&make("stall_rate").key).unwrap();
        assert!(removable(
            &q,
            ("video_stall_rate", "iOS", "+08:00"),
            &configured
        ));
        assert!(!removable(
            &q,
            ("5s_join_room_success_rate", "iOS", "+08:00"),
            &configured
        ));
        // A ListQuality query whose grid changed: the old grid's series go, the new grid's stay.
        let now = job("a", &["stall_rate"]).streams(tz(9));
        let old = query_of(&job("a", &["stall_rate"]).streams(tz(8))[0].key).unwrap();
        assert!(removable(&old, ("video_stall_rate", "", "+08:00"), &now));
        assert!(!removable(&old, ("video_stall_rate", "", "+09:00"), &now));
    }
}
