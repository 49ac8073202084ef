//! Finding text shown to people or handed to other programs: attacker-controlled text (container and pod names, argv,
//! paths) must neither drive the terminal nor disguise itself.
//!
//! Escaped, as `\uXXXX`: C0 controls (U+0000-001F: ESC starts clear-screen, window-title and
//! colour sequences; a newline would forge a table row), DEL, C1 controls (U+0080-009F: U+009B
//! is CSI on terminals that take 8-bit controls), the bidirectional formatting characters
//! (U+061C, U+200E/F, U+202A-202E, U+2066-2069: `evil\u202egnp.exe` would read as
//! `evilexe.png`) and the invisible ones (U+200B-200D, U+2060, U+FEFF). `\uXXXX` is also
//! JSON's escape, so the same rule keeps a JSON text valid and equal to the original. The web
//! console applies the same list (`isHidden` in `ward-api/assets/app.js`).

use std::borrow::Cow;

/// True for a character that is shown as an escape rather than printed.
pub fn is_hidden(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{61c}'
        | '\u{200b}'..='\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2060}'
        | '\u{2066}'..='\u{2069}'
        | '\u{feff}')
}

pub fn escape_where(s: &str, hide: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(&hide) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if hide(c) {
            out.push_str(&format!("\\u{:04X}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `s` for one line of human-readable output (a table cell, a summary): every hidden
/// character, newlines and tabs included, as `\uXXXX`.
pub fn for_terminal(s: &str) -> Cow<'_, str> {
    escape_where(s, is_hidden)
}

/// A JSON text (as serde_json writes it, pretty or not) for a terminal: hidden characters
/// other than C0 as `\uXXXX`. serde_json already escapes C0 inside strings, so the C0 left
/// (newlines, tabs) are the layout's; the result is valid JSON with the same values.
pub fn json_for_terminal(json: &str) -> Cow<'_, str> {
    escape_where(json, |c| c >= '\u{7f}' && is_hidden(c))
}

/// `s` with every non-ASCII character and every control as `\uXXXX` (UTF-16 units), for
/// outputs whose receivers want ASCII (Falco's `output` line, syslog messages).
pub fn ascii(s: &str) -> Cow<'_, str> {
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if (' '..='~').contains(&c) {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for u in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{:04X}", u));
            }
        }
    }
    Cow::Owned(out)
}
