//! Per-feed load statistics and problems.

use std::fmt;
use std::str::FromStr;

/// Maximum number of [`Problem`]s kept per feed; counts stay complete.
pub const MAX_PROBLEMS: usize = 50;

/// The layout of a feed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeedFormat {
    /// One SHA-256 per line, optional trailing comment after whitespace or `#`.
    Plain,
    /// `HASH;COMMENT` per line (signature-base style).
    HashComment,
    /// CSV with a header naming a `sha256_hash` or `sha256` column
    /// (MalwareBazaar export style).
    Csv,
}

impl FeedFormat {
    /// The name accepted by [`FromStr`]: `plain`, `hash-comment` or `csv`.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedFormat::Plain => "plain",
            FeedFormat::HashComment => "hash-comment",
            FeedFormat::Csv => "csv",
        }
    }
}

impl fmt::Display for FeedFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error of parsing a [`FeedFormat`] name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown feed format {0:?} (expected plain, hash-comment or csv)")]
pub struct UnknownFormat(pub String);

impl FromStr for FeedFormat {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "plain" | "txt" | "sha256" => Ok(FeedFormat::Plain),
            "hash-comment" | "hash_comment" | "hashcomment" | "semicolon" => {
                Ok(FeedFormat::HashComment)
            }
            "csv" => Ok(FeedFormat::Csv),
            _ => Err(UnknownFormat(s.to_owned())),
        }
    }
}

/// What is wrong with a malformed line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProblemKind {
    /// The line is not valid UTF-8.
    InvalidUtf8,
    /// The line exceeds [`MAX_LINE_LEN`](crate::MAX_LINE_LEN) bytes.
    LineTooLong,
    /// The hash field is not a SHA-256 (nor a skipped SHA-1/MD5).
    InvalidHash,
    /// A CSV row could not be split (e.g. unterminated quote) or lacks the
    /// sha256 column.
    BadCsvRow,
    /// A URL feed's entry is no valid URL, host or domain.
    InvalidUrl,
}

/// One malformed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line number in the feed.
    pub line: u64,
    pub kind: ProblemKind,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Statistics of loading one feed. Counts are always complete, even when
/// `problems` is capped at [`MAX_PROBLEMS`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FeedReport {
    /// Feed name (file name for [`Feed::load`](crate::Feed::load)).
    pub feed: String,
    pub format: FeedFormat,
    /// `true` if the format was auto-detected, `false` if forced.
    pub detected: bool,
    /// Lines read, including blank and comment lines.
    pub lines: u64,
    /// Distinct SHA-256 hashes in the index.
    pub hashes: u64,
    /// Valid SHA-256 lines whose hash was already in this feed.
    pub duplicates: u64,
    /// Lines holding a SHA-1 (40 hex digits), skipped.
    pub skipped_sha1: u64,
    /// Lines holding an MD5 (32 hex digits), skipped.
    pub skipped_md5: u64,
    /// Malformed lines (not fatal unless no hash at all was valid).
    pub malformed: u64,
    /// The first [`MAX_PROBLEMS`] malformed lines, in line order.
    pub problems: Vec<Problem>,
    /// The first duplicate lines with the line each repeats, in line order. Filled by
    /// [`Feed::load`](crate::Feed::load) (a second pass over the file, only when it has
    /// duplicates); a feed parsed from a stream only counts them.
    pub duplicate_lines: Vec<DuplicateLine>,
}

/// A line whose SHA-256 already appeared earlier in the same feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DuplicateLine {
    pub line: u64,
    /// The line where the hash first appeared.
    pub first_line: u64,
}

impl FeedReport {
    pub(crate) fn new(feed: &str, format: FeedFormat, detected: bool) -> Self {
        FeedReport {
            feed: feed.to_owned(),
            format,
            detected,
            lines: 0,
            hashes: 0,
            duplicates: 0,
            skipped_sha1: 0,
            skipped_md5: 0,
            malformed: 0,
            problems: Vec::new(),
            duplicate_lines: Vec::new(),
        }
    }

    /// SHA-1 plus MD5 lines skipped.
    pub fn skipped_other(&self) -> u64 {
        self.skipped_sha1 + self.skipped_md5
    }
}

impl fmt::Display for FeedReport {
    /// One summary line, then one indented line per listed problem.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: format {}{}, {} lines, {} hashes loaded, {} duplicates",
            self.feed,
            self.format,
            if self.detected { " (detected)" } else { "" },
            self.lines,
            self.hashes,
            self.duplicates,
        )?;
        if self.skipped_other() > 0 {
            write!(
                f,
                ", {} other-hash lines skipped ({} sha1, {} md5)",
                self.skipped_other(),
                self.skipped_sha1,
                self.skipped_md5
            )?;
        }
        write!(f, ", {} malformed", self.malformed)?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        let unlisted = self.malformed.saturating_sub(self.problems.len() as u64);
        if unlisted > 0 {
            write!(f, "\n  ... and {unlisted} more malformed line(s)")?;
        }
        for d in &self.duplicate_lines {
            write!(f, "\n  line {}: duplicate of line {}", d.line, d.first_line)?;
        }
        let unlisted = self
            .duplicates
            .saturating_sub(self.duplicate_lines.len() as u64);
        if self.duplicates > 0 && unlisted > 0 {
            write!(f, "\n  ... and {unlisted} more duplicate line(s)")?;
        }
        Ok(())
    }
}
