//! URL feeds: known-bad URLs, hosts and domains, for the *Malicious URL Observed* rule
//! (`rules/urls.toml`, `argv.url_listed`).
//!
//! # Entries
//!
//! Each data line holds one entry, of one of three kinds:
//!
//! * a **URL** with its scheme (`http://`, `https://` or `ftp://`): matches that URL, after
//!   normalisation ([`normalize_url`]), and nothing else (not a longer path, not another
//!   query);
//! * a **host** (`evil.example`, `203.0.113.9`, `2001:db8::7` or `[2001:db8::7]`): matches
//!   a URL on that host (any scheme, port or path) and that host written alone as an argument
//!   (`nc evil.example 4444`, `ssh root@evil.example`, `wget evil.example/x`);
//! * a **domain** (`*.evil.example` or `.evil.example`): matches like a host entry for
//!   `evil.example` and every name under it (`a.b.evil.example`).
//!
//! # Formats
//!
//! Detected from the content:
//!
//! 1. [`UrlFeedFormat::Plain`]: one entry per line; text after the entry and blanks is its
//!    comment (a leading `#` or `;` dropped). A hosts-file line, `0.0.0.0 evil.example` or
//!    `127.0.0.1 evil.example`, is a host entry (URLhaus "hostfile", blocklists).
//! 2. [`UrlFeedFormat::Csv`]: a header naming a `url` column (case-insensitive), as the
//!    first line or, as in the URLhaus database dump, the last `#` comment line with a comma
//!    before the first data row: `# id,dateadded,url,url_status,last_online,threat,tags,...`.
//!    Values may be quoted with `"` (`""` escapes a quote). The comment is the `threat`
//!    column with the `tags` in parentheses (`malware_download (elf,mips,Mozi)`).
//!
//! In both, blank lines and lines starting with `#` are ignored, CRLF and a UTF-8 BOM are
//! accepted.
//!
//! # Normalisation
//!
//! Feed entries and the URLs and hosts found in a command line go through the same steps,
//! so `HTTP://Evil.Example.:80/x#top` matches the entry `http://evil.example/x`:
//! scheme and host lower-cased, a host's trailing dot dropped, an internationalised name in
//! its IDNA (punycode) form (`bücher.example` is `xn--bcher-kva.example`), user information
//! (`user:pass@`) dropped, the scheme's default port (80, 443, 21) dropped, an empty path is
//! `/`, the fragment dropped. The path and query are kept verbatim (case and percent-encoding
//! included), as URLhaus lists them.
//!
//! # Errors
//!
//! Malformed lines (no scheme before a path, an unsupported scheme, a bad host or port,
//! invalid UTF-8, a line over [`MAX_LINE_LEN`], a broken CSV row) are counted in the
//! [`UrlFeedReport`] with line numbers and skipped, as in the hash feeds. Fatal
//! ([`IntelError`]): the file cannot be read, a CSV header without a `url` column, or a feed
//! with malformed lines and no valid entry at all. An empty feed loads;
//! [`UrlFeed::require_entries`] makes it an error (`ward intel check`).
//!
//! # Cost
//!
//! Entries are kept in three hash maps of their normalised text. Looking up a host written
//! in ASCII allocates nothing (it is lower-cased into a stack buffer); a URL is normalised
//! into a per-thread buffer, reused (an internationalised name needs its IDNA form computed). A host lookup is one probe in the host map plus one per label in
//! the domain map.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use crate::error::IntelError;
use crate::index::{CommentInterner, Comments, NO_COMMENT};
use crate::parse::{
    cap_comment, field_text, read_line_capped, snippet, split_csv, strip_comment_marker, trim,
    Field, MAX_LINE_LEN,
};
use crate::report::{DuplicateLine, Problem, ProblemKind, MAX_PROBLEMS};

/// Longest host name kept (DNS allows 253 characters; a trailing dot makes 254).
const MAX_HOST_LEN: usize = 254;

/// The layout of a URL feed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UrlFeedFormat {
    /// One URL, host or domain per line.
    Plain,
    /// CSV with a header naming a `url` column (URLhaus database dump style).
    Csv,
}

