//! Keeping secrets out of messages: database passwords in every form a connection string takes
//! (`user:password@host`, `?password=...` and every other parameter whose name contains `pass`,
//! such as `PassWord` or `sslpassword`, and `pwd`; libpq's `key=value` strings such as
//! `host=db password='se cret'`), and access keys masked.
//!
//! **Invariant:** every message, log line and `Debug` output that shows a database URL or an access
//! key goes through here; there is one way to redact each.

/// Whether a URL query or libpq `key=value` key names a secret: any name that contains `pass` in
/// any case (`password`, `PassWord`, `sslpassword`, `passfile`, ...), and `pwd`. Matching by part
/// rather than by a list means a spelling nobody listed is hidden too.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.trim().to_ascii_lowercase();
    key.contains("pass") || key == "pwd"
}

/// `url` with every password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    if url.contains("://") {
        redact_uri(url)
    } else {
        redact_key_values(url)
    }
}

fn redact_uri(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        // Unparsable: hide everything between the scheme and the last '@' where a password would
        // be, and every secret query value.
        let masked = match (url.find("://"), url.rfind('@')) {
            (Some(scheme_end), Some(at)) if at > scheme_end => {
                format!("{}***{}", &url[..scheme_end + 3], &url[at..])
            }
            _ => url.to_string(),
        };
        return redact_query_text(&masked);
    };
    if parsed.password().is_some() {
        // set_password only fails for URLs that cannot have one, which a parsed password rules out.
        let _ = parsed.set_password(Some("***"));
    }
    if parsed.query_pairs().any(|(k, _)| is_secret_key(&k)) {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_secret_key(&k) {
                    "***".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

/// `?a=1&password=x` → `?a=1&password=***`, on text that did not parse as a URL.
fn redact_query_text(url: &str) -> String {
    let Some((head, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            // The key as a URL parser would read it: `Pass%57ord` is `PassWord`.
            Some((k, _)) if is_secret_key(&decode(k)) => format!("{k}=***"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{head}?{}", query.join("&"))
}

/// A query key or value as text, percent-decoded (`+` is a space in a query).
fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(&text.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// libpq's `key = value` list: values are bare words or single-quoted with `\'` and `\\` escapes.
fn redact_key_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(eq) = rest.find('=') {
        let (before, after) = rest.split_at(eq);
        let key = before
            .rsplit(|c: char| c.is_whitespace())
            .find(|w| !w.is_empty())
            .unwrap_or_default();
        out.push_str(before);
        out.push('=');
        let after = &after[1..];
        let value_start = after.len() - after.trim_start().len();
        let value = &after[value_start..];
        let value_len = if let Some(quoted) = value.strip_prefix('\'') {
            let mut end = quoted.len();
            let mut escaped = false;
            for (i, c) in quoted.char_indices() {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '\'') => {
                        end = i;
                        break;
                    }
                    _ => {}
                }
            }
            (end + 2).min(value.len())
        } else {
            value.find(char::is_whitespace).unwrap_or(value.len())
        };
        out.push_str(&after[..value_start]);
        if is_secret_key(key) {
            out.push_str("***");
        } else {
            out.push_str(&value[..value_len]);
        }
        rest = &value[value_len..];
    }
    out.push_str(rest);
    out
}

/// The password values in `url`, in any of its forms, for scrubbing messages that echo them.
fn secrets(url: &str) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(parsed) = url::Url::parse(url) {
        if let Some(p) = parsed.password() {
            found.push(p.to_string());
            if let Ok(decoded) = percent_encoding::percent_decode_str(p).decode_utf8() {
                found.push(decoded.into_owned());
            }
        }
        found.extend(
            parsed
                .query_pairs()
                .filter(|(k, _)| is_secret_key(k))
                .map(|(_, v)| v.into_owned()),
        );
    } else if let Some((_, rest)) = url.split_once("://") {
        // Unparsable: the password between the scheme and the last '@', and the query's secrets,
        // as `redact_uri` masks them.
        if let Some(at) = rest.rfind('@')
            && let Some((_, password)) = rest[..at].split_once(':')
        {
            found.push(password.to_string());
            found.push(decode(password));
        }
        if let Some((_, query)) = rest.split_once('?') {
            for (k, v) in query.split('&').filter_map(|pair| pair.split_once('=')) {
                if is_secret_key(&decode(k)) {
                    found.push(v.to_string());
                    found.push(decode(v));
                }
            }
        }
    } else {
        let masked = redact_key_values(url);
        // The secrets are what the masking removed: compare word by word.
        for (a, b) in url.split_whitespace().zip(masked.split_whitespace()) {
            if a != b
                && let (Some((_, v)), Some(_)) = (a.split_once('='), b.split_once('='))
            {
                found.push(v.trim_matches('\'').to_string());
            }
        }
    }
    // A one- or two-character password would mask unrelated text; such a password is no secret anyway.
    found.retain(|s| s.len() >= 3);
    found
}

/// `message` with every password of `url` replaced by `***` (a driver error may echo it).
pub fn scrub(message: &str, url: &str) -> String {
    secrets(url)
        .iter()
        .fold(message.to_string(), |m, s| m.replace(s.as_str(), "***"))
}

/// `AKLT…abcd`: enough to tell keys apart in a message, not enough to use one.
pub fn mask_access_key(ak: &str) -> String {
    let chars: Vec<char> = ak.chars().collect();
    if chars.len() <= 8 {
        return "***".to_string();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_keys_are_masked() {
        assert_eq!(mask_access_key("AKLTabcdefgh1234"), "AKLT…1234");
        assert_eq!(mask_access_key("short"), "***");
    }

    #[test]
    fn every_form_of_password_is_masked() {
        let cases = [
            (
                "postgres://u:S3cret@db:5432/x",
                "postgres://u:***@db:5432/x",
            ),
            (
                "postgres://u@db:5432/x?sslmode=require&password=S3cret",
                "postgres://u@db:5432/x?sslmode=require&password=***",
            ),
            (
                "postgresql://db/x?PASSWORD=S3cret&user=u",
                "postgresql://db/x?PASSWORD=***&user=u",
            ),
            (
                "host=db user=u password=S3cret dbname=x",
                "host=db user=u password=*** dbname=x",
            ),
            (
                "host=db password = 'S3 cr\\'et' dbname=x",
                "host=db password = *** dbname=x",
            ),
            ("postgres://u:S3cret@[bad/x", "postgres://***@[bad/x"),
            (
                "postgres://u@[bad/x?PassWord=S3cret&Pass%57ord=S3cret&db_pass=S3cret&sslmode=require",
                "postgres://***@[bad/x?PassWord=***&Pass%57ord=***&db_pass=***&sslmode=require",
            ),
            (
                "postgres://u@db/x?PassWord=S3cret&sslpassword=S3cret&passfile=S3cret&Pwd=S3cret&user=u",
                "postgres://u@db/x?PassWord=***&sslpassword=***&passfile=***&Pwd=***&user=u",
            ),
            (
                "postgres://u@db/x?Pass%57ord=S3cret",
                "postgres://u@db/x?PassWord=***",
            ),
            (
                "host=db PASSWORD=S3cret SSLPassword='S3 cret' passphrase=S3cret dbname=x",
                "host=db PASSWORD=*** SSLPassword=*** passphrase=*** dbname=x",
            ),
            ("sqlite://a.db", "sqlite://a.db"),
            ("sqlite://dir/a=b.db", "sqlite://dir/a=b.db"),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn messages_that_echo_a_password_are_scrubbed() {
        for url in [
            "postgres://u:S3cret@db/x",
            "postgres://u@db/x?password=S3cret",
            "postgres://u@db/x?SSLPassWord=S3cret",
            "postgres://u:S3cret@[bad/x",
            "postgres://u@[bad/x?PassWord=S3cret",
            "host=db password=S3cret",
            "host=db password='S3cret'",
            "host=db sslpassword=S3cret",
        ] {
            let m = scrub("FATAL: password S3cret rejected", url);
            assert_eq!(m, "FATAL: password *** rejected", "{url}");
        }
        assert_eq!(
            scrub("a b", "postgres://u:ab@db/x"),
            "a b",
            "too short to hunt for"
        );
    }
}
