//! Text from outside (the API's messages, codes, request ids and names, a redirect's `Location`)
//! made safe to print: every control character escaped, so a newline cannot forge a log line and an
//! ESC or BEL cannot move or ring the terminal.
//!
//! **Invariant:** imports nothing of the crate; escaping is idempotent (escaped text holds no control
//! character), so text escaped at the boundary may be escaped again where it is printed.

use std::borrow::Cow;
use std::fmt::Write;

/// `s` with every control character (`char::is_control`: C0, DEL and C1, NUL included) written as
/// an escape: `\n`, `\r`, `\t`, and `\u{1b}` for the rest. Everything else, non-ASCII text included,
/// is left as it is; text without a control character is borrowed, not copied.
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_nothing_else() {
        let cases = [
            ("plain text", "plain text"),
            ("广东 ü é 🙂", "广东 ü é 🙂"),
            ("a\nb", "a\\nb"),
            ("a\r\nb\tc", "a\\r\\nb\\tc"),
            ("\u{1b}[2J\u{7}", "\\u{1b}[2J\\u{7}"),
            ("nul\0", "nul\\u{0}"),
            ("del\u{7f} c1\u{85}", "del\\u{7f} c1\\u{85}"),
            // A backslash is not a control character: left alone.
            ("C:\\path", "C:\\path"),
            ("", ""),
        ];
        for (raw, want) in cases {
            let got = escape_controls(raw);
            assert_eq!(got, want, "{raw:?}");
            assert!(!got.chars().any(char::is_control), "{got:?}");
            // Idempotent: escaping escaped text changes nothing.
            assert_eq!(escape_controls(&got), got);
        }
        assert!(matches!(escape_controls("clean"), Cow::Borrowed(_)));
        assert!(matches!(escape_controls("dirty\n"), Cow::Owned(_)));
    }
}
