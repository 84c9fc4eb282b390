//! Keeping secrets out of messages: database URLs without their password, access keys masked.
//!
//! **Invariant:** every message, log line and `Debug` output that shows a database URL or an access
//! key goes through here; there is one way to redact each.

/// The URL with its password replaced by `***`, for messages and logs; other strings pass unchanged.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // set_password only fails for URLs that cannot have one, which a parsed password rules out.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_string(),
        // Unparsable: hide everything between the scheme and the last '@', where a password would be.
        Err(_) => match (url.find("://"), url.rfind('@')) {
            (Some(scheme_end), Some(at)) if at > scheme_end => {
                format!("{}***{}", &url[..scheme_end + 3], &url[at..])
            }
            _ => url.to_string(),
        },
    }
}

/// Removes the URL's password from a message that might echo it (a driver error, say).
pub fn scrub(message: &str, url: &str) -> String {
    let password = url::Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(str::to_string));
    match password {
        Some(p) if !p.is_empty() => message.replace(&p, "***"),
        _ => message.to_string(),
    }
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
    fn redacts_the_password_of_a_url() {
        let r = redact_url("postgres://u:secretpw@db.example:5432/x");
        assert!(!r.contains("secretpw"), "{r}");
        assert!(r.contains("u:***@db.example"), "{r}");
        assert_eq!(redact_url("sqlite://a.db"), "sqlite://a.db");
        let r = redact_url("postgres://u:sec ret@[bad/x");
        assert!(!r.contains("sec ret"), "{r}");
        assert_eq!(
            scrub("bad password secretpw", "postgres://u:secretpw@h/x"),
            "bad password ***"
        );
    }

    #[test]
    fn access_keys_are_masked() {
        assert_eq!(mask_access_key("AKLTabcdefgh1234"), "AKLT…1234");
        assert_eq!(mask_access_key("short"), "***");
    }
}
