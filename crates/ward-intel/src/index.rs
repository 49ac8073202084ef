//! The compact sorted hash index and the comment interner.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hasher};

/// Number of leading digest bytes kept per hash; see the crate docs.
pub const KEY_BYTES: usize = 12;

/// Comment id meaning "no comment".
pub(crate) const NO_COMMENT: u32 = u32::MAX;

/// One indexed hash: the first [`KEY_BYTES`] bytes of the SHA-256, read as
/// big-endian integers so that integer order equals byte order, plus the
/// interned comment id. 16 bytes, alignment 8, no padding.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Entry {
    pub(crate) hi: u64,
    pub(crate) lo: u32,
    pub(crate) comment: u32,
}

const _: () = assert!(
    std::mem::size_of::<Entry>() == 8 + 4 + 4,
    "padding in Entry"
);

impl Entry {
    #[inline]
    pub(crate) fn key_of(digest: &[u8; 32]) -> (u64, u32) {
        let mut hi = [0u8; 8];
        hi.copy_from_slice(&digest[..8]);
        let mut lo = [0u8; 4];
        lo.copy_from_slice(&digest[8..KEY_BYTES]);
        (u64::from_be_bytes(hi), u32::from_be_bytes(lo))
    }

    #[inline]
    pub(crate) fn key(&self) -> (u64, u32) {
        (self.hi, self.lo)
    }
}

/// Sorted, de-duplicated entries plus a bucket table on the top bits of the
/// key, so a lookup touches one table slot and then binary-searches a run
/// of about 8 entries (about 2 cache lines) instead of the whole array.
#[derive(Debug, Default)]
pub(crate) struct Index {
    entries: Vec<Entry>,
    /// `buckets[b]..buckets[b + 1]` are the entries whose top `bucket_bits`
    /// bits equal `b`. Empty for small indexes (`bucket_bits == 0`).
    buckets: Vec<u32>,
    bucket_bits: u32,
}

/// Average entries per bucket aimed at by the bucket table.
const BUCKET_TARGET: usize = 8;
/// Largest bucket table: 2^24 + 1 slots (64 MiB), used from ~134M hashes.
const MAX_BUCKET_BITS: u32 = 24;

impl Index {
    /// Sorts, removes duplicate keys (keeping the entry with the lowest
    /// comment id, i.e. a commented one over an uncommented one) and builds
    /// the bucket table. Returns the index and the number of duplicates.
    pub(crate) fn build(mut entries: Vec<Entry>) -> (Index, u64, Vec<(u64, u32)>) {
        entries.sort_unstable();
        let before = entries.len();
        // `dedup_by` passes (later, earlier-kept); keeps the first of each run. The first
        // few duplicated keys are kept so their lines can be named.
        let mut dup_keys: Vec<(u64, u32)> = Vec::new();
        entries.dedup_by(|later, kept| {
            let same = later.key() == kept.key();
            if same && dup_keys.len() < crate::MAX_PROBLEMS && dup_keys.last() != Some(&kept.key())
            {
                dup_keys.push(kept.key());
            }
            same
        });
        let duplicates = (before - entries.len()) as u64;
        entries.shrink_to_fit();

        let n = entries.len();
        // Entry positions are stored as u32; more than 4G hashes cannot be
        // bucketed, fall back to plain binary search.
        let bucket_bits = if n <= u32::MAX as usize {
            let mut bits = 0u32;
            while bits < MAX_BUCKET_BITS && (n >> (bits + 1)) >= BUCKET_TARGET {
                bits += 1;
            }
            bits
        } else {
            0
        };
        let mut buckets = Vec::new();
        if bucket_bits > 0 {
            let slots = 1usize << bucket_bits;
            buckets.reserve_exact(slots + 1);
            let mut pos = 0usize;
            for b in 0..slots as u64 {
                while pos < n && (entries[pos].hi >> (64 - bucket_bits)) < b {
                    pos += 1;
                }
                buckets.push(pos as u32);
            }
            buckets.push(n as u32);
        }
        (
            Index {
                entries,
                buckets,
                bucket_bits,
            },
            duplicates,
            dup_keys,
        )
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub(crate) fn bucket_bits(&self) -> u32 {
        self.bucket_bits
    }

    /// The comment id stored for `digest`, if the digest's key is present.
    #[inline]
    pub(crate) fn get(&self, digest: &[u8; 32]) -> Option<u32> {
        let key = Entry::key_of(digest);
        let run = if self.bucket_bits == 0 {
            &self.entries[..]
        } else {
            let b = (key.0 >> (64 - self.bucket_bits)) as usize;
            let (start, end) = (self.buckets[b] as usize, self.buckets[b + 1] as usize);
            &self.entries[start..end]
        };
        run.binary_search_by(|e| e.key().cmp(&key))
            .ok()
            .map(|i| run[i].comment)
    }

    /// Heap bytes held (entries plus bucket table).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.buckets.capacity() * std::mem::size_of::<u32>()
    }
}

/// Interned comments: one string arena plus end offsets.
#[derive(Debug, Default)]
pub(crate) struct Comments {
    text: String,
    /// Comment `i` is `text[ends[i-1]..ends[i]]` (`0` for `i == 0`).
    ends: Vec<u32>,
}

impl Comments {
    pub(crate) fn get(&self, id: u32) -> Option<&str> {
        let i = id as usize;
        let end = *self.ends.get(i)? as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.text.get(start..end)
    }

    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.text.capacity() + self.ends.capacity() * std::mem::size_of::<u32>()
    }
}

/// Builds [`Comments`], de-duplicating equal strings.
///
/// The map is keyed by a 64-bit hash of the text and verified against the
/// arena; on the (astronomically rare, or adversarially forced) case of two
/// different texts with the same hash the second is simply stored again
/// unmapped, so correctness never depends on the hash and there is no
/// collision chain to exploit.
#[derive(Debug, Default)]
pub(crate) struct CommentInterner {
    comments: Comments,
    map: HashMap<u64, u32>,
}

impl CommentInterner {
    /// Returns the id of `s`, or [`NO_COMMENT`] when the arena is full
    /// (4 GiB of distinct comment text or `u32::MAX - 1` comments).
    pub(crate) fn intern(&mut self, s: &str) -> u32 {
        let mut h = DefaultHasher::new();
        h.write(s.as_bytes());
        let h = h.finish();
        if let Some(&id) = self.map.get(&h) {
            if self.comments.get(id) == Some(s) {
                return id;
            }
            return self.push(s).unwrap_or(NO_COMMENT);
        }
        match self.push(s) {
            Some(id) => {
                self.map.insert(h, id);
                id
            }
            None => NO_COMMENT,
        }
    }

    fn push(&mut self, s: &str) -> Option<u32> {
        let id = u32::try_from(self.comments.ends.len()).ok()?;
        if id == NO_COMMENT {
            return None;
        }
        let end = u32::try_from(self.comments.text.len() + s.len()).ok()?;
        self.comments.text.push_str(s);
        self.comments.ends.push(end);
        Some(id)
    }

    pub(crate) fn finish(self) -> Comments {
        let mut c = self.comments;
        c.text.shrink_to_fit();
        c.ends.shrink_to_fit();
        c
    }
}
