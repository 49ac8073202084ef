//! Threat-intel feeds for Ward: load lists of known-bad SHA-256 file
//! hashes and look up `[u8; 32]` digests against them; and URL feeds (known-bad URLs, hosts
//! and domains, plain lists or the URLhaus CSV dump) for the *Malicious URL Observed* rule,
//! in [`url`].
//!
//! # Feed formats
//!
//! The format is auto-detected from the content, or forced with
//! `Some(FeedFormat::..)`. In every format blank lines and lines starting
//! with `#` (after optional blanks) are ignored, CRLF line endings and a
//! UTF-8 BOM are accepted, hex digits may be any case, and a line that holds
//! a SHA-1 (40 hex digits) or MD5 (32 hex digits) instead of a SHA-256 is
//! skipped and counted ([`FeedReport::skipped_sha1`],
//! [`FeedReport::skipped_md5`]), not reported as malformed.
//!
//! 1. [`FeedFormat::Plain`]: one SHA-256 (64 hex digits) per line. Text
//!    after the hash, separated by blanks, `#` or `;`, is a trailing comment and
//!    is kept as the entry's comment (so `sha256sum` output also loads, with
//!    the file name as comment).
//! 2. [`FeedFormat::HashComment`]: `HASH;COMMENT` lines (signature-base
//!    style). Plain and hash-comment lines are in fact read by the same
//!    rule (hash, then optional blanks, `#` or `;` and a comment), so a
//!    feed mixing both loads whichever was detected; the reported format
//!    names what the first data line looked like.
//! 3. [`FeedFormat::Csv`]: comma-separated values with a header that names a
//!    `sha256_hash` or `sha256` column (case-insensitive), values optionally
//!    quoted with `"` (`""` escapes a quote; a row is one line). The header
//!    may be a normal first line or, as in MalwareBazaar exports, the last
//!    `#` comment line containing a comma before the first data row, e.g.
//!    `# "first_seen_utc","sha256_hash","md5_hash",...`. The comment of an
//!    entry is the `signature` column unless empty or `n/a`, else the
//!    `file_name` column, else none.
//!
//! Detection looks at the first data line (not blank, not `#`): if it starts
//! with a 32/40/64-hex-digit token, the byte after it decides (`;` →
//! hash-comment, `,` → CSV, anything else → plain); otherwise a line naming
//! a sha256 column or containing `,` is CSV, one containing `;` is
//! hash-comment, and anything else is plain (and will be malformed).
//!
//! # Errors
//!
//! Fatal ([`IntelError`]): the file cannot be opened or read; CSV without a
//! sha256 column (names the header line); a feed with malformed lines and no
//! valid SHA-256 at all (names the first bad line and what is wrong).
//! Otherwise malformed lines (bad hash, invalid UTF-8, longer than
//! [`MAX_LINE_LEN`], broken CSV row) are counted in the [`FeedReport`] and
//! the first [`MAX_PROBLEMS`] are listed with line numbers. An empty feed loads
//! (a warning is logged; the agent runs with it); [`Feed::require_hashes`] turns
//! it into [`IntelError::NoHashes`], which `ward intel check` reports and exits 1
//! for, as for a feed of garbage.
//!
//! # Memory design
//!
//! Each feed is one sorted `Vec` of 16-byte `#[repr(C)]` entries without
//! padding: the first [`KEY_BYTES`] = 12 bytes of the digest (as a big-endian
//! `u64` and `u32`, so integer order is byte order) and a `u32` comment id
//! (`u32::MAX` = no comment). Comments are interned into one string arena
//! (text plus a `u32` end offset per distinct comment, each cut to
//! [`MAX_COMMENT_LEN`] bytes), so repeated family names cost nothing per
//! hash. A bucket table on the top bits of the key (about one `u32` per 8
//! entries) narrows each lookup to a run of ~8 entries that is then binary
//! searched. 10 million hashes thus take about 165 MB, against well over
//! 500 MB for a `HashSet<[u8; 32]>`.
//!
//! **Truncation.** Only 96 of the 256 digest bits are compared. SHA-256
//! output is uniformly distributed, so a digest that is *not* in a feed of
//! `n` hashes falsely matches with probability at most `n / 2^96`: for
//! `n = 10^7` that is about `1.3e-22` per lookup, i.e. about `4e-8` expected
//! false matches after `3e14` lookups (a million per second for ten years).
//! Provoking one on purpose means finding a file whose SHA-256 shares 96
//! bits with a listed hash, about `2^96` hash evaluations. Two *different*
//! listed hashes share a key (and are merged and counted as a duplicate)
//! with probability about `n^2 / 2^97`, `6e-16` for `n = 10^7`.
//!
//! Parsing streams the input: each line is read into one reused buffer
//! capped at [`MAX_LINE_LEN`] bytes, hex is decoded by hand, and nothing is
//! allocated per line except for new distinct comments. Duplicates are found
//! after sorting; of duplicate hashes the one with a comment is kept (among
//! different comments, the one that first appeared earliest).

