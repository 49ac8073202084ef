//! A small, forgiving, linear-time Python lexer over raw bytes.
//!
//! It never fails: unterminated strings end at the end of the line (or input), unknown bytes
//! become operator tokens. It is not a parser and executes nothing.

use std::borrow::Cow;

/// One lexical token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok<'a> {
    /// An identifier (ASCII letters, digits, `_`, or any non-ASCII byte).
    Ident(&'a [u8]),
    /// A string literal; `body` is the unescaped content.
    Str { body: Cow<'a, [u8]>, bytes: bool },
    /// A numeric literal, as written.
    Num(&'a [u8]),
    /// Any other single byte (operators, brackets, punctuation).
    Op(u8),
}

/// Iterator over the tokens of `src`.
pub struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
}

impl<'a> Lexer<'a> {
    /// Creates a lexer over `src`.
    pub fn new(src: &'a [u8]) -> Self {
        Lexer { src, pos: 0 }
    }
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_ident_cont(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

fn string_prefix_flags(p: &[u8]) -> Option<(bool, bool)> {
    // returns (raw, bytes)
    if p.len() > 2 {
        return None;
    }
    let mut raw = false;
    let mut bytes = false;
    for &c in p {
        match c.to_ascii_lowercase() {
            b'r' => raw = true,
            b'b' => bytes = true,
            b'u' | b'f' => {}
            _ => return None,
        }
    }
    Some((raw, bytes))
}

impl<'a> Lexer<'a> {
    fn lex_string(&mut self, raw: bool, bytes: bool) -> Tok<'a> {
        let src = self.src;
        let q = src[self.pos];
        let triple = self.pos + 2 < src.len() && src[self.pos + 1] == q && src[self.pos + 2] == q;
        let start;
        let end;
        if triple {
            start = self.pos + 3;
            let mut i = start;
            loop {
                if i >= src.len() {
                    end = src.len();
                    self.pos = src.len();
                    break;
                }
                let c = src[i];
                if c == b'\\' {
                    i += 2;
                    continue;
                }
                if c == q && i + 2 < src.len() && src[i + 1] == q && src[i + 2] == q {
                    end = i;
                    self.pos = i + 3;
                    break;
                }
                i += 1;
            }
        } else {
            start = self.pos + 1;
            let mut i = start;
            loop {
                if i >= src.len() {
                    end = src.len();
                    self.pos = src.len();
                    break;
                }
                let c = src[i];
                if c == b'\\' {
                    i += 2;
                    continue;
                }
                if c == q {
                    end = i;
                    self.pos = i + 1;
                    break;
                }
                if c == b'\n' {
                    end = i;
                    self.pos = i;
                    break;
                }
                i += 1;
            }
        }
        let end = end.min(src.len());
        let raw_body = &src[start.min(end)..end];
        let body = if raw || !raw_body.contains(&b'\\') {
            Cow::Borrowed(raw_body)
        } else {
            Cow::Owned(unescape(raw_body))
        };
        Tok::Str { body, bytes }
    }
}

impl<'a> Iterator for Lexer<'a> {
    type Item = Tok<'a>;

    fn next(&mut self) -> Option<Tok<'a>> {
        let src = self.src;
        loop {
            if self.pos >= src.len() {
                return None;
            }
            let c = src[self.pos];
            match c {
                b' ' | b'\t' | b'\r' | b'\n' | b'\x0c' | b'\\' => self.pos += 1,
                b'#' => {
                    while self.pos < src.len() && src[self.pos] != b'\n' {
                        self.pos += 1;
                    }
                }
                b'\'' | b'"' => return Some(self.lex_string(false, false)),
                _ if is_ident_start(c) => {
                    let s = self.pos;
                    while self.pos < src.len() && is_ident_cont(src[self.pos]) {
                        self.pos += 1;
                    }
                    let word = &src[s..self.pos];
                    if self.pos < src.len() && (src[self.pos] == b'\'' || src[self.pos] == b'"') {
                        if let Some((raw, bytes)) = string_prefix_flags(word) {
                            return Some(self.lex_string(raw, bytes));
                        }
                    }
                    return Some(Tok::Ident(word));
                }
                _ if c.is_ascii_digit() => {
                    let s = self.pos;
                    while self.pos < src.len()
                        && (src[self.pos].is_ascii_alphanumeric()
                            || src[self.pos] == b'_'
                            || src[self.pos] == b'.')
                    {
                        self.pos += 1;
                    }
                    return Some(Tok::Num(&src[s..self.pos]));
                }
                _ => {
                    self.pos += 1;
                    return Some(Tok::Op(c));
                }
            }
        }
    }
}

fn hexval(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Resolves Python escape sequences (`\x41`, `\101`, `\n`, `\u0041`, ...). Unknown escapes are kept.
pub fn unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c != b'\\' || i + 1 >= s.len() {
            out.push(c);
            i += 1;
            continue;
        }
        let e = s[i + 1];
        match e {
            b'n' => {
                out.push(b'\n');
                i += 2;
            }
            b't' => {
                out.push(b'\t');
                i += 2;
            }
            b'r' => {
                out.push(b'\r');
                i += 2;
            }
            b'\\' | b'\'' | b'"' => {
                out.push(e);
                i += 2;
            }
            b'\n' => i += 2,
            b'x' => {
                if i + 3 < s.len() {
                    if let (Some(h), Some(l)) = (hexval(s[i + 2]), hexval(s[i + 3])) {
                        out.push(h * 16 + l);
                        i += 4;
                        continue;
                    }
                }
                out.push(c);
                i += 1;
            }
            b'u' | b'U' => {
                let n = if e == b'u' { 4 } else { 8 };
                if i + 2 + n <= s.len() {
                    let mut v: u32 = 0;
                    let mut ok = true;
                    for &h in &s[i + 2..i + 2 + n] {
                        match hexval(h) {
                            Some(d) => v = v * 16 + d as u32,
                            None => {
                                ok = false;
                                break;
                            }
                        }
                    }
                    if ok {
                        if let Some(ch) = char::from_u32(v) {
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                            i += 2 + n;
                            continue;
                        }
                    }
                }
                out.push(c);
                i += 1;
            }
            b'0'..=b'7' => {
                let mut v: u32 = 0;
                let mut j = i + 1;
                while j < s.len() && j < i + 4 && (b'0'..=b'7').contains(&s[j]) {
                    v = v * 8 + (s[j] - b'0') as u32;
                    j += 1;
                }
                out.push((v & 0xff) as u8);
                i = j;
            }
            _ => {
                out.push(c);
                out.push(e);
                i += 2;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexes_basic_python() {
        let toks: Vec<_> = Lexer::new(b"import os\nx = b'\\x41B' + r\"\\x\" # c\n").collect();
        assert_eq!(toks[0], Tok::Ident(b"import"));
        assert!(matches!(&toks[4], Tok::Str { body, bytes: true } if body.as_ref() == b"AB"));
        assert!(matches!(&toks[6], Tok::Str { body, bytes: false } if body.as_ref() == b"\\x"));
        assert_eq!(toks.len(), 7);
    }

    #[test]
    fn unterminated_and_triple() {
        let toks: Vec<_> = Lexer::new(b"'''abc\n'def").collect();
        assert_eq!(toks.len(), 1);
        let toks: Vec<_> = Lexer::new(b"'abc\nx").collect();
        assert_eq!(toks.len(), 2);
    }
}
