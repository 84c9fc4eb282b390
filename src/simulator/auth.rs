//! The gateway's authentication: auth headers present, `X-Date` near the clock, a known access key,
//! and a signature that matches the request as it arrived.
//!
//! **Invariant:** the signature is verified from the bytes that arrived, never from what a client
//! meant to send: the `Host` header as received (with its port), the canonical query re-encoded from
//! the decoded query pairs, the SHA-256 of the received body, and the headers the client listed in
//! `SignedHeaders`. That way a client that signs one thing and sends another is caught, as it would be
//! by the real gateway.

use axum::http::HeaderMap;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::envelope::ApiError;
use crate::api::sign::{self, ALGORITHM};
use crate::api::wire::SERVICE;

/// How far `X-Date` may be from the gateway's clock, either way.
pub const MAX_CLOCK_SKEW: Duration = Duration::minutes(15);

/// The region echoed when a request does not name one in its credential scope.
pub const DEFAULT_REGION: &str = "cn-north-1";

/// The request as it arrived, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct Arrived<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The raw query string, still percent-encoded, without `?`.
    pub raw_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// The request's `Authorization`, parsed; `None` when absent or unreadable.
fn authorization(headers: &HeaderMap) -> Option<sign::ParsedAuthorization> {
    header(headers, "authorization")
        .ok()
        .flatten()
        .and_then(sign::parse_authorization)
}

/// The region of the request's credential scope, for the response envelope; the default when unreadable.
pub fn region_of(headers: &HeaderMap) -> String {
    authorization(headers)
        .and_then(|a| a.credential_scope.split('/').nth(1).map(str::to_string))
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| DEFAULT_REGION.to_string())
}

/// The access key the request's credential names, if its `Authorization` is readable.
pub fn access_key_of(headers: &HeaderMap) -> Option<String> {
    authorization(headers).map(|a| a.access_key)
}

/// What [`verify`] needs of an account: the secret its requests are signed with.
pub trait Secret {
    fn secret_key(&self) -> &str;
}

impl Secret for str {
    fn secret_key(&self) -> &str {
        self
    }
}

/// A header as text: `Ok(None)` when absent, `Err` when it is not visible ASCII.
fn header<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, ()> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v.to_str().map(Some).map_err(|_| ()),
    }
}

fn required<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h str, ApiError> {
    match header(headers, name) {
        Ok(Some(v)) if !v.trim().is_empty() => Ok(v.trim()),
        Ok(_) => Err(ApiError::missing_request_info(format!(
            "the {name} header is missing; sign the request (HMAC-SHA256) and send Authorization, X-Date and X-Content-Sha256"
        ))),
        Err(()) => Err(ApiError::missing_request_info(format!(
            "the {name} header is not plain ASCII; send it as the signer produced it"
        ))),
    }
}

/// Checks, in the gateway's order: the auth headers (`MissingRequestInfo`), `X-Date` within 15 minutes
/// of `clock` (`InvalidTimestamp`), the access key (`InvalidAccessKey` when `account_of` knows no
/// account of that key), then the signature with that account's secret (`SignatureDoesNotMatch`).
/// Returns the account the request was signed by.
pub fn verify<'k, A: Secret + ?Sized>(
    req: &Arrived<'_>,
    account_of: impl FnOnce(&str) -> Option<&'k A>,
    clock: DateTime<Utc>,
) -> Result<&'k A, ApiError> {
    let h = req.headers;
    let authorization = required(h, "authorization")?;
    let x_date = required(h, "x-date")?;
    let content_sha = required(h, "x-content-sha256")?;

    let auth = sign::parse_authorization(authorization).ok_or_else(|| {
        ApiError::missing_request_info(
            "the Authorization header is malformed; expected HMAC-SHA256 Credential=AK/DATE/REGION/SERVICE/request, SignedHeaders=..., Signature=...",
        )
    })?;
    let signed_at = NaiveDateTime::parse_from_str(x_date, "%Y%m%dT%H%M%SZ")
        .map_err(|_| {
            ApiError::missing_request_info(format!(
                "X-Date {x_date:?} is malformed; send UTC time as YYYYMMDDTHHMMSSZ"
            ))
        })?
        .and_utc();
    if content_sha.len() != 64 || !content_sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::missing_request_info(
            "X-Content-Sha256 is malformed; send the lower-case hex SHA-256 of the body",
        ));
    }

    let skew = signed_at - clock;
    if skew > MAX_CLOCK_SKEW || skew < -MAX_CLOCK_SKEW {
        return Err(ApiError::invalid_timestamp(format!(
            "X-Date {x_date} is {} s away from the server's clock ({}), more than 15 minutes; fix the client's clock",
            skew.num_seconds(),
            clock.format("%Y%m%dT%H%M%SZ")
        )));
    }

    let Some(account) = account_of(&auth.access_key) else {
        return Err(ApiError::invalid_access_key(
            "the access key is not known; use an access key this endpoint accepts",
        ));
    };

    verify_signature(req, &auth, x_date, content_sha, account.secret_key())?;
    Ok(account)
}