impl UrlFeedFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            UrlFeedFormat::Plain => "plain",
            UrlFeedFormat::Csv => "csv",
        }
    }
}

impl fmt::Display for UrlFeedFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of entry matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UrlEntryKind {
    /// A whole URL.
    Url,
    /// A host: the URL's host, or a host argument.
    Host,
    /// A domain and the names under it.
    Domain,
}

impl UrlEntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UrlEntryKind::Url => "url",
            UrlEntryKind::Host => "host",
            UrlEntryKind::Domain => "domain",
        }
    }
}

/// A URL or host found in a URL feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UrlMatch<'a> {
    /// Name of the feed (its file name when loaded with [`UrlFeed::load`]).
    pub feed: &'a str,
    pub kind: UrlEntryKind,
    /// The entry as normalised (`http://evil.example/x`, `evil.example`, `*.evil.example`
    /// is `evil.example` with kind [`UrlEntryKind::Domain`]).
    pub entry: &'a str,
    /// The entry's comment (the URLhaus threat and tags, a plain line's trailing text).
    pub comment: Option<&'a str>,
}

/// Statistics of loading one URL feed; counts are complete, `problems` capped at
/// [`MAX_PROBLEMS`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UrlFeedReport {
    pub feed: String,
    pub format: UrlFeedFormat,
    /// Lines read, including blank and comment lines.
    pub lines: u64,
    /// Distinct URL entries.
    pub urls: u64,
    /// Distinct host entries.
    pub hosts: u64,
    /// Distinct domain entries.
    pub domains: u64,
    /// Valid lines whose entry was already in this feed.
    pub duplicates: u64,
    pub malformed: u64,
    /// The first [`MAX_PROBLEMS`] malformed lines, in line order.
    pub problems: Vec<Problem>,
    /// The first [`MAX_PROBLEMS`] duplicate lines with the line each repeats.
    pub duplicate_lines: Vec<DuplicateLine>,
}

impl UrlFeedReport {
    /// URL, host and domain entries together.
    pub fn entries(&self) -> u64 {
        self.urls + self.hosts + self.domains
    }
}

impl fmt::Display for UrlFeedReport {
    /// One summary line, then one indented line per listed problem and duplicate.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: URL feed, format {} (detected), {} lines, {} URLs, {} hosts, {} domains loaded, {} duplicates, {} malformed",
            self.feed,
            self.format,
            self.lines,
            self.urls,
            self.hosts,
            self.domains,
            self.duplicates,
            self.malformed
        )?;
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
        if unlisted > 0 {
            write!(f, "\n  ... and {unlisted} more duplicate line(s)")?;
        }
        Ok(())
    }
}

/// One loaded URL feed.
pub struct UrlFeed {
    name: String,
    urls: HashMap<Box<str>, u32>,
    hosts: HashMap<Box<str>, u32>,
    domains: HashMap<Box<str>, u32>,
    comments: Comments,
    report: UrlFeedReport,
}

impl fmt::Debug for UrlFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UrlFeed")
            .field("name", &self.name)
            .field("report", &self.report)
            .finish()
    }
}

impl UrlFeed {
    /// Loads a URL feed file (format detected). Named after the file name; errors name the
    /// path.
    pub fn load(path: &Path) -> Result<UrlFeed, IntelError> {
        let file = File::open(path).map_err(|source| IntelError::Open {
            path: path.to_owned(),
            source,
        })?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let label = path.display().to_string();
        let mut reader = BufReader::with_capacity(256 * 1024, file);
        UrlParser::new(name, &label).run(&mut reader)
    }