mod error;
mod index;
mod parse;
mod report;
pub mod url;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod url_tests;

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

pub use error::IntelError;
pub use index::KEY_BYTES;
pub use parse::{MAX_COMMENT_LEN, MAX_LINE_LEN};
pub use report::{
    DuplicateLine, FeedFormat, FeedReport, Problem, ProblemKind, UnknownFormat, MAX_PROBLEMS,
};

use index::{Comments, Index};
pub use url::{UrlEntryKind, UrlFeed, UrlFeedFormat, UrlFeedReport, UrlMatch};

/// Read buffer size for feed files.
const READ_BUF: usize = 256 * 1024;

/// A hash found in a feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IntelMatch<'a> {
    /// Name of the feed (its file name when loaded with [`Feed::load`]).
    pub feed: &'a str,
    /// The entry's comment (signature, description, file name), if any.
    pub comment: Option<&'a str>,
}

/// One loaded feed: a compact index of its SHA-256 hashes plus the report
/// of how loading went.
pub struct Feed {
    name: String,
    index: Index,
    comments: Comments,
    report: FeedReport,
}

impl fmt::Debug for Feed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Feed")
            .field("name", &self.name)
            .field("hashes", &self.index.len())
            .field("comments", &self.comments.len())
            .field("report", &self.report)
            .finish()
    }
}

impl Feed {
    /// Loads a feed file, auto-detecting its format. The feed is named
    /// after the file name; errors name the full path.
    pub fn load(path: &Path) -> Result<Feed, IntelError> {
        Feed::load_with_format(path, None)
    }

    /// Loads a feed file; `format: None` auto-detects.
    pub fn load_with_format(path: &Path, format: Option<FeedFormat>) -> Result<Feed, IntelError> {
        let file = File::open(path).map_err(|source| IntelError::Open {
            path: path.to_owned(),
            source,
        })?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let label = path.display().to_string();
        let mut reader = BufReader::with_capacity(READ_BUF, file);
        let (mut feed, dup_keys) = Feed::parse_keys(name, &label, &mut reader, format)?;
        if !dup_keys.is_empty() {
            // Name the duplicate lines: a second pass watching only the duplicated keys.
            let file = File::open(path).map_err(|source| IntelError::Open {
                path: path.to_owned(),
                source,
            })?;
            let mut reader = BufReader::with_capacity(READ_BUF, file);
            let detected = Some(feed.report.format);
            feed.report.duplicate_lines = parse::Parser::new(&feed.name, &label, detected)
                .watching(&dup_keys)
                .find_duplicates(&mut reader)?;
        }
        Ok(feed)
    }

    /// Parses a feed from `reader`; `name` names the feed in matches,
    /// reports and errors. `format: None` auto-detects.
    pub fn parse(
        name: &str,
        mut reader: impl BufRead,
        format: Option<FeedFormat>,
    ) -> Result<Feed, IntelError> {
        Feed::parse_labeled(name.to_owned(), name, &mut reader, format)
    }

    fn parse_labeled(
        name: String,
        label: &str,
        reader: &mut dyn BufRead,
        format: Option<FeedFormat>,
    ) -> Result<Feed, IntelError> {
        Feed::parse_keys(name, label, reader, format).map(|(feed, _)| feed)
    }

    fn parse_keys(
        name: String,
        label: &str,
        reader: &mut dyn BufRead,
        format: Option<FeedFormat>,
    ) -> Result<(Feed, Vec<(u64, u32)>), IntelError> {
        let parsed = parse::Parser::new(&name, label, format).run(reader)?;
        Ok((
            Feed {
                name,
                index: parsed.index,
                comments: parsed.comments,
                report: parsed.report,
            },
            parsed.dup_keys,
        ))
    }

    /// The feed name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How loading went.
    pub fn report(&self) -> &FeedReport {
        &self.report
    }

