//! `ListRoomInfo` (volc-openapi.md section 6): one page of the calls created in a range, asked by a
//! GET, and its answer checked field by field into [`RoomCall`]s.
//!
//! **Invariant:** a page that lists fewer calls than its `Total` implies is a retried
//! [`ApiError::ShortPage`], never the end of a listing; a call whose `CreatedTime` is after its
//! `DestroyTime`, whose `ActiveUserNum` is missing or negative, or whose `CallId` or `RoomId` is
//! empty or fails `answer::check_text`, makes its page invalid (PRODUCT.md, "Room streams"); no
//! `CallId` leaves a page twice.

use std::collections::HashMap;

use chrono::{DateTime, FixedOffset, Utc};

use crate::api::answer::{Opened, check_text, open, shown};
use crate::api::error::ApiError;
use crate::api::wire::{self, ListRoomInfoResult};
use crate::api::{Action, Payload, Reply, asked_time};
use crate::config::SourceSettings;
use crate::domain::{RoomCall, Window};

pub const ACTION: &str = wire::ROOM_LIST_ACTION;

/// The most calls one page holds: the API's limit, and what discovery asks.
pub const PAGE_SIZE: i64 = 100;

/// One page of a listing: the calls created in `[StartTime, EndTime]` (the API includes both ends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRoomInfoRequest {
    pub app_id: String,
    /// RFC 3339 with offset, second precision.
    pub start_time: String,
    pub end_time: String,
    /// From 1.
    pub page_num: i64,
    pub page_size: i64,
}

impl ListRoomInfoRequest {
    /// Page `page_num` of the calls created in `range`, its times in `tz`, [`PAGE_SIZE`] a page.
    pub fn page(
        app_id: &str,
        range: Window,
        tz: FixedOffset,
        page_num: i64,
    ) -> ListRoomInfoRequest {
        ListRoomInfoRequest {
            app_id: app_id.to_string(),
            start_time: asked_time(range.start, tz),
            end_time: asked_time(range.end, tz),
            page_num,
            page_size: PAGE_SIZE,
        }
    }
}

impl Action for ListRoomInfoRequest {
    const NAME: &'static str = ACTION;
    type Answer = RoomPage;
    /// A GET: the parameters travel in the query, and no content type is signed.
    fn payload(&self) -> Result<Payload, ApiError> {
        Ok(Payload::Query(vec![
            ("AppId".into(), self.app_id.clone()),
            ("StartTime".into(), self.start_time.clone()),
            ("EndTime".into(), self.end_time.clone()),
            ("PageNum".into(), self.page_num.to_string()),
            ("PageSize".into(), self.page_size.to_string()),
        ]))
    }
    fn requests_per_second(source: &SourceSettings) -> f64 {
        source.room_list_requests_per_second
    }
    fn app_id(&self) -> &str {
        &self.app_id
    }
    fn start_time(&self) -> &str {
        &self.start_time
    }
    fn answer(&self, reply: &Reply<'_>) -> Result<RoomPage, ApiError> {
        read_page(self, reply)
    }
}

/// One checked page.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomPage {
    /// `ResponseMetadata.RequestId` (empty if the server sent none).
    pub request_id: String,
    /// Calls (not rooms) in the asked range.
    pub total: i64,
    /// The range holds too many calls for the API to list: split it and list each half.
    pub has_more: bool,
    /// In the order listed, each `CallId` once.
    pub calls: Vec<RoomCall>,
}