    /// Parses a URL feed from `reader`; `name` names it in matches, reports and errors.
    pub fn parse(name: &str, mut reader: impl BufRead) -> Result<UrlFeed, IntelError> {
        UrlParser::new(name.to_owned(), name).run(&mut reader)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn report(&self) -> &UrlFeedReport {
        &self.report
    }

    /// Entries of all kinds.
    pub fn len(&self) -> usize {
        self.urls.len() + self.hosts.len() + self.domains.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An error when the feed holds no entry at all (it can never match): what
    /// `ward intel check` reports as unusable.
    pub fn require_entries(&self) -> Result<(), IntelError> {
        if self.is_empty() {
            return Err(IntelError::NoUrlEntries {
                feed: self.report.feed.clone(),
                lines: self.report.lines,
            });
        }
        Ok(())
    }

    fn found<'a>(&'a self, kind: UrlEntryKind, entry: &'a str, id: u32) -> UrlMatch<'a> {
        UrlMatch {
            feed: &self.name,
            kind,
            entry,
            comment: self.comments.get(id),
        }
    }

    /// A URL as written in a command line (`HTTP://Evil.example:80/x`): listed as a URL, or
    /// its host as a host or under a domain. A text that is no URL of a supported scheme is
    /// not listed.
    pub fn lookup_url(&self, url: &str) -> Option<UrlMatch<'_>> {
        thread_local! {
            /// The normalised URL of the current lookup: no allocation per lookup.
            static BUF: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        BUF.with(|b| {
            let mut b = b.try_borrow_mut().ok()?;
            let host = normalize_url_into(url, &mut b).ok()?;
            if b.capacity() > 64 * 1024 {
                // An enormous argument once: do not keep its buffer.
                let r = self.lookup_normalized(&b, host);
                *b = String::new();
                return r;
            }
            self.lookup_normalized(&b, host)
        })
    }

    fn lookup_normalized(&self, text: &str, host: std::ops::Range<usize>) -> Option<UrlMatch<'_>> {
        if let Some((k, &id)) = self.urls.get_key_value(text) {
            return Some(self.found(UrlEntryKind::Url, k, id));
        }
        self.lookup_normalized_host(&text[host])
    }

    /// A host as written in a command line (`Evil.Example.`, `203.0.113.9`, `[2001:db8::7]`):
    /// listed as a host or under a domain.
    pub fn lookup_host(&self, host: &str) -> Option<UrlMatch<'_>> {
        if self.hosts.is_empty() && self.domains.is_empty() {
            return None;
        }
        let mut buf = [0u8; MAX_HOST_LEN + 2];
        match host_into(host, &mut buf) {
            Some(HostBuf::Stack(n)) => {
                let h = std::str::from_utf8(&buf[..n]).ok()?;
                self.lookup_normalized_host(h)
            }
            Some(HostBuf::Heap(h)) => self.lookup_normalized_host(&h),
            None => None,
        }
    }

    fn lookup_normalized_host(&self, host: &str) -> Option<UrlMatch<'_>> {
        if let Some((k, &id)) = self.hosts.get_key_value(host) {
            return Some(self.found(UrlEntryKind::Host, k, id));
        }
        if self.domains.is_empty() || host.starts_with('[') {
            return None;
        }
        // The name itself, then each parent domain: a.b.example, b.example, example.
        let mut rest = host;
        loop {
            if let Some((k, &id)) = self.domains.get_key_value(rest) {
                return Some(self.found(UrlEntryKind::Domain, k, id));
            }
            match rest.find('.') {
                Some(i) => rest = &rest[i + 1..],
                None => return None,
            }
        }
    }

    /// Heap bytes, roughly: the entries' text and map slots, and the comments.
    pub fn memory_bytes(&self) -> usize {
        let map = |m: &HashMap<Box<str>, u32>| {
            m.capacity() * (std::mem::size_of::<Box<str>>() + 4 + 1)
                + m.keys().map(|k| k.len()).sum::<usize>()
        };
        map(&self.urls) + map(&self.hosts) + map(&self.domains) + self.comments.heap_bytes()
    }
}

/// A normalised URL: its text and where the host is in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedUrl {
    /// `scheme://host[:port]/path?query`.
    pub text: String,
    /// The host's byte range in `text`.
    pub host: std::ops::Range<usize>,
}

/// Why a text is not a URL a feed can hold or match.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    #[error("no scheme: a URL starts with http://, https:// or ftp://")]
    NoScheme,
    #[error("unsupported scheme {0:?} (expected http, https or ftp)")]
    Scheme(String),
    #[error("no host after the scheme")]
    NoHost,
    #[error("invalid host {0:?}: {1}")]
    Host(String, &'static str),
    #[error("invalid port {0:?} (expected 1-65535)")]
    Port(String),
}

