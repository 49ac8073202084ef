//! [`StrList`]: a list of strings in one allocation, for the environment of an exec.
//!
//! An exec's `envp` has dozens of entries; as a `Vec<String>` each is an allocation on the
//! agent's hot path (decoding, then dropping, every exec: about half of the agent's CPU per
//! exec before this type). The entries are kept NUL-separated in one string instead (an
//! environment entry cannot hold a NUL), and read as `&str` slices. Serialized as a JSON
//! list of strings, as a `Vec<String>` would be.

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A list of strings stored NUL-separated in one `String`. An entry given with a NUL in it
/// has the NUL replaced by U+FFFD (no real environment entry holds one).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct StrList {
    /// The entries joined by `'\0'`, no trailing separator.
    joined: String,
    /// How many entries (0 and 1 empty entry both have an empty `joined`).
    len: usize,
}

impl StrList {
    pub const fn new() -> StrList {
        StrList {
            joined: String::new(),
            len: 0,
        }
    }

    /// From a NUL-terminated block as the kernel lays out argv/envp (`a\0b\0`), taking its
    /// buffer; a last entry without its NUL (cut by a size cap) is kept. Invalid UTF-8 is
    /// replaced (lossy); valid UTF-8 (one validation over the whole block) is not copied.
    pub fn from_nul_vec(mut buf: Vec<u8>) -> StrList {
        if buf.is_empty() {
            return StrList::new();
        }
        if buf.last() == Some(&0) {
            buf.pop();
        }
        let len = memchr::memchr_iter(0, &buf).count() + 1;
        let joined = match String::from_utf8(buf) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        StrList { joined, len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entries, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + Clone + '_ {
        (self.len != 0)
            .then(|| self.joined.split('\0'))
            .into_iter()
            .flatten()
    }

    /// The entries joined by NUL (no trailing NUL): for substring searches over all of them.
    pub fn joined(&self) -> &str {
        &self.joined
    }

    /// Appends an entry.
    pub fn push(&mut self, entry: &str) {
        if self.len > 0 {
            self.joined.push('\0');
        }
        if entry.contains('\0') {
            self.joined.push_str(&entry.replace('\0', "\u{FFFD}"));
        } else {
            self.joined.push_str(entry);
        }
        self.len += 1;
    }
}

impl fmt::Debug for StrList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<S: AsRef<str>> FromIterator<S> for StrList {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> StrList {
        let mut l = StrList::new();
        for s in iter {
            l.push(s.as_ref());
        }
        l
    }
}

impl<S: AsRef<str>> PartialEq<[S]> for StrList {
    fn eq(&self, other: &[S]) -> bool {
        self.len == other.len() && self.iter().zip(other).all(|(a, b)| a == b.as_ref())
    }
}

impl<S: AsRef<str>> PartialEq<Vec<S>> for StrList {
    fn eq(&self, other: &Vec<S>) -> bool {
        *self == other[..]
    }
}

impl<S: AsRef<str>, const N: usize> PartialEq<[S; N]> for StrList {
    fn eq(&self, other: &[S; N]) -> bool {
        *self == other[..]
    }
}

impl Serialize for StrList {
    fn serialize<Se: Serializer>(&self, s: Se) -> Result<Se::Ok, Se::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for StrList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<StrList, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrList, A::Error> {
                let mut l = StrList::new();
                while let Some(s) = seq.next_element::<std::borrow::Cow<'de, str>>()? {
                    l.push(&s);
                }
                Ok(l)
            }
        }
        d.deserialize_seq(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_split_as_the_kernel_lays_them_out() {
        let block = |b: &[u8]| StrList::from_nul_vec(b.to_vec());
        let l = block(b"A=1\0B=\0\0C\0");
        assert_eq!(l, ["A=1", "B=", "", "C"]);
        assert_eq!(l.len(), 4);
        assert_eq!(block(b"A=1\0cu"), ["A=1", "cu"]);
        assert!(block(b"").is_empty());
        // One empty entry is not an empty list.
        let one = block(b"\0");
        assert_eq!(one.len(), 1);
        assert_eq!(one, [""]);
        assert_eq!(block(b"X=\xff\0"), ["X=\u{FFFD}"]);
    }

    #[test]
    fn serializes_as_a_list_of_strings_both_ways() {
        for v in [vec![], vec![""], vec!["A=1", "", "B=2"]] {
            let l: StrList = v.iter().collect();
            let json = serde_json::to_string(&l).unwrap();
            assert_eq!(json, serde_json::to_string(&v).unwrap());
            let back: StrList = serde_json::from_str(&json).unwrap();
            assert_eq!(back, l);
            assert_eq!(back, v);
        }
        let e = serde_json::from_str::<StrList>("\"A=1\"").unwrap_err();
        assert!(e.to_string().contains("a list of strings"), "{e}");
        let nul: StrList = serde_json::from_str(r#"["A\u0000B"]"#).unwrap();
        assert_eq!(nul, ["A\u{FFFD}B"]);
        let l: StrList = ["A=1", "", "B=2"].iter().collect();
        assert_eq!(format!("{l:?}"), r#"["A=1", "", "B=2"]"#);
    }
}
