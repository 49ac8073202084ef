//! Bounded decoders for the encodings malware wraps Python in: base64 (standard, URL-safe,
//! reversed), hex, zlib/gzip, UTF-16LE text (PowerShell `-EncodedCommand`), `chr()` joins and
//! integer lists. Every decoder is linear in its input and caps its output.

use std::io::Read;

/// The kind of encoding a decoded layer was wrapped in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    Base64,
    Hex,
    Zlib,
    CharCodes,
    Escapes,
}

impl LayerKind {
    /// Short lowercase name, used in feature names and reasons.
    pub fn name(self) -> &'static str {
        match self {
            LayerKind::Base64 => "base64",
            LayerKind::Hex => "hex",
            LayerKind::Zlib => "zlib",
            LayerKind::CharCodes => "chr-codes",
            LayerKind::Escapes => "escapes",
        }
    }
}

/// Minimum length of a literal worth trying to decode.
pub const MIN_ENCODED_LEN: usize = 24;

fn b64val(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    }
}

/// True for a character of either base64 alphabet (padding excluded).
pub fn is_b64_char(c: u8) -> bool {
    b64val(c).is_some()
}

/// True when `s` (ignoring whitespace and padding) is made only of base64 characters and is long
/// enough to be an encoded payload rather than a word.
pub fn looks_base64(s: &[u8]) -> bool {
    let mut n = 0usize;
    let mut classes = 0u8;
    for &c in s {
        if c == b'\n' || c == b'\r' || c == b'=' {
            continue;
        }
        if b64val(c).is_none() {
            return false;
        }
        classes |= if c.is_ascii_uppercase() {
            1
        } else if c.is_ascii_lowercase() {
            2
        } else {
            4
        };
        n += 1;
    }
    n >= MIN_ENCODED_LEN && classes.count_ones() >= 2
}

/// Decodes base64 leniently (either alphabet, whitespace ignored), at most `max_out` bytes.
pub fn base64_decode(s: &[u8], max_out: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity((s.len() / 4 * 3).min(max_out));
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &c in s {
        if c.is_ascii_whitespace() {
            continue;
        }
        if c == b'=' {
            break;
        }
        let v = b64val(c)?;
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
            if out.len() >= max_out {
                break;
            }
        }
    }
    Some(out)
}

/// True for a long even-length hex string.
pub fn looks_hex(s: &[u8]) -> bool {
    let t = trim(s);
    t.len() >= 32 && t.len().is_multiple_of(2) && t.iter().all(|c| c.is_ascii_hexdigit())
}

fn trim(s: &[u8]) -> &[u8] {
    let a = s
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(s.len());
    let b = s
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(a, |p| p + 1);
    &s[a..b.max(a)]
}

/// Decodes hex, at most `max_out` bytes.
pub fn hex_decode(s: &[u8], max_out: usize) -> Option<Vec<u8>> {
    let t = trim(s);
    let mut out = Vec::with_capacity((t.len() / 2).min(max_out));
    for pair in t.chunks_exact(2) {
        let h = (pair[0] as char).to_digit(16)?;
        let l = (pair[1] as char).to_digit(16)?;
        out.push((h * 16 + l) as u8);
        if out.len() >= max_out {
            break;
        }
    }
    Some(out)
}

/// Inflates zlib or gzip data if `b` starts with such a header, at most `max_out` bytes.
pub fn inflate(b: &[u8], max_out: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let limit = max_out as u64;
    if b.len() >= 2 && b[0] == 0x78 && matches!(b[1], 0x01 | 0x5e | 0x9c | 0xda) {
        let _ = flate2::read::ZlibDecoder::new(b)
            .take(limit)
            .read_to_end(&mut out);
    } else if b.len() >= 3 && b[0] == 0x1f && b[1] == 0x8b {
        let _ = flate2::read::GzDecoder::new(b)
            .take(limit)
            .read_to_end(&mut out);
    } else {
        return None;
    }
    if out.is_empty() {
        None
    } else {
        Some(out)
    }
}

/// Fraction of bytes that are printable ASCII, whitespace or UTF-8 continuation/lead bytes.
pub fn printable_ratio(b: &[u8]) -> f32 {
    if b.is_empty() {
        return 0.0;
    }
    let n = b
        .iter()
        .filter(|&&c| {
            (0x20..0x7f).contains(&c) || c == b'\n' || c == b'\r' || c == b'\t' || c >= 0xc2
        })
        .count();
    n as f32 / b.len() as f32
}

/// Converts UTF-16LE text (every odd byte zero) to bytes, else `None`.
pub fn utf16le_to_ascii(b: &[u8]) -> Option<Vec<u8>> {
    if b.len() < 8 {
        return None;
    }
    let zeros = b.iter().skip(1).step_by(2).filter(|&&c| c == 0).count();
    if zeros * 10 < (b.len() / 2) * 9 {
        return None;
    }
    Some(b.iter().step_by(2).copied().collect())
}