fn default_port(scheme: &str) -> u16 {
    match scheme {
        "http" => 80,
        "https" => 443,
        _ => 21,
    }
}

/// Normalises a URL (see the module docs): lower-case scheme and host, no trailing dot,
/// IDNA, no user information, no default port, `/` for an empty path, no fragment.
pub fn normalize_url(url: &str) -> Result<NormalizedUrl, UrlError> {
    let mut text = String::with_capacity(url.len() + 1);
    let host = normalize_url_into(url, &mut text)?;
    Ok(NormalizedUrl { text, host })
}

/// [`normalize_url`] into `out` (cleared first); returns the host's range in it. Allocates
/// nothing once `out` is large enough, except for an internationalised host name.
pub fn normalize_url_into(url: &str, out: &mut String) -> Result<std::ops::Range<usize>, UrlError> {
    use std::fmt::Write;
    out.clear();
    let (scheme, rest) = url.split_once("://").ok_or(UrlError::NoScheme)?;
    let scheme = ["http", "https", "ftp"]
        .into_iter()
        .find(|s| s.eq_ignore_ascii_case(scheme))
        .ok_or_else(|| UrlError::Scheme(scheme.to_ascii_lowercase()))?;
    let rest = rest.split('#').next().unwrap_or("");
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(auth_end);
    // User information ends at the last `@` of the authority.
    let hostport = authority.rsplit('@').next().unwrap_or("");
    let (host, port) = if hostport.starts_with('[') {
        match hostport.find(']') {
            Some(i) => {
                let (h, p) = hostport.split_at(i + 1);
                match p.strip_prefix(':') {
                    Some(p) => (h, Some(p)),
                    None if p.is_empty() => (h, None),
                    None => return Err(UrlError::Host(hostport.into(), "text after `]`")),
                }
            }
            None => return Err(UrlError::Host(hostport.into(), "unclosed `[`")),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(UrlError::NoHost);
    }
    let port = match port.filter(|p| !p.is_empty()) {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => {
                (n != default_port(scheme)).then_some(n)
            }
            _ => return Err(UrlError::Port(p.into())),
        },
    };
    out.push_str(scheme);
    out.push_str("://");
    let start = out.len();
    push_host(host, out)?;
    let host_range = start..out.len();
    if let Some(p) = port {
        let _ = write!(out, ":{p}");
    }
    if !path.starts_with('/') {
        out.push('/');
    }
    out.push_str(path);
    Ok(host_range)
}

/// Normalises a host: lower-case, no trailing dot, IDNA for a non-ASCII name, an IPv6
/// address in brackets (`2001:DB8::7` is `[2001:db8::7]`).
pub fn normalize_host(host: &str) -> Result<String, UrlError> {
    let mut out = String::with_capacity(host.len() + 2);
    push_host(host, &mut out)?;
    Ok(out)
}