/// What a `ListRoomInfo` answer to `req` becomes. Pure, so every malformed page is tested without a
/// server. An error envelope wins over a malformed `Result`, as for every action.
pub fn read_page(req: &ListRoomInfoRequest, reply: &Reply<'_>) -> Result<RoomPage, ApiError> {
    let Opened {
        request_id,
        result,
        invalid,
    } = open::<ListRoomInfoResult>(reply.status, reply.retry_after, reply.body)?;
    let total = match result.total {
        None => {
            return Err(invalid.at(
                "Result.Total".into(),
                "missing; a page needs the number of calls in its range".into(),
            ));
        }
        Some(t) if t < 0 => {
            return Err(invalid.at("Result.Total".into(), format!("{t} is negative")));
        }
        Some(t) => t,
    };
    let rows = result.room_list.len();
    if rows as i64 > req.page_size {
        return Err(invalid.at(
            "Result.RoomList".into(),
            format!(
                "{rows} calls on a page of PageSize {}; the range fails and the next run lists it again",
                req.page_size
            ),
        ));
    }
    let mut calls: Vec<RoomCall> = Vec::with_capacity(rows);
    // Per CallId: its place in `calls`, and the entry that listed it.
    let mut seen: HashMap<String, (usize, usize)> = HashMap::new();
    for (i, c) in result.room_list.into_iter().enumerate() {
        let at = |field: &str| format!("Result.RoomList[{i}].{field}");
        let text = |field: &str, value: &str| {
            if value.trim().is_empty() {
                return Err(invalid.at(at(field), "empty; every call needs one".into()));
            }
            check_text(value).map_err(|what| invalid.at(at(field), what))
        };
        text("CallId", &c.call_id)?;
        text("RoomId", &c.room_id)?;
        let time = |field: &str, value: &str| {
            DateTime::parse_from_rfc3339(value.trim())
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| {
                    invalid.at(
                        at(field),
                        format!("{} is not an RFC 3339 time ({e})", shown(value)),
                    )
                })
        };
        let created_at = time("CreatedTime", &c.created_time)?;
        let destroyed_at = match c.destroy_time.trim() {
            "" => None,
            t => Some(time("DestroyTime", t)?),
        };
        if let Some(end) = destroyed_at.filter(|end| *end < created_at) {
            return Err(invalid.at(
                at("DestroyTime"),
                format!(
                    "{} is before the call's CreatedTime ({}); the range fails and the next run lists it again",
                    end.format("%Y-%m-%dT%H:%M:%S%.fZ"),
                    created_at.format("%Y-%m-%dT%H:%M:%S%.fZ")
                ),
            ));
        }
        let active_user_num = match c.active_user_num {
            None => {
                return Err(invalid.at(
                    at("ActiveUserNum"),
                    "missing; a listed call needs its number of active users".into(),
                ));
            }
            Some(n) if n < 0 => {
                return Err(invalid.at(at("ActiveUserNum"), format!("{n} is negative")));
            }
            Some(n) => n,
        };
        let call = RoomCall {
            call_id: c.call_id,
            room_id: c.room_id,
            created_at,
            destroyed_at,
            active_user_num,
            finished: c.is_finished,
        };
        match seen.get(&call.call_id) {
            // The same call listed twice is one call.
            Some(&(slot, _)) if calls[slot] == call => {}
            Some(&(_, first)) => {
                return Err(invalid.at(
                    at("CallId"),
                    format!(
                        "{} is listed again in Result.RoomList[{first}] with other fields; the range fails and the next run lists it again",
                        shown(&call.call_id)
                    ),
                ));
            }
            None => {
                seen.insert(call.call_id.clone(), (calls.len(), i));
                calls.push(call);
            }
        }
    }
    // A page that holds too many matches is split, never read; any other page holds as many
    // distinct calls as its Total implies: a call listed twice on one page stands where another
    // call should be, so that page is short too.
    if !result.has_more {
        let expected = (total - (req.page_num - 1) * req.page_size).clamp(0, req.page_size);
        if (calls.len() as i64) < expected {
            return Err(ApiError::ShortPage {
                page_num: req.page_num,
                rows: calls.len(),
                expected,
                total,
                request_id: Some(request_id).filter(|id| !id.is_empty()),
            });
        }
    }
    Ok(RoomPage {
        request_id,
        total,
        has_more: result.has_more,
        calls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn req(page_num: i64) -> ListRoomInfoRequest {
        ListRoomInfoRequest::page(
            "app",
            Window::new(
                Utc.with_ymd_and_hms(2024, 1, 14, 16, 0, 0).unwrap(),
                Utc.with_ymd_and_hms(2024, 1, 15, 16, 0, 0).unwrap(),
            ),
            FixedOffset::east_opt(8 * 3600).unwrap(),
            page_num,
        )
    }

    fn body(result: &str) -> Vec<u8> {
        format!(
            r#"{{"ResponseMetadata":{{"RequestId":"rid-9","Action":"ListRoomInfo","Version":"2020-12-01"}},"Result":{result}}}"#
        )
        .into_bytes()
    }

    fn page(req: &ListRoomInfoRequest, result: &str) -> Result<RoomPage, ApiError> {
        read_page(
            req,
            &Reply {
                status: 200,
                retry_after: None,
                body: &body(result),
            },
        )
    }

    fn call(id: &str, created: &str, destroyed: &str, users: &str) -> String {
        format!(
            r#"{{"CallId":"{id}","RoomId":"room {id}","CreatedTime":"{created}","DestroyTime":"{destroyed}","ActiveUserNum":{users},"IsFinished":{}}}"#,
            !destroyed.is_empty()
        )
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    #[test]
    fn the_request_is_a_query_in_the_configured_offset() {
        let r = req(3);
        let Payload::Query(q) = r.payload().unwrap() else {
            panic!("a GET");
        };
        assert_eq!(
            q,
            [
                ("AppId", "app"),
                ("StartTime", "2024-01-15T00:00:00+08:00"),
                ("EndTime", "2024-01-16T00:00:00+08:00"),
                ("PageNum", "3"),
                ("PageSize", "100"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
    }

    #[test]
    fn calls_are_read_in_any_offset_and_a_running_call_has_no_end() {
        let result = format!(
            r#"{{"Total":3,"PageNum":1,"PageSize":100,"HasMore":false,"RoomList":[{},{},{}]}}"#,
            call(
                "a",
                "2024-01-15T08:00:00+08:00",
                "2024-01-15T01:30:00Z",
                "3"
            ),
            call("b", "2024-01-14T19:00:00-05:00", "", "1"),
            call(
                "c",
                "2024-01-15T02:00:00.5Z",
                "2024-01-15T11:00:00+08:00",
                "0"
            ),
        );
        let p = page(&req(1), &result).unwrap();
        assert_eq!(
            (p.total, p.has_more, p.request_id.as_str()),
            (3, false, "rid-9")
        );
        assert_eq!(
            p.calls[0],
            RoomCall {
                call_id: "a".into(),
                room_id: "room a".into(),
                created_at: utc(2024, 1, 15, 0, 0),
                destroyed_at: Some(utc(2024, 1, 15, 1, 30)),
                active_user_num: 3,
                finished: true,
            }
        );
        assert_eq!(p.calls[1].created_at, utc(2024, 1, 15, 0, 0));
        assert_eq!(
            (p.calls[1].destroyed_at, p.calls[1].finished),
            (None, false)
        );
        assert_eq!(p.calls[2].active_user_num, 0);
        // An empty range: no calls, whether RoomList is empty, null or absent.
        for list in [r#","RoomList":[]"#, r#","RoomList":null"#, ""] {
            let p = page(&req(1), &format!(r#"{{"Total":0{list}}}"#)).unwrap();
            assert!(p.calls.is_empty());
        }
    }

    #[test]
    fn a_page_shorter_than_its_total_implies_is_retried() {
        let two = format!(
            "[{},{}]",
            call("a", "2024-01-15T00:00:00Z", "", "1"),
            call("b", "2024-01-15T00:00:01Z", "", "1")
        );
        // The last page of 202 calls holds 2: whole.
        let p = page(&req(3), &format!(r#"{{"Total":202,"RoomList":{two}}}"#)).unwrap();
        assert_eq!(p.calls.len(), 2);
        // A first page of 2 while Total says 202, and an empty page while Total says 5: short.
        for (n, result) in [
            (1, format!(r#"{{"Total":202,"RoomList":{two}}}"#)),
            (1, r#"{"Total":5,"RoomList":[]}"#.to_string()),
        ] {
            let e = page(&req(n), &result).unwrap_err();
            assert!(matches!(e, ApiError::ShortPage { .. }), "{e:?}");
            assert!(e.is_retryable(), "{e}");
            assert_eq!(e.request_id(), Some("rid-9"));
            assert!(e.to_string().contains("Total ("), "{e}");
        }
        // A page that says HasMore is split, never read for its length.
        let p = page(&req(1), r#"{"Total":5000,"HasMore":true,"RoomList":[]}"#).unwrap();
        assert!(p.has_more);
        // More calls than PageSize, or no Total, is invalid.
        let many: Vec<String> = (0..101)
            .map(|i| call(&format!("c{i}"), "2024-01-15T00:00:00Z", "", "1"))
            .collect();
        let e = page(
            &req(1),
            &format!(r#"{{"Total":101,"RoomList":[{}]}}"#, many.join(",")),
        )
        .unwrap_err();
        assert!(e.to_string().contains("Result.RoomList"), "{e}");
        let e = page(&req(1), r#"{"RoomList":[]}"#).unwrap_err();
        assert!(e.to_string().contains("Result.Total"), "{e}");
    }

    #[test]
    fn a_broken_call_makes_its_page_invalid_naming_the_field() {
        for (entry, field) in [
            (
                call("a", "2024-01-15T02:00:00Z", "2024-01-15T01:00:00Z", "2"),
                "Result.RoomList[0].DestroyTime",
            ),
            (
                call("a", "2024-01-15T00:00:00Z", "", "-1"),
                "Result.RoomList[0].ActiveUserNum",
            ),
            (
                call("a", "2024-01-15T00:00:00Z", "", "null"),
                "Result.RoomList[0].ActiveUserNum",
            ),
            (
                r#"{"CallId":"a","RoomId":"r","CreatedTime":"2024-01-15T00:00:00Z"}"#.to_string(),
                "Result.RoomList[0].ActiveUserNum",
            ),
            (
                call("", "2024-01-15T00:00:00Z", "", "1"),
                "Result.RoomList[0].CallId",
            ),
            (
                call("a", "yesterday", "", "1"),
                "Result.RoomList[0].CreatedTime",
            ),
            (
                r#"{"CallId":"a","RoomId":"r\u001b[2J","CreatedTime":"2024-01-15T00:00:00Z","ActiveUserNum":1}"#
                    .to_string(),
                "Result.RoomList[0].RoomId",
            ),
        ] {
            let e = page(&req(1), &format!(r#"{{"Total":1,"RoomList":[{entry}]}}"#)).unwrap_err();
            assert!(
                matches!(e, ApiError::InvalidResponse { .. }) && e.to_string().contains(field),
                "{entry}: {e}"
            );
            assert!(!e.to_string().contains('\u{1b}'), "{e}");
        }
    }

    #[test]
    fn a_call_listed_twice_is_one_call_unless_the_two_disagree() {
        let a = call("a", "2024-01-15T00:00:00Z", "", "2");
        let p = page(&req(1), &format!(r#"{{"Total":1,"RoomList":[{a},{a}]}}"#)).unwrap();
        assert_eq!(p.calls.len(), 1);
        // Twice on a page whose Total says two: it stands where another call should be.
        let e = page(&req(1), &format!(r#"{{"Total":2,"RoomList":[{a},{a}]}}"#)).unwrap_err();
        assert!(matches!(e, ApiError::ShortPage { rows: 1, .. }), "{e:?}");
        let other = call("a", "2024-01-15T00:00:00Z", "", "3");
        let e = page(
            &req(1),
            &format!(r#"{{"Total":2,"RoomList":[{a},{other}]}}"#),
        )
        .unwrap_err();
        assert!(e.to_string().contains("Result.RoomList[1].CallId"), "{e}");
    }

    #[test]
    fn an_error_envelope_is_the_error() {
        let body = br#"{"ResponseMetadata":{"RequestId":"r","Error":{"Code":"InvalidParameter","Message":"PageSize"}},"Result":{"Total":"x"}}"#;
        let e = read_page(
            &req(1),
            &Reply {
                status: 400,
                retry_after: None,
                body,
            },
        )
        .unwrap_err();
        assert_eq!(e.code(), Some("InvalidParameter"), "{e:?}");
    }
}