fn verify_signature(
    req: &Arrived<'_>,
    auth: &sign::ParsedAuthorization,
    x_date: &str,
    content_sha: &str,
    secret_key: &str,
) -> Result<(), ApiError> {
    let mismatch = |m: String| Err(ApiError::signature_does_not_match(m));

    let scope: Vec<&str> = auth.credential_scope.split('/').collect();
    let [date, region, service, terminator] = scope[..] else {
        return mismatch(format!(
            "the credential scope {:?} is not DATE/REGION/SERVICE/request",
            auth.credential_scope
        ));
    };
    if date != &x_date[..8] || service != SERVICE || terminator != "request" || region.is_empty() {
        return mismatch(format!(
            "the credential scope {:?} does not match X-Date {x_date} and service {SERVICE}; sign with scope {}/REGION/{SERVICE}/request",
            auth.credential_scope,
            &x_date[..8]
        ));
    }

    let body_sha = sign::sha256_hex(req.body);
    if !body_sha.eq_ignore_ascii_case(content_sha) {
        return mismatch(
            "X-Content-Sha256 is not the SHA-256 of the body that arrived; hash and send the same bytes"
                .to_string(),
        );
    }

    let signed: Vec<String> = auth
        .signed_headers
        .split(';')
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    for must in ["host", "x-date"] {
        if !signed.iter().any(|s| s == must) {
            return mismatch(format!(
                "SignedHeaders {:?} does not include {must}; sign at least host and x-date",
                auth.signed_headers
            ));
        }
    }
    // The official SDK signs a GET without a content type (volc-openapi.md section 6): the
    // signature of a GET that lists one is not the one the gateway computes.
    if req.method.eq_ignore_ascii_case("GET") && signed.iter().any(|s| s == "content-type") {
        return mismatch(format!(
            "SignedHeaders {:?} lists content-type, but a GET is signed without one; sign host;x-content-sha256;x-date (and x-security-token)",
            auth.signed_headers
        ));
    }
    // A session token authorizes a temporary key, so it must be covered by the signature.
    if req.headers.contains_key("x-security-token")
        && !signed.iter().any(|s| s == "x-security-token")
    {
        return mismatch(
            "X-Security-Token is sent but not signed; include x-security-token in SignedHeaders"
                .to_string(),
        );
    }

    let mut header_block = String::new();
    for name in &signed {
        let value = match header(req.headers, name) {
            Ok(Some(v)) => v.trim(),
            _ => {
                return mismatch(format!(
                    "the signed header {name} is not in the request; send every header listed in SignedHeaders"
                ));
            }
        };
        // The signer drops a default port from the host; a client talking to :443 sends it anyway.
        let value = if name == "host" {
            sign::signed_host(value)
        } else {
            value
        };
        header_block.push_str(name);
        header_block.push(':');
        header_block.push_str(value);
        header_block.push('\n');
    }

    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(req.raw_query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method.to_ascii_uppercase(),
        if req.path.is_empty() { "/" } else { req.path },
        sign::canonical_query(&pairs),
        header_block,
        signed.join(";"),
        body_sha
    );
    let string_to_sign = format!(
        "{ALGORITHM}\n{x_date}\n{}\n{}",
        auth.credential_scope,
        sign::sha256_hex(canonical_request.as_bytes())
    );
    let key = sign::signing_key(secret_key, date, region, service);
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC accepts keys of any length");
    mac.update(string_to_sign.as_bytes());
    let Ok(claimed) = hex::decode(&auth.signature) else {
        return mismatch("the Signature is not hex".to_string());
    };
    // verify_slice compares in constant time.
    if mac.verify_slice(&claimed).is_err() {
        return mismatch(format!(
            "the signature does not match the request that arrived; check the secret key, and that the host, query and body signed are the ones sent (canonical request here: {canonical_request:?})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderName, HeaderValue};

    /// `verify` against the one account `ak`/`sk`.
    fn check(req: &Arrived<'_>, ak: &str, sk: &str, clock: DateTime<Utc>) -> Result<(), ApiError> {
        verify(req, |k| (k == ak).then_some(sk), clock).map(drop)
    }

    fn vectors() -> Vec<serde_json::Value> {
        serde_json::from_str(include_str!("../../tests/data/sign-vectors.json")).unwrap()
    }

    fn headers_of(v: &serde_json::Value) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, x) in v["headers_sent"].as_object().unwrap() {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(x.as_str().unwrap()).unwrap(),
            );
        }
        h
    }

    /// The server side agrees with the official SDK on every vector, from the request as it was sent.
    #[test]
    fn accepts_every_official_sdk_vector_as_sent() {
        for v in vectors() {
            let name = v["name"].as_str().unwrap();
            let url = url::Url::parse(v["url_as_sent_by_sdk"].as_str().unwrap()).unwrap();
            let body = hex::decode(v["body_utf8_hex"].as_str().unwrap()).unwrap();
            let headers = headers_of(&v);
            let clock =
                NaiveDateTime::parse_from_str(v["x_date"].as_str().unwrap(), "%Y%m%dT%H%M%SZ")
                    .unwrap()
                    .and_utc();
            let req = Arrived {
                method: v["method"].as_str().unwrap(),
                path: url.path(),
                raw_query: url.query().unwrap_or(""),
                headers: &headers,
                body: &body,
            };
            let ak = v["access_key_id"].as_str().unwrap();
            let sk = v["secret_access_key"].as_str().unwrap();
            assert_eq!(check(&req, ak, sk, clock), Ok(()), "{name}");

            let mut tampered = body.clone();
            tampered.push(b' ');
            let bad = Arrived {
                body: &tampered,
                ..req
            };
            assert_eq!(
                check(&bad, ak, sk, clock).unwrap_err().code,
                "SignatureDoesNotMatch",
                "{name}: tampered body"
            );
            assert_eq!(
                check(&req, ak, "wrong", clock).unwrap_err().code,
                "SignatureDoesNotMatch",
                "{name}: wrong secret"
            );
            assert_eq!(
                check(&req, ak, sk, clock + Duration::minutes(16))
                    .unwrap_err()
                    .code,
                "InvalidTimestamp",
                "{name}: late"
            );
            assert_eq!(
                check(&req, ak, sk, clock - Duration::minutes(14)),
                Ok(()),
                "{name}: 14 minutes early"
            );
        }
    }

    /// With several accounts, the access key picks the account and its secret verifies the signature.
    #[test]
    fn the_access_key_picks_the_secret_the_signature_is_checked_with() {
        let v = &vectors()[0];
        let url = url::Url::parse(v["url_as_sent_by_sdk"].as_str().unwrap()).unwrap();
        let body = hex::decode(v["body_utf8_hex"].as_str().unwrap()).unwrap();
        let headers = headers_of(v);
        let clock = NaiveDateTime::parse_from_str(v["x_date"].as_str().unwrap(), "%Y%m%dT%H%M%SZ")
            .unwrap()
            .and_utc();
        let req = Arrived {
            method: v["method"].as_str().unwrap(),
            path: url.path(),
            raw_query: url.query().unwrap_or(""),
            headers: &headers,
            body: &body,
        };
        let ak = v["access_key_id"].as_str().unwrap();
        let sk = v["secret_access_key"].as_str().unwrap();
        assert_eq!(access_key_of(&headers).as_deref(), Some(ak));
        let accounts = [("AKLTother", "other-secret"), (ak, sk)];
        let find = |k: &str| accounts.iter().find(|(a, _)| *a == k).map(|(_, s)| *s);
        assert_eq!(verify(&req, find, clock), Ok(sk));
        // The same request against accounts where its key has another account's secret.
        let swapped = [("AKLTother", sk), (ak, "other-secret")];
        let find = |k: &str| swapped.iter().find(|(a, _)| *a == k).map(|(_, s)| *s);
        assert_eq!(
            verify(&req, find, clock).unwrap_err().code,
            "SignatureDoesNotMatch"
        );
        let nobody = |_: &str| None::<&str>;
        assert_eq!(
            verify(&req, nobody, clock).unwrap_err().code,
            "InvalidAccessKey"
        );
    }

    #[test]
    fn the_host_that_arrived_is_the_one_verified() {
        let v = vectors()
            .into_iter()
            .find(|v| v["name"] == "loopback_host_with_port")
            .unwrap();
        let mut headers = headers_of(&v);
        headers.insert("host", HeaderValue::from_static("127.0.0.1:18081"));
        let body = hex::decode(v["body_utf8_hex"].as_str().unwrap()).unwrap();
        let req = Arrived {
            method: "POST",
            path: "/",
            raw_query: "Action=ListQuality&Version=2020-12-01",
            headers: &headers,
            body: &body,
        };
        let clock = "2024-01-15T08:30:00Z".parse().unwrap();
        let e = check(&req, "AKLTtestaccesskey", "dGVzdHNlY3JldGtleQ==", clock).unwrap_err();
        assert_eq!(e.code, "SignatureDoesNotMatch");
        assert!(e.message.contains("host:127.0.0.1:18081"), "{}", e.message);
    }

    #[test]
    fn missing_or_malformed_headers_are_missing_request_info() {
        let clock: DateTime<Utc> = "2024-01-15T08:30:00Z".parse().unwrap();
        let refused = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            let req = Arrived {
                method: "POST",
                path: "/",
                raw_query: "",
                headers: &h,
                body: b"",
            };
            check(&req, "AK", "SK", clock).unwrap_err()
        };
        let sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let auth = "HMAC-SHA256 Credential=AK/20240115/cn-north-1/rtc/request, SignedHeaders=host;x-date, Signature=00";
        for (pairs, needle) in [
            (
                vec![("x-date", "20240115T083000Z"), ("x-content-sha256", sha)],
                "authorization",
            ),
            (
                vec![("authorization", auth), ("x-content-sha256", sha)],
                "x-date",
            ),
            (
                vec![("authorization", auth), ("x-date", "20240115T083000Z")],
                "x-content-sha256",
            ),
            (
                vec![
                    ("authorization", "Bearer x"),
                    ("x-date", "20240115T083000Z"),
                    ("x-content-sha256", sha),
                ],
                "malformed",
            ),
            (
                vec![
                    ("authorization", auth),
                    ("x-date", "2024-01-15"),
                    ("x-content-sha256", sha),
                ],
                "X-Date",
            ),
            (
                vec![
                    ("authorization", auth),
                    ("x-date", "20240115T083000Z"),
                    ("x-content-sha256", "abc"),
                ],
                "X-Content-Sha256",
            ),
        ] {
            let e = refused(&pairs);
            assert_eq!(e.code, "MissingRequestInfo", "{needle}");
            assert_eq!(e.code_n, Some(100004));
            assert!(e.message.contains(needle), "{needle}: {}", e.message);
        }
    }
}