/// [`normalize_host`], appended to `out`.
fn push_host(host: &str, out: &mut String) -> Result<(), UrlError> {
    use std::fmt::Write;
    let bad = |why| UrlError::Host(host.into(), why);
    let v6 = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .or_else(|| host.contains(':').then_some(host));
    if let Some(inner) = v6 {
        let why = if host.starts_with('[') {
            "not an IPv6 address"
        } else {
            "`:` in a host name"
        };
        let ip: Ipv6Addr = inner.parse().map_err(|_| bad(why))?;
        let _ = write!(out, "[{ip}]");
        return Ok(());
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.is_empty() {
        return Err(bad("empty"));
    }
    let start = out.len();
    if name.is_ascii() {
        out.extend(name.chars().map(|c| c.to_ascii_lowercase()));
    } else {
        let a =
            idna::domain_to_ascii(name).map_err(|_| bad("not a valid internationalised name"))?;
        out.push_str(&a);
    }
    let name = &out[start..];
    let why = if name.len() > MAX_HOST_LEN {
        Some("longer than 253 characters")
    } else if name
        .bytes()
        .any(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
    {
        Some("a host name has only letters, digits, `-`, `_` and `.`")
    } else if name.split('.').any(str::is_empty) {
        Some("empty label")
    } else {
        None
    };
    match why {
        Some(why) => {
            out.truncate(start);
            Err(bad(why))
        }
        None => Ok(()),
    }
}

enum HostBuf {
    Stack(usize),
    Heap(String),
}

/// [`normalize_host`] without allocating for a host name in ASCII (lower-cased into `buf`).
fn host_into(host: &str, buf: &mut [u8; MAX_HOST_LEN + 2]) -> Option<HostBuf> {
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.is_empty() || name.len() > MAX_HOST_LEN {
        return None;
    }
    if !name.is_ascii() || name.contains([':', '[']) {
        return normalize_host(host).ok().map(HostBuf::Heap);
    }
    for (o, b) in buf.iter_mut().zip(name.bytes()) {
        *o = b.to_ascii_lowercase();
    }
    Some(HostBuf::Stack(name.len()))
}

/// One entry of a feed line, normalised.
enum Entry {
    Url(String),
    Host(String),
    Domain(String),
}

/// Parses one entry token (a URL, host or domain).
fn entry_of(tok: &str) -> Result<Entry, String> {
    if tok.contains("://") {
        return normalize_url(tok)
            .map(|n| Entry::Url(n.text))
            .map_err(|e| format!("invalid URL {:?}: {e}", snippet(tok.as_bytes())));
    }
    let domain = tok.strip_prefix("*.").or_else(|| tok.strip_prefix('.'));
    if let Some(d) = domain {
        let d = normalize_host(d).map_err(|e| format!("invalid domain: {e}"))?;
        if d.starts_with('[') || d.parse::<Ipv4Addr>().is_ok() {
            return Err(format!(
                "invalid domain {tok:?}: an address is a host entry, not a domain"
            ));
        }
        return Ok(Entry::Domain(d));
    }
    if tok.contains('/') {
        return Err(format!(
            "{:?} has a path but no scheme: write the URL with http://, https:// or ftp://, or a host alone",
            snippet(tok.as_bytes())
        ));
    }
    if tok.contains(':') && tok.parse::<Ipv6Addr>().is_err() && !tok.starts_with('[') {
        return Err(format!(
            "{tok:?}: a host entry has no port; list the URL with its scheme instead"
        ));
    }
    normalize_host(tok)
        .map(Entry::Host)
        .map_err(|e| e.to_string())
}

/// Column positions of a URL CSV header.
#[derive(Debug, Clone, Copy)]
struct UrlCols {
    url: usize,
    threat: Option<usize>,
    tags: Option<usize>,
    header_line: u64,
}

fn url_header(line: &[u8], header_line: u64, fields: &mut Vec<Field>) -> Option<UrlCols> {
    let body = strip_comment_marker(line);
    split_csv(body, fields).ok()?;
    let mut cols = UrlCols {
        url: usize::MAX,
        threat: None,
        tags: None,
        header_line,
    };
    for (i, f) in fields.iter().enumerate() {
        let name = trim(&body[f.start..f.end]);
        if cols.url == usize::MAX && name.eq_ignore_ascii_case(b"url") {
            cols.url = i;
        } else if cols.threat.is_none() && name.eq_ignore_ascii_case(b"threat") {
            cols.threat = Some(i);
        } else if cols.tags.is_none() && name.eq_ignore_ascii_case(b"tags") {
            cols.tags = Some(i);
        }
    }
    (cols.url != usize::MAX).then_some(cols)
}

struct Seen {
    id: u32,
    line: u64,
}

struct UrlParser<'a> {
    name: String,
    label: &'a str,
    format: Option<UrlFeedFormat>,
    csv: Option<UrlCols>,
    /// The last `#` line with a comma that names a `url` column, before the first data line.
    pending: Option<UrlCols>,
    urls: HashMap<Box<str>, Seen>,
    hosts: HashMap<Box<str>, Seen>,
    domains: HashMap<Box<str>, Seen>,
    comments: CommentInterner,
    report: UrlFeedReport,
    fields: Vec<Field>,
    scratch: Vec<u8>,
}

impl<'a> UrlParser<'a> {
    fn new(name: String, label: &'a str) -> Self {
        UrlParser {
            report: UrlFeedReport {
                feed: name.clone(),
                format: UrlFeedFormat::Plain,
                lines: 0,
                urls: 0,
                hosts: 0,
                domains: 0,
                duplicates: 0,
                malformed: 0,
                problems: Vec::new(),
                duplicate_lines: Vec::new(),
            },
            name,
            label,
            format: None,
            csv: None,
            pending: None,
            urls: HashMap::new(),
            hosts: HashMap::new(),
            domains: HashMap::new(),
            comments: CommentInterner::default(),
            fields: Vec::new(),
            scratch: Vec::new(),
        }
    }

    fn problem(&mut self, line: u64, kind: ProblemKind, message: String) {
        self.report.malformed += 1;
        if self.report.problems.len() < MAX_PROBLEMS {
            self.report.problems.push(Problem {
                line,
                kind,
                message,
            });
        }
    }

    fn run(mut self, reader: &mut dyn BufRead) -> Result<UrlFeed, IntelError> {
        let mut buf = Vec::with_capacity(256);
        loop {
            let no = self.report.lines + 1;
            let total = match read_line_capped(reader, &mut buf, MAX_LINE_LEN) {
                Ok(Some(t)) => t,
                Ok(None) => break,
                Err(source) => {
                    return Err(IntelError::Read {
                        feed: self.label.to_owned(),
                        line: no,
                        source,
                    })
                }
            };
            self.report.lines = no;
            let mut line = &buf[..];
            if no == 1 {
                line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
            }
            let line = trim(line);
            if line.is_empty() {
                continue;
            }
            if line[0] == b'#' {
                if self.format.is_none() && total <= MAX_LINE_LEN && line.contains(&b',') {
                    if let Some(cols) = url_header(line, no, &mut self.fields) {
                        self.pending = Some(cols);
                    }
                }
                continue;
            }
            if total > MAX_LINE_LEN {
                self.problem(
                    no,
                    ProblemKind::LineTooLong,
                    format!("line too long: {total} bytes (maximum {MAX_LINE_LEN})"),
                );
                continue;
            }
            let Ok(text) = std::str::from_utf8(line) else {
                self.problem(no, ProblemKind::InvalidUtf8, "invalid UTF-8".into());
                continue;
            };
            if self.format.is_none() {
                // The first data line decides: a header naming `url` (this line, or the last
                // `#` line before it) makes the feed CSV.
                if let Some(cols) = url_header(line, no, &mut self.fields) {
                    self.format = Some(UrlFeedFormat::Csv);
                    self.csv = Some(cols);
                    continue;
                }
                let first = text.split_whitespace().next().unwrap_or("");
                if first.contains(',') && !first.contains("://") && self.pending.is_none() {
                    return Err(IntelError::NoUrlColumn {
                        feed: self.label.to_owned(),
                        line: no,
                        header: snippet(line),
                    });
                }
                self.format = Some(match self.pending.take() {
                    Some(cols) => {
                        self.csv = Some(cols);
                        UrlFeedFormat::Csv
                    }
                    None => UrlFeedFormat::Plain,
                });
            }
            match self.csv {
                Some(cols) => self.csv_row(no, line, cols),
                None => self.plain_line(no, text),
            }
        }
        self.finish()
    }

    fn plain_line(&mut self, no: u64, text: &str) {
        let mut it = text.splitn(2, |c: char| c.is_whitespace());
        let mut tok = it.next().unwrap_or("");
        let mut rest = it.next().unwrap_or("").trim_start();
        // A hosts-file line: the sinkhole address, then the host.
        if matches!(tok, "0.0.0.0" | "127.0.0.1") && !rest.is_empty() && !rest.starts_with('#') {
            let mut it = rest.splitn(2, |c: char| c.is_whitespace());
            tok = it.next().unwrap_or("");
            rest = it.next().unwrap_or("").trim_start();
        }
        let comment = rest
            .strip_prefix('#')
            .or_else(|| rest.strip_prefix(';'))
            .unwrap_or(rest)
            .trim();
        match entry_of(tok) {
            Ok(e) => self.add(no, e, comment),
            Err(msg) => self.problem(no, ProblemKind::InvalidUrl, msg),
        }
    }

    fn csv_row(&mut self, no: u64, line: &[u8], cols: UrlCols) {
        let mut fields = std::mem::take(&mut self.fields);
        if let Err(msg) = split_csv(line, &mut fields) {
            self.problem(no, ProblemKind::BadCsvRow, msg);
            self.fields = fields;
            return;
        }
        if fields.get(cols.url).is_none() {
            let n = fields.len();
            self.problem(
                no,
                ProblemKind::BadCsvRow,
                format!(
                    "row has {n} field(s), the url column is field {} (header at line {})",
                    cols.url + 1,
                    cols.header_line
                ),
            );
            self.fields = fields;
            return;
        }
        let text = |f: Option<usize>, scratch: &mut Vec<u8>| -> String {
            f.and_then(|i| fields.get(i).copied())
                .map(|f| String::from_utf8_lossy(trim(field_text(line, f, scratch))).into_owned())
                .unwrap_or_default()
        };
        let mut scratch = std::mem::take(&mut self.scratch);
        let url = text(Some(cols.url), &mut scratch);
        let threat = text(cols.threat, &mut scratch);
        let tags = text(cols.tags, &mut scratch);
        self.scratch = scratch;
        self.fields = fields;
        let comment = match (threat.is_empty(), tags.is_empty()) {
            (false, false) => format!("{threat} ({tags})"),
            (false, true) => threat,
            (true, false) => tags,
            (true, true) => String::new(),
        };
        match entry_of(&url) {
            Ok(e) => self.add(no, e, &comment),
            Err(msg) => self.problem(no, ProblemKind::InvalidUrl, msg),
        }
    }

    fn add(&mut self, no: u64, e: Entry, comment: &str) {
        let (map, key) = match e {
            Entry::Url(k) => (&mut self.urls, k),
            Entry::Host(k) => (&mut self.hosts, k),
            Entry::Domain(k) => (&mut self.domains, k),
        };
        if let Some(seen) = map.get(key.as_str()) {
            self.report.duplicates += 1;
            if self.report.duplicate_lines.len() < MAX_PROBLEMS {
                self.report.duplicate_lines.push(DuplicateLine {
                    line: no,
                    first_line: seen.line,
                });
            }
            return;
        }
        let id = if comment.is_empty() {
            NO_COMMENT
        } else {
            self.comments.intern(cap_comment(comment))
        };
        map.insert(key.into_boxed_str(), Seen { id, line: no });
    }

    fn finish(mut self) -> Result<UrlFeed, IntelError> {
        let strip = |m: HashMap<Box<str>, Seen>| -> HashMap<Box<str>, u32> {
            m.into_iter().map(|(k, s)| (k, s.id)).collect()
        };
        self.report.urls = self.urls.len() as u64;
        self.report.hosts = self.hosts.len() as u64;
        self.report.domains = self.domains.len() as u64;
        self.report.format = self.format.unwrap_or(if self.pending.is_some() {
            UrlFeedFormat::Csv
        } else {
            UrlFeedFormat::Plain
        });
        let r = &self.report;
        if r.entries() == 0 {
            if let Some(first) = r.problems.first() {
                return Err(IntelError::NoValidUrls {
                    feed: self.label.to_owned(),
                    malformed: r.malformed,
                    line: first.line,
                    reason: first.message.clone(),
                });
            }
            tracing::warn!(feed = self.label, lines = r.lines, "URL feed has no entry");
        }
        if let Some(first) = r.problems.first() {
            tracing::warn!(
                feed = self.label,
                malformed = r.malformed,
                first_line = first.line,
                first_problem = %first.message,
                "URL feed has malformed lines"
            );
        }
        tracing::info!(
            feed = self.label,
            format = %r.format,
            lines = r.lines,
            urls = r.urls,
            hosts = r.hosts,
            domains = r.domains,
            duplicates = r.duplicates,
            malformed = r.malformed,
            "loaded URL feed"
        );
        Ok(UrlFeed {
            name: self.name,
            urls: strip(self.urls),
            hosts: strip(self.hosts),
            domains: strip(self.domains),
            comments: self.comments.finish(),
            report: self.report,
        })
    }
}
