//! Fault injection: which misbehaviour, if any, a request that passed every check receives.
//!
//! The choice is seeded and keyed by the request itself (its body and how often that body was seen
//! before), not by arrival order, so a run with concurrent calls injects the same faults into the same
//! windows every time, and a retry of a failed call draws again.

use std::fmt;

use super::data::{mix, unit_interval};

/// One kind of injected misbehaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// HTTP 500 with `InternalError` (CodeN 100014).
    Http500,
    /// HTTP 429 with `FlowLimitExceeded` although the caller kept the rate.
    Http429,
    /// HTTP 200 whose envelope carries `InternalServiceTimeout` (CodeN 100016) and no result.
    Error200,
    /// A response that takes `slow_delay` (or until shutdown): longer than any sane client timeout.
    Slow,
    /// Headers and part of the body are sent, then the connection is dropped.
    Close,
    /// HTTP 200 with a body that is not JSON (a proxy's HTML page).
    Garbage,
    /// HTTP 200 with `"Result": {}`: no indicator at all.
    Empty,
    /// HTTP 200 whose `Result` has `"Indicators": []`.
    NoIndicators,
    /// HTTP 200 with the right answer plus, in every returned series, points off the granularity's grid
    /// (see [`crate::simulator::data::off_grid_stamps`]): a client must drop and count them.
    OffGrid,
    /// `ListRoomInfo` only: HTTP 200 with a page whose `RoomList` is shorter than `Total` implies
    /// (its last call left out, or nothing when the page was empty anyway). Other actions get their
    /// right answer.
    ShortPage,
    /// `ListRoomInfo` only: HTTP 200 with a page that lists one `CallId` twice (its first call
    /// repeated in place of its last). Other actions get their right answer.
    DuplicateCall,
    /// `ListRoomInfo` only: HTTP 200 with the right `Total` and `HasMore` but an empty `RoomList`
    /// (a page that lost all its rows). Other actions get their right answer.
    EmptyPage,
}

impl FaultKind {
    /// Every kind, in the order the draw walks them.
    /// New kinds go last, so that a `--faults` value draws the same faults as before they existed.
    pub const ALL: [FaultKind; 12] = [
        FaultKind::Http500,
        FaultKind::Http429,
        FaultKind::Error200,
        FaultKind::Slow,
        FaultKind::Close,
        FaultKind::Garbage,
        FaultKind::Empty,
        FaultKind::NoIndicators,
        FaultKind::OffGrid,
        FaultKind::ShortPage,
        FaultKind::DuplicateCall,
        FaultKind::EmptyPage,
    ];

    /// The spelling `--faults` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Http500 => "500",
            FaultKind::Http429 => "429",
            FaultKind::Error200 => "200error",
            FaultKind::Slow => "slow",
            FaultKind::Close => "close",
            FaultKind::Garbage => "garbage",
            FaultKind::Empty => "empty",
            FaultKind::NoIndicators => "noindicators",
            FaultKind::OffGrid => "offgrid",
            FaultKind::ShortPage => "shortpage",
            FaultKind::DuplicateCall => "dupcall",
            FaultKind::EmptyPage => "emptypage",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        FaultKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The rate (probability per request, 0 to 1) of each fault kind; all zero by default.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    pub http500: f64,
    pub http429: f64,
    pub error200: f64,
    pub slow: f64,
    pub close: f64,
    pub garbage: f64,
    pub empty: f64,
    pub no_indicators: f64,
    pub off_grid: f64,
    pub short_page: f64,
    pub duplicate_call: f64,
    pub empty_page: f64,
}

/// A `--faults` value that cannot be used, said with the part that is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultsError {
    #[error("--faults: {part:?} is not KIND=RATE; write e.g. 500=0.05,429=0.02")]
    NotAPair { part: String },
    #[error(
        "--faults: unknown fault kind {kind:?}; use 500, 429, 200error, slow, close, garbage, empty, noindicators or offgrid, and for ListRoomInfo shortpage, dupcall or emptypage"
    )]
    UnknownKind { kind: String },
    #[error("--faults: rate {rate:?} of {kind} is not a number from 0 to 1")]
    BadRate { kind: String, rate: String },
    #[error("--faults: {kind} is given twice; give each kind once")]
    Duplicate { kind: String },
    #[error("--faults: the rates add up to {sum}, more than 1; lower some of them")]
    SumAboveOne { sum: f64 },
}

impl Faults {
    /// Every kind off.
    pub fn none() -> Self {
        Faults::default()
    }

    /// Only `kind`, at `rate`.
    pub fn only(kind: FaultKind, rate: f64) -> Self {
        let mut f = Faults::default();
        *f.rate_mut(kind) = rate;
        f
    }

    pub fn rate(&self, kind: FaultKind) -> f64 {
        match kind {
            FaultKind::Http500 => self.http500,
            FaultKind::Http429 => self.http429,
            FaultKind::Error200 => self.error200,
            FaultKind::Slow => self.slow,
            FaultKind::Close => self.close,
            FaultKind::Garbage => self.garbage,
            FaultKind::Empty => self.empty,
            FaultKind::NoIndicators => self.no_indicators,
            FaultKind::OffGrid => self.off_grid,
            FaultKind::ShortPage => self.short_page,
            FaultKind::DuplicateCall => self.duplicate_call,
            FaultKind::EmptyPage => self.empty_page,
        }
    }

