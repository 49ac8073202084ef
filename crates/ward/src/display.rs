//! Finding data shown to people: attacker-controlled text (container and pod names, argv,
//! paths) must neither drive the terminal nor disguise itself.
//!
//! Escaped, as `\uXXXX`: C0 controls (U+0000-001F: ESC starts clear-screen, window-title and
//! colour sequences; a newline would forge a table row), DEL, C1 controls (U+0080-009F: U+009B
//! is CSI on terminals that take 8-bit controls), the bidirectional formatting characters
//! (U+061C, U+200E/F, U+202A-202E, U+2066-2069: `evil\u202egnp.exe` would read as
//! `evilexe.png`) and the invisible ones (U+200B-200D, U+2060, U+FEFF). `\uXXXX` is also
//! JSON's escape, so the same rule keeps a JSON text valid and equal to the original. The web
//! console applies the same list (`isHidden` in `ward-api/assets/app.js`).

#[cfg(test)]
use ward_output::text::is_hidden;
pub use ward_output::text::{for_terminal, json_for_terminal};

/// Writes `value` as one JSON line through [`json_for_terminal`]: what `ward replay`,
/// `ward agent` (stdout and `jsonl:` sinks) and `ward findings list --format json` print, safe
/// on a terminal and the same JSON values for a program.
pub fn write_json_line(
    out: &mut impl std::io::Write,
    value: &impl serde::Serialize,
) -> std::io::Result<()> {
    let json = serde_json::to_string(value).map_err(std::io::Error::other)?;
    out.write_all(json_for_terminal(&json).as_bytes())?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn controls_bidi_and_invisibles_are_escaped() {
        assert_eq!(for_terminal("web-frontend"), "web-frontend");
        assert!(matches!(for_terminal("plain"), Cow::Borrowed(_)));
        assert_eq!(
            for_terminal("a\x1b[2J\x1b]0;pwned\x07b"),
            "a\\u001B[2J\\u001B]0;pwned\\u0007b"
        );
        assert_eq!(for_terminal("evil\u{202e}gnp.exe"), "evil\\u202Egnp.exe");
        assert_eq!(for_terminal("x\ny\tz\u{7f}"), "x\\u000Ay\\u0009z\\u007F");
        assert_eq!(for_terminal("\u{9b}31m"), "\\u009B31m");
        for c in [
            '\u{61c}', '\u{200b}', '\u{200c}', '\u{200d}', '\u{200e}', '\u{200f}', '\u{202a}',
            '\u{202b}', '\u{202c}', '\u{202d}', '\u{2060}', '\u{2066}', '\u{2067}', '\u{2068}',
            '\u{2069}', '\u{feff}',
        ] {
            assert!(is_hidden(c), "{:04x}", c as u32);
        }
        // Ordinary non-ASCII text stays as it is.
        for s in ["café", "日本語", "שלום", "emoji 🙂", "\u{a0}nbsp"] {
            assert_eq!(for_terminal(s), s);
        }
    }

    #[test]
    fn json_stays_valid_and_equal() {
        let v = serde_json::json!({"c": "evil\u{202e}gnp.exe\x1b[31m\u{9b}\u{feff}"});
        let text = serde_json::to_string_pretty(&v).unwrap();
        let safe = json_for_terminal(&text);
        assert!(!safe.chars().any(|c| is_hidden(c) && c != '\n'), "{safe}");
        assert!(safe.contains('\n'), "layout kept: {safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, v);
    }
}