    /// Number of distinct SHA-256 hashes.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.len() == 0
    }

    /// An error naming why when the feed holds no SHA-256 hash: what `ward intel check`
    /// treats like a feed of garbage ([`IntelError::NoValidHashes`]), since it can never match.
    pub fn require_hashes(&self) -> Result<(), IntelError> {
        if !self.is_empty() {
            return Ok(());
        }
        let r = &self.report;
        Err(IntelError::NoHashes {
            feed: r.feed.clone(),
            lines: r.lines,
            skipped_sha1: r.skipped_sha1,
            skipped_md5: r.skipped_md5,
        })
    }

    /// Looks up a SHA-256 digest in this feed.
    pub fn lookup(&self, sha256: &[u8; 32]) -> Option<IntelMatch<'_>> {
        self.index.get(sha256).map(|id| IntelMatch {
            feed: &self.name,
            comment: self.comments.get(id),
        })
    }

    pub fn contains(&self, sha256: &[u8; 32]) -> bool {
        self.index.get(sha256).is_some()
    }

    /// Heap bytes of the in-memory index: entries, bucket table and
    /// interned comments.
    pub fn memory_bytes(&self) -> usize {
        self.index.heap_bytes() + self.comments.heap_bytes()
    }
}

/// Several feeds, looked up together: hash feeds and URL feeds ([`url`]).
#[derive(Debug, Default)]
pub struct IntelSet {
    feeds: Vec<Feed>,
    url_feeds: Vec<UrlFeed>,
}

impl IntelSet {
    pub fn new() -> Self {
        IntelSet::default()
    }

    /// Loads every file (format auto-detected); stops at the first fatal
    /// error.
    pub fn load<P: AsRef<Path>>(paths: impl IntoIterator<Item = P>) -> Result<Self, IntelError> {
        paths.into_iter().map(|p| Feed::load(p.as_ref())).collect()
    }

    /// Adds a feed; lookups consult feeds in insertion order.
    pub fn push(&mut self, feed: Feed) {
        self.feeds.push(feed);
    }

    pub fn feeds(&self) -> &[Feed] {
        &self.feeds
    }

    /// Total hashes over all feeds (a hash listed in two feeds counts twice).
    pub fn len(&self) -> usize {
        self.feeds.iter().map(Feed::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.feeds.iter().all(Feed::is_empty)
    }

    /// The match in the first feed (in insertion order) listing `sha256`.
    pub fn lookup(&self, sha256: &[u8; 32]) -> Option<IntelMatch<'_>> {
        self.feeds.iter().find_map(|f| f.lookup(sha256))
    }

    /// The matches in every feed listing `sha256`, in insertion order.
    pub fn lookup_all(&self, sha256: &[u8; 32]) -> impl Iterator<Item = IntelMatch<'_>> + '_ {
        let digest = *sha256;
        self.feeds.iter().filter_map(move |f| f.lookup(&digest))
    }

    /// Heap bytes of all feed indexes (hash and URL feeds).
    pub fn memory_bytes(&self) -> usize {
        self.feeds.iter().map(Feed::memory_bytes).sum::<usize>()
            + self
                .url_feeds
                .iter()
                .map(UrlFeed::memory_bytes)
                .sum::<usize>()
    }

    /// Adds a URL feed; lookups consult URL feeds in insertion order.
    pub fn push_url_feed(&mut self, feed: UrlFeed) {
        self.url_feeds.push(feed);
    }

    pub fn url_feeds(&self) -> &[UrlFeed] {
        &self.url_feeds
    }

    /// Whether any URL feed is loaded (the URL rule is only on with one).
    pub fn has_url_feeds(&self) -> bool {
        !self.url_feeds.is_empty()
    }

    /// The first URL feed listing `url` (as written in a command line) as a URL, or its host.
    pub fn lookup_url(&self, url: &str) -> Option<UrlMatch<'_>> {
        self.url_feeds.iter().find_map(|f| f.lookup_url(url))
    }

    /// The first URL feed listing `host` (as written in a command line) as a host or under a
    /// domain.
    pub fn lookup_host(&self, host: &str) -> Option<UrlMatch<'_>> {
        self.url_feeds.iter().find_map(|f| f.lookup_host(host))
    }
}

impl FromIterator<Feed> for IntelSet {
    fn from_iter<I: IntoIterator<Item = Feed>>(iter: I) -> Self {
        IntelSet {
            feeds: iter.into_iter().collect(),
            url_feeds: Vec::new(),
        }
    }
}

impl Extend<Feed> for IntelSet {
    fn extend<I: IntoIterator<Item = Feed>>(&mut self, iter: I) {
        self.feeds.extend(iter);
    }
}