    fn rate_mut(&mut self, kind: FaultKind) -> &mut f64 {
        match kind {
            FaultKind::Http500 => &mut self.http500,
            FaultKind::Http429 => &mut self.http429,
            FaultKind::Error200 => &mut self.error200,
            FaultKind::Slow => &mut self.slow,
            FaultKind::Close => &mut self.close,
            FaultKind::Garbage => &mut self.garbage,
            FaultKind::Empty => &mut self.empty,
            FaultKind::NoIndicators => &mut self.no_indicators,
            FaultKind::OffGrid => &mut self.off_grid,
            FaultKind::ShortPage => &mut self.short_page,
            FaultKind::DuplicateCall => &mut self.duplicate_call,
            FaultKind::EmptyPage => &mut self.empty_page,
        }
    }

    pub fn is_none(&self) -> bool {
        FaultKind::ALL.iter().all(|k| self.rate(*k) == 0.0)
    }

    /// Parses `500=0.05,429=0.02,200error=0.05,slow=0.02,close=0.02,garbage=0.02,empty=0.02,
    /// noindicators=0.02,offgrid=0.02,shortpage=0.02,dupcall=0.02,emptypage=0.02`; empty = none.
    pub fn parse(spec: &str) -> Result<Self, FaultsError> {
        let mut faults = Faults::default();
        let mut seen = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((kind, rate)) = part.split_once('=') else {
                return Err(FaultsError::NotAPair {
                    part: part.to_string(),
                });
            };
            let (kind, rate) = (kind.trim(), rate.trim());
            let k = FaultKind::parse(kind).ok_or_else(|| FaultsError::UnknownKind {
                kind: kind.to_string(),
            })?;
            let r: f64 = rate
                .parse()
                .ok()
                .filter(|r: &f64| (0.0..=1.0).contains(r))
                .ok_or_else(|| FaultsError::BadRate {
                    kind: kind.to_string(),
                    rate: rate.to_string(),
                })?;
            if seen.contains(&k) {
                return Err(FaultsError::Duplicate {
                    kind: kind.to_string(),
                });
            }
            seen.push(k);
            *faults.rate_mut(k) = r;
        }
        let sum: f64 = FaultKind::ALL.iter().map(|k| faults.rate(*k)).sum();
        // A little slack for decimal rates such as 0.1 * 10 that do not add up exactly.
        if sum > 1.0 + 1e-9 {
            return Err(FaultsError::SumAboveOne { sum });
        }
        Ok(faults)
    }

    /// The fault for the `occurrence`-th arrival (0-based) of a request whose body hashes to
    /// `body_hash`, or `None`: one uniform draw walked through the kinds' cumulative rates.
    pub fn draw(&self, seed: u64, body_hash: u64, occurrence: u64) -> Option<FaultKind> {
        if self.is_none() {
            return None;
        }
        let u = unit_interval(mix(&[seed, 0xFA17, body_hash, occurrence]));
        let mut acc = 0.0;
        for k in FaultKind::ALL {
            let r = self.rate(k);
            acc += r;
            if r > 0.0 && u < acc {
                return Some(k);
            }
        }
        None
    }
}

impl fmt::Display for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = FaultKind::ALL
            .iter()
            .filter(|k| self.rate(**k) > 0.0)
            .map(|k| format!("{k}={}", self.rate(*k)))
            .collect();
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join(","))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind() {
        let f = Faults::parse("500=0.05,429=0.02,200error=0.05,slow=0.02,close=0.02,garbage=0.02")
            .unwrap();
        assert_eq!(f.http500, 0.05);
        assert_eq!(f.http429, 0.02);
        assert_eq!(f.error200, 0.05);
        assert_eq!(f.slow, 0.02);
        assert_eq!(f.close, 0.02);
        assert_eq!(f.garbage, 0.02);
        let f = Faults::parse("empty=0.1,noindicators=0.2,offgrid=0.3").unwrap();
        assert_eq!((f.empty, f.no_indicators, f.off_grid), (0.1, 0.2, 0.3));
        assert_eq!(f.to_string(), "empty=0.1,noindicators=0.2,offgrid=0.3");
        for k in FaultKind::ALL {
            assert_eq!(FaultKind::parse(k.as_str()), Some(k));
        }
        assert!(Faults::parse("").unwrap().is_none());
        assert!(Faults::parse(" 500 = 1 , ").unwrap().http500 == 1.0);
    }

    #[test]
    fn errors_name_the_bad_part() {
        let e = |s: &str| Faults::parse(s).unwrap_err().to_string();
        assert!(e("500=0.1,teapot=0.1").contains("\"teapot\""));
        assert!(e("teapot=0.1").contains("empty, noindicators or offgrid"));
        assert!(e("500=lots").contains("\"lots\""));
        assert!(e("500=1.5").contains("\"1.5\""));
        assert!(e("500").contains("\"500\""));
        assert!(e("500=0.1,500=0.2").contains("twice"));
        assert!(e("500=0.6,close=0.6").contains("more than 1"));
    }

    #[test]
    fn the_draw_follows_the_rates() {
        let f = Faults::parse("500=0.25,close=0.25").unwrap();
        let mut counts = std::collections::HashMap::new();
        for i in 0..4000 {
            *counts.entry(f.draw(7, i, 0)).or_insert(0) += 1;
        }
        for (k, n) in [
            (None, 2000i32),
            (Some(FaultKind::Http500), 1000),
            (Some(FaultKind::Close), 1000),
        ] {
            let got = counts[&k];
            assert!((got - n).abs() < 150, "{k:?}: {got}, expected about {n}");
        }
        assert_eq!(
            Faults::only(FaultKind::Slow, 1.0).draw(1, 2, 3),
            Some(FaultKind::Slow)
        );
        assert_eq!(Faults::none().draw(1, 2, 3), None);
        // Seeded: the same request draws the same fault.
        assert_eq!(f.draw(7, 99, 1), f.draw(7, 99, 1));
    }
}