/// Turns decoded bytes into analyzable text: inflates compressed data, converts UTF-16LE, and
/// keeps the result only if it is mostly printable. Returns the text and whether it was inflated.
pub fn to_text(mut b: Vec<u8>, max_out: usize) -> Option<(Vec<u8>, bool)> {
    let mut inflated = false;
    if let Some(x) = inflate(&b, max_out) {
        b = x;
        inflated = true;
    }
    if let Some(x) = utf16le_to_ascii(&b) {
        b = x;
    }
    if b.len() >= 8 && printable_ratio(&b) >= 0.85 {
        Some((b, inflated))
    } else {
        None
    }
}

/// Cheap check on the first decoded bytes: could the whole decode yield text?
fn plausible(prefix: &[u8]) -> bool {
    (prefix.len() >= 2 && prefix[0] == 0x78 && matches!(prefix[1], 0x01 | 0x5e | 0x9c | 0xda))
        || (prefix.len() >= 2 && prefix[0] == 0x1f && prefix[1] == 0x8b)
        || utf16le_to_ascii(prefix).is_some()
        || printable_ratio(prefix) >= 0.8
}

const PROBE: usize = 512;

/// Tries every literal decoding on one string literal. Returns the decoded text and its kind.
/// A short prefix is decoded first so that binary blobs are rejected without a full decode.
pub fn decode_literal(s: &[u8], max_out: usize) -> Option<(Vec<u8>, LayerKind)> {
    if s.len() < MIN_ENCODED_LEN {
        return None;
    }
    if looks_hex(s) {
        if let Some(b) = hex_decode(s, max_out) {
            if let Some((t, z)) = to_text(b, max_out) {
                return Some((t, if z { LayerKind::Zlib } else { LayerKind::Hex }));
            }
        }
    }
    if looks_base64(s) {
        let head = &s[..s.len().min(PROBE)];
        let probe_ok = base64_decode(head, PROBE).is_some_and(|p| plausible(&p));
        if let Some(b) = base64_decode(s, max_out).filter(|_| probe_ok) {
            if let Some((t, z)) = to_text(b, max_out) {
                return Some((
                    t,
                    if z {
                        LayerKind::Zlib
                    } else {
                        LayerKind::Base64
                    },
                ));
            }
        }
        // Reversed base64 (`'...'[::-1]`).
        let t = trim(s);
        let tail: Vec<u8> = t[t.len().saturating_sub(PROBE)..]
            .iter()
            .rev()
            .copied()
            .collect();
        let tail = &tail[..tail.len() - tail.len() % 4];
        if !base64_decode(tail, PROBE).is_some_and(|p| plausible(&p)) {
            return None;
        }
        let rev: Vec<u8> = t.iter().rev().copied().collect();
        if let Some(b) = base64_decode(&rev, max_out) {
            if let Some((t, z)) = to_text(b, max_out) {
                return Some((
                    t,
                    if z {
                        LayerKind::Zlib
                    } else {
                        LayerKind::Base64
                    },
                ));
            }
        }
    }
    None
}

/// Shannon entropy in bits per byte.
pub fn entropy(b: &[u8]) -> f32 {
    if b.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &c in b {
        counts[c as usize] += 1;
    }
    let n = b.len() as f32;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f32 / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_roundtrip() {
        // "import socket,os,pty" base64
        let s = b"aW1wb3J0IHNvY2tldCxvcyxwdHk=";
        let (t, k) = decode_literal(s, 1 << 20).unwrap();
        assert_eq!(t, b"import socket,os,pty");
        assert_eq!(k, LayerKind::Base64);
    }

    #[test]
    fn hex_and_zlib() {
        let s = b"696d706f727420736f636b65742c6f732c707479";
        assert_eq!(
            decode_literal(s, 1 << 20).unwrap().0,
            b"import socket,os,pty"
        );
        use std::io::Write;
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b"print('hello world from zlib')").unwrap();
        let z = e.finish().unwrap();
        let (t, _) = to_text(z, 1 << 20).unwrap();
        assert_eq!(t, b"print('hello world from zlib')");
    }

    #[test]
    fn bounded_inflate() {
        use std::io::Write;
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&vec![b'a'; 10 << 20]).unwrap();
        let z = e.finish().unwrap();
        assert_eq!(inflate(&z, 1000).unwrap().len(), 1000);
    }

    #[test]
    fn words_are_not_base64() {
        assert!(!looks_base64(b"hello"));
        assert!(!looks_base64(b"this is a normal sentence with spaces!"));
        assert!(decode_literal(b"abcdefghijklmnopqrstuvwxyzabcdef", 1 << 20).is_none());
    }
}
