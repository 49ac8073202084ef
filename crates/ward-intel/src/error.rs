//! Fatal errors of feed loading.

use std::io;
use std::path::PathBuf;

/// A fatal error: the feed could not be loaded at all.
///
/// Malformed lines are *not* fatal; they are counted in
/// [`FeedReport`](crate::FeedReport). `feed` is the file path for
/// [`Feed::load`](crate::Feed::load) and the given name for
/// [`Feed::parse`](crate::Feed::parse).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IntelError {
    /// The feed file could not be opened.
    #[error("cannot open threat-intel feed {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Reading the feed failed part-way.
    #[error("cannot read threat-intel feed {feed} at line {line}: {source}")]
    Read {
        feed: String,
        line: u64,
        #[source]
        source: io::Error,
    },

    /// The feed is CSV but its header has no `sha256_hash` / `sha256` column.
    #[error(
        "threat-intel feed {feed}: CSV header at line {line} has no sha256 column \
         (expected a column named \"sha256_hash\" or \"sha256\"): {header}"
    )]
    NoSha256Column {
        feed: String,
        line: u64,
        /// The header line (possibly truncated).
        header: String,
    },

    /// The feed has malformed lines and not a single valid SHA-256: most
    /// likely it is not a hash feed at all, or the wrong format was forced.
    #[error(
        "threat-intel feed {feed}: no valid SHA-256 hash, {malformed} malformed line(s); \
         first at line {line}: {reason}"
    )]
    NoValidHashes {
        feed: String,
        malformed: u64,
        /// Line number of the first malformed line.
        line: u64,
        /// What is wrong with that line.
        reason: String,
    },

    /// The feed loaded but holds no SHA-256 hash at all (empty, only comments, or only
    /// SHA-1 / MD5 lines). Not returned by loading (an empty feed loads); see
    /// [`Feed::require_hashes`](crate::Feed::require_hashes).
    #[error(
        "threat-intel feed {feed}: no SHA-256 hash in {lines} line(s) \
         ({skipped_sha1} SHA-1 and {skipped_md5} MD5 skipped, the rest blank or comments)"
    )]
    NoHashes {
        feed: String,
        lines: u64,
        skipped_sha1: u64,
        skipped_md5: u64,
    },

    /// A URL feed in CSV whose header has no `url` column.
    #[error(
        "URL feed {feed}: CSV header at line {line} has no url column \
         (expected a column named \"url\", as in the URLhaus database dump): {header}"
    )]
    NoUrlColumn {
        feed: String,
        line: u64,
        header: String,
    },

    /// A URL feed with malformed lines and not a single valid entry.
    #[error(
        "URL feed {feed}: no valid URL, host or domain, {malformed} malformed line(s); \
         first at line {line}: {reason}"
    )]
    NoValidUrls {
        feed: String,
        malformed: u64,
        line: u64,
        reason: String,
    },

    /// A URL feed that loaded but holds no entry (empty or only comments); see
    /// [`UrlFeed::require_entries`](crate::UrlFeed::require_entries).
    #[error("URL feed {feed}: no URL, host or domain in {lines} line(s) (blank or comments)")]
    NoUrlEntries { feed: String, lines: u64 },
}
