//! Streaming feed parser: format detection, hand-written hex decoding, a
//! minimal CSV splitter, and a line reader that caps what it keeps.

use std::io::{self, BufRead};

use crate::error::IntelError;
use crate::index::{CommentInterner, Comments, Entry, Index, NO_COMMENT};
use crate::report::{DuplicateLine, FeedFormat, FeedReport, Problem, ProblemKind, MAX_PROBLEMS};

/// Longest line kept, in bytes. Longer lines are malformed (unless they are
/// `#` comments) and only their first `MAX_LINE_LEN` bytes are ever buffered.
pub const MAX_LINE_LEN: usize = 64 * 1024;

/// Longest comment kept per hash, in bytes (cut at a UTF-8 boundary).
pub const MAX_COMMENT_LEN: usize = 256;

/// Longest excerpt of offending text quoted in a problem message.
const SNIPPET_LEN: usize = 48;

/// Reads one line (without the `\n`) into `buf`, keeping at most `cap`
/// bytes. Returns `None` at end of input, else the full length of the line
/// (which exceeds `buf.len()` when the line was cut).
pub(crate) fn read_line_capped<R: BufRead + ?Sized>(
    r: &mut R,
    buf: &mut Vec<u8>,
    cap: usize,
) -> io::Result<Option<usize>> {
    buf.clear();
    let mut total = 0usize;
    let mut any = false;
    loop {
        let avail = match r.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            return Ok(any.then_some(total));
        }
        any = true;
        let (chunk, used, done) = match memchr::memchr(b'\n', avail) {
            Some(i) => (&avail[..i], i + 1, true),
            None => (avail, avail.len(), false),
        };
        let room = cap.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        total = total.saturating_add(chunk.len());
        r.consume(used);
        if done {
            return Ok(Some(total));
        }
    }
}

/// Hex digit values, `0xFF` for non-hex bytes.
static HEX: [u8; 256] = {
    let mut t = [0xFFu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// What a hash token turned out to be.
enum HashTok {
    Sha256([u8; 32]),
    Sha1,
    Md5,
    Bad(String),
}

/// Index of the first non-hex byte, if any.
fn first_non_hex(tok: &[u8]) -> Option<usize> {
    tok.iter().position(|&b| HEX[b as usize] == 0xFF)
}

/// Decodes exactly 64 hex digits (branch-free over the digits).
#[inline]
fn decode64(tok: &[u8]) -> Option<[u8; 32]> {
    if tok.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    let mut bad = 0u8;
    for (o, pair) in out.iter_mut().zip(tok.chunks_exact(2)) {
        let h = HEX[pair[0] as usize];
        let l = HEX[pair[1] as usize];
        bad |= h | l;
        *o = (h << 4) | (l & 0x0F);
    }
    // Valid digits are < 16, so bit 7 is set only if one was 0xFF.
    (bad & 0x80 == 0).then_some(out)
}

/// Classifies a hash token; `col` is its 1-based column for messages.
fn classify_hash(tok: &[u8], col: usize) -> HashTok {
    if let Some(d) = decode64(tok) {
        return HashTok::Sha256(d);
    }
    if tok.is_empty() {
        return HashTok::Bad(format!("missing hash at column {col}"));
    }
    match first_non_hex(tok) {
        Some(i) => HashTok::Bad(format!(
            "invalid hash {:?}: non-hex character {:?} at column {}",
            snippet(tok),
            char_at(tok, i),
            col + i
        )),
        None => match tok.len() {
            40 => HashTok::Sha1,
            32 => HashTok::Md5,
            n => HashTok::Bad(format!(
                "invalid hash {:?} at column {col}: {n} hex digits, expected 64 (SHA-256)",
                snippet(tok)
            )),
        },
    }
}

/// The character starting at byte `i` (lossy for invalid UTF-8).
fn char_at(s: &[u8], i: usize) -> char {
    let end = (i + 4).min(s.len());
    String::from_utf8_lossy(&s[i..end])
        .chars()
        .next()
        .unwrap_or('\u{FFFD}')
}

/// A short, lossy excerpt of `s` for messages.
pub(crate) fn snippet(s: &[u8]) -> String {
    if s.len() <= SNIPPET_LEN {
        String::from_utf8_lossy(s).into_owned()
    } else {
        let mut t = String::from_utf8_lossy(&s[..SNIPPET_LEN]).into_owned();
        t.push('…');
        t
    }
}

pub(crate) fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t' || b == b'\r' || b == 0x0B || b == 0x0C
}

pub(crate) fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_space(b)).unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&b| !is_space(b))
        .map_or(start, |i| i + 1);
    &s[start..end]
}

/// Offset of `sub` (a subslice of `line`) within `line`.
pub(crate) fn offset_in(line: &[u8], sub: &[u8]) -> usize {
    (sub.as_ptr() as usize).saturating_sub(line.as_ptr() as usize)
}

/// Cuts `s` to at most [`MAX_COMMENT_LEN`] bytes at a char boundary.
pub(crate) fn cap_comment(s: &str) -> &str {
    if s.len() <= MAX_COMMENT_LEN {
        return s;
    }
    let mut end = MAX_COMMENT_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// One CSV field: byte range in the line, and whether it contains `""`
/// escapes that must be undone.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) escaped: bool,
}

/// Splits one CSV line on `,`, honouring `"` quoting with `""` escapes and
/// ignoring blanks around fields. Quoted newlines are not supported (a row
/// is one line).
pub(crate) fn split_csv(line: &[u8], out: &mut Vec<Field>) -> Result<(), String> {
    out.clear();
    let n = line.len();
    let mut i = 0;
    loop {
        while i < n && is_space(line[i]) {
            i += 1;
        }
        if i < n && line[i] == b'"' {
            let start = i + 1;
            let mut j = start;
            let mut escaped = false;
            let end = loop {
                match line[j..].iter().position(|&b| b == b'"') {
                    None => {
                        return Err(format!(
                            "unterminated quoted field starting at column {}",
                            start
                        ))
                    }
                    Some(k) => {
                        let q = j + k;
                        if line.get(q + 1) == Some(&b'"') {
                            escaped = true;
                            j = q + 2;
                        } else {
                            break q;
                        }
                    }
                }
            };
            out.push(Field {
                start,
                end,
                escaped,
            });
            i = end + 1;
            while i < n && is_space(line[i]) {
                i += 1;
            }
            if i < n && line[i] != b',' {
                return Err(format!(
                    "unexpected {:?} after quoted field at column {}",
                    char_at(line, i),
                    i + 1
                ));
            }
        } else {
            let start = i;
            let stop = line[i..]
                .iter()
                .position(|&b| b == b',')
                .map_or(n, |k| i + k);
            let mut end = stop;
            while end > start && is_space(line[end - 1]) {
                end -= 1;
            }
            out.push(Field {
                start,
                end,
                escaped: false,
            });
            i = stop;
        }
        if i >= n {
            return Ok(());
        }
        i += 1; // the comma
    }
}

/// The field's text, with `""` escapes undone into `scratch` if needed.
pub(crate) fn field_text<'a>(line: &'a [u8], f: Field, scratch: &'a mut Vec<u8>) -> &'a [u8] {
    let raw = &line[f.start..f.end];
    if !f.escaped {
        return raw;
    }
    scratch.clear();
    let mut k = 0;
    while k < raw.len() {
        scratch.push(raw[k]);
        k += if raw[k] == b'"' && raw.get(k + 1) == Some(&b'"') {
            2
        } else {
            1
        };
    }
    scratch
}

/// Column positions resolved from a CSV header.
#[derive(Debug, Clone, Copy)]
struct CsvCols {
    sha256: usize,
    signature: Option<usize>,
    file_name: Option<usize>,
    /// Header line number, for messages.
    header_line: u64,
}

/// Finds the columns in a header line (a leading `#` is stripped).
/// `Ok(None)` means "valid CSV but no sha256 column".
fn header_cols(line: &[u8], header_line: u64, fields: &mut Vec<Field>) -> Option<CsvCols> {
    let body = strip_comment_marker(line);
    let base = offset_in(line, body);
    if split_csv(body, fields).is_err() {
        return None;
    }
    let mut cols = CsvCols {
        sha256: usize::MAX,
        signature: None,
        file_name: None,
        header_line,
    };
    for (i, f) in fields.iter().enumerate() {
        let name = trim(&line[base + f.start..base + f.end]);
        if cols.sha256 == usize::MAX
            && (name.eq_ignore_ascii_case(b"sha256_hash") || name.eq_ignore_ascii_case(b"sha256"))
        {
            cols.sha256 = i;
        } else if cols.signature.is_none() && name.eq_ignore_ascii_case(b"signature") {
            cols.signature = Some(i);
        } else if cols.file_name.is_none() && name.eq_ignore_ascii_case(b"file_name") {
            cols.file_name = Some(i);
        }
    }
    (cols.sha256 != usize::MAX).then_some(cols)
}

/// `line` without leading `#` characters and blanks.
pub(crate) fn strip_comment_marker(line: &[u8]) -> &[u8] {
    let start = line
        .iter()
        .position(|&b| b != b'#' && !is_space(b))
        .unwrap_or(line.len());
    &line[start..]
}

/// The first token of a hash line: up to whitespace, `;`, `,` or `#`.
fn first_token(line: &[u8]) -> (&[u8], Option<u8>) {
    let end = line
        .iter()
        .position(|&b| is_space(b) || b == b';' || b == b',' || b == b'#')
        .unwrap_or(line.len());
    (&line[..end], line.get(end).copied())
}

/// Chooses the format from the first data line (and a `#` header seen
/// before it); see the crate docs for the rules.
fn detect(line: &[u8], comment_header: bool, fields: &mut Vec<Field>) -> FeedFormat {
    let (tok, sep) = first_token(line);
    let hashlike = matches!(tok.len(), 32 | 40 | 64) && first_non_hex(tok).is_none();
    if hashlike {
        return match sep {
            Some(b';') => FeedFormat::HashComment,
            Some(b',') => FeedFormat::Csv,
            _ => FeedFormat::Plain,
        };
    }
    if header_cols(line, 0, fields).is_some() || line.contains(&b',') {
        return FeedFormat::Csv;
    }
    if line.contains(&b';') {
        return FeedFormat::HashComment;
    }
    if comment_header {
        return FeedFormat::Csv;
    }
    FeedFormat::Plain
}

/// Parse state of one feed.
pub(crate) struct Parser<'a> {
    /// Used in error messages: the path for files, else the feed name.
    label: &'a str,
    format: Option<FeedFormat>,
    csv: Option<CsvCols>,
    /// Last `#` comment line before the first data line that looked like a
    /// CSV header (contains a comma), with its line number.
    pending_header: Option<(u64, Vec<u8>)>,
    /// Whether `pending_header` names a sha256 column.
    pending_has_sha256: bool,
    entries: Vec<Entry>,
    comments: CommentInterner,
    report: FeedReport,
    fields: Vec<Field>,
    scratch: Vec<u8>,
    /// Second pass over a feed with duplicates: only these keys are watched (key → first
    /// line seen) and nothing is indexed.
    watch: Option<std::collections::HashMap<(u64, u32), u64>>,
    duplicate_lines: Vec<DuplicateLine>,
}

pub(crate) struct Parsed {
    pub(crate) index: Index,
    pub(crate) comments: Comments,
    pub(crate) report: FeedReport,
    /// The first duplicated keys (at most [`MAX_PROBLEMS`]).
    pub(crate) dup_keys: Vec<(u64, u32)>,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(name: &str, label: &'a str, format: Option<FeedFormat>) -> Self {
        Parser {
            label,
            format,
            csv: None,
            pending_header: None,
            pending_has_sha256: false,
            entries: Vec::new(),
            comments: CommentInterner::default(),
            report: FeedReport::new(name, format.unwrap_or(FeedFormat::Plain), format.is_none()),
            fields: Vec::new(),
            scratch: Vec::new(),
            watch: None,
            duplicate_lines: Vec::new(),
        }
    }

    /// A parser for the second pass: names the lines of the given duplicated keys.
    pub(crate) fn watching(mut self, keys: &[(u64, u32)]) -> Self {
        self.watch = Some(keys.iter().map(|k| (*k, 0u64)).collect());
        self
    }

    /// Feeds every line of `reader` to [`Parser::line`] until the end or until `done`.
    fn read_all<R: BufRead + ?Sized>(
        &mut self,
        reader: &mut R,
        done: impl Fn(&Self) -> bool,
    ) -> Result<(), IntelError> {
        let mut buf = Vec::with_capacity(256);
        while !done(self) {
            let line_no = self.report.lines + 1;
            let total = match read_line_capped(reader, &mut buf, MAX_LINE_LEN) {
                Ok(Some(t)) => t,
                Ok(None) => break,
                Err(source) => {
                    return Err(IntelError::Read {
                        feed: self.label.to_owned(),
                        line: line_no,
                        source,
                    })
                }
            };
            self.report.lines = line_no;
            let mut line = &buf[..];
            if line_no == 1 {
                line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
            }
            self.line(line_no, line, total)?;
        }
        Ok(())
    }

    /// Runs the second pass; returns the duplicate lines found.
    pub(crate) fn find_duplicates<R: BufRead + ?Sized>(
        mut self,
        reader: &mut R,
    ) -> Result<Vec<DuplicateLine>, IntelError> {
        self.read_all(reader, |p| p.duplicate_lines.len() >= MAX_PROBLEMS)?;
        Ok(self.duplicate_lines)
    }

    pub(crate) fn run<R: BufRead + ?Sized>(mut self, reader: &mut R) -> Result<Parsed, IntelError> {
        self.read_all(reader, |_| false)?;
        self.finish()
    }

    fn problem(&mut self, line: u64, kind: ProblemKind, message: impl FnOnce() -> String) {
        self.report.malformed += 1;
        if self.report.problems.len() < MAX_PROBLEMS {
            self.report.problems.push(Problem {
                line,
                kind,
                message: message(),
            });
        }
    }

    fn line(&mut self, no: u64, raw: &[u8], total: usize) -> Result<(), IntelError> {
        let line = trim(raw);
        if line.is_empty() {
            return Ok(());
        }
        if line[0] == b'#' {
            if self.csv.is_none()
                && matches!(self.format, None | Some(FeedFormat::Csv))
                && total <= MAX_LINE_LEN
                && line.contains(&b',')
            {
                self.pending_has_sha256 = header_cols(line, no, &mut self.fields).is_some();
                self.pending_header = Some((no, line.to_vec()));
            }
            return Ok(());
        }
        if total > MAX_LINE_LEN {
            self.problem(no, ProblemKind::LineTooLong, || {
                format!("line too long: {total} bytes (maximum {MAX_LINE_LEN})")
            });
            return Ok(());
        }
        if let Err(e) = std::str::from_utf8(line) {
            let col = offset_in(raw, line) + e.valid_up_to() + 1;
            self.problem(no, ProblemKind::InvalidUtf8, || {
                format!("invalid UTF-8 at column {col}")
            });
            return Ok(());
        }
        let format = match self.format {
            Some(f) => f,
            None => {
                let f = detect(line, self.pending_has_sha256, &mut self.fields);
                tracing::debug!(feed = self.label, line = no, format = %f, "detected feed format");
                self.format = Some(f);
                self.report.format = f;
                f
            }
        };
        match format {
            FeedFormat::Plain | FeedFormat::HashComment => self.hash_line(no, raw, line),
            FeedFormat::Csv => {
                if self.csv.is_none() {
                    return self.csv_header(no, raw, line);
                }
                self.csv_row(no, raw, line);
            }
        }
        Ok(())
    }

    /// Records a valid SHA-256 and its (untrimmed, possibly empty) comment.
    fn add_sha256(&mut self, d: &[u8; 32], comment: &[u8]) {
        let comment = trim(comment);
        let id = if comment.is_empty() {
            NO_COMMENT
        } else {
            // The whole line was checked to be UTF-8; comments built from
            // CSV unescaping only drop ASCII quotes.
            match std::str::from_utf8(comment) {
                Ok(c) => self.comments.intern(cap_comment(c)),
                Err(_) => NO_COMMENT,
            }
        };
        let (hi, lo) = Entry::key_of(d);
        self.entries.push(Entry {
            hi,
            lo,
            comment: id,
        });
        self.report.hashes += 1;
    }

    /// Records a hash token (and optional comment) from line `no`.
    fn add(&mut self, no: u64, raw: &[u8], tok: &[u8], comment: &[u8]) {
        match classify_hash(tok, offset_in(raw, tok) + 1) {
            HashTok::Sha256(d) if self.watch.is_some() => {
                let key = Entry::key_of(&d);
                if let Some(first) = self.watch.as_mut().and_then(|w| w.get_mut(&key)) {
                    if *first == 0 {
                        *first = no;
                    } else if self.duplicate_lines.len() < MAX_PROBLEMS {
                        self.duplicate_lines.push(DuplicateLine {
                            line: no,
                            first_line: *first,
                        });
                    }
                }
            }
            HashTok::Sha256(d) => self.add_sha256(&d, comment),
            HashTok::Sha1 => self.report.skipped_sha1 += 1,
            HashTok::Md5 => self.report.skipped_md5 += 1,
            HashTok::Bad(msg) => self.problem(no, ProblemKind::InvalidHash, || msg),
        }
    }

    /// Plain and hash-comment lines: `HASH`, then optionally blanks, `#`
    /// or `;` and a comment.
    fn hash_line(&mut self, no: u64, raw: &[u8], line: &[u8]) {
        let is_end = |b: u8| is_space(b) || b == b'#' || b == b';';
        // Fast path: 64 hex digits then the end of the token; hex digits
        // are never terminators, so this agrees with the general path.
        let end = match line.get(64) {
            None if line.len() == 64 => 64,
            Some(&b) if is_end(b) => 64,
            _ => line.iter().position(|&b| is_end(b)).unwrap_or(line.len()),
        };
        let (tok, rest) = line.split_at(end);
        let start = rest
            .iter()
            .position(|&b| !is_space(b))
            .unwrap_or(rest.len());
        let rest = &rest[start..];
        let comment = match rest.first() {
            Some(b';') => &rest[1..],
            Some(b'#') => strip_comment_marker(rest),
            _ => rest,
        };
        self.add(no, raw, tok, comment);
    }

    fn csv_header(&mut self, no: u64, raw: &[u8], line: &[u8]) -> Result<(), IntelError> {
        if let Some(cols) = header_cols(line, no, &mut self.fields) {
            self.csv = Some(cols);
            return Ok(());
        }
        let (hline, htext) = match self.pending_header.take() {
            Some((hno, text)) => {
                if let Some(cols) = header_cols(&text, hno, &mut self.fields) {
                    self.csv = Some(cols);
                    // This line is the first data row.
                    self.csv_row(no, raw, line);
                    return Ok(());
                }
                (hno, text)
            }
            None => (no, line.to_vec()),
        };
        Err(IntelError::NoSha256Column {
            feed: self.label.to_owned(),
            line: hline,
            header: snippet_long(&htext),
        })
    }

    fn csv_row(&mut self, no: u64, raw: &[u8], line: &[u8]) {
        let Some(cols) = self.csv else { return };
        let mut fields = std::mem::take(&mut self.fields);
        if let Err(msg) = split_csv(line, &mut fields) {
            self.problem(no, ProblemKind::BadCsvRow, || msg);
            self.fields = fields;
            return;
        }
        let base = offset_in(raw, line);
        let Some(&hf) = fields.get(cols.sha256) else {
            let n = fields.len();
            self.problem(no, ProblemKind::BadCsvRow, || {
                format!(
                    "row has {n} field(s), the sha256 column is field {} (header at line {})",
                    cols.sha256 + 1,
                    cols.header_line
                )
            });
            self.fields = fields;
            return;
        };
        let pick = |i: Option<usize>| {
            i.and_then(|i| fields.get(i).copied()).filter(|f| {
                let t = trim(&line[f.start..f.end]);
                !t.is_empty() && !t.eq_ignore_ascii_case(b"n/a")
            })
        };
        let comment_field = pick(cols.signature).or_else(|| pick(cols.file_name));
        let mut scratch = std::mem::take(&mut self.scratch);
        let comment: &[u8] = match comment_field {
            Some(f) => field_text(line, f, &mut scratch),
            None => b"",
        };
        // Re-base the hash field onto `raw` so the column is right.
        let tok = trim(&raw[base + hf.start..base + hf.end]);
        self.add(no, raw, tok, comment);
        self.scratch = scratch;
        self.fields = fields;
    }

    fn finish(mut self) -> Result<Parsed, IntelError> {
        if self.format.is_none() {
            // No data line at all.
            if self.pending_has_sha256 {
                self.report.format = FeedFormat::Csv;
            }
        }
        if self.entries.is_empty() {
            if let Some(first) = self.report.problems.first() {
                return Err(IntelError::NoValidHashes {
                    feed: self.label.to_owned(),
                    malformed: self.report.malformed,
                    line: first.line,
                    reason: first.message.clone(),
                });
            }
        }
        let (index, duplicates, dup_keys) = Index::build(std::mem::take(&mut self.entries));
        self.report.duplicates = duplicates;
        self.report.hashes = index.len() as u64;
        let comments = self.comments.finish();
        let r = &self.report;
        if r.hashes == 0 {
            tracing::warn!(
                feed = self.label,
                lines = r.lines,
                skipped_sha1 = r.skipped_sha1,
                skipped_md5 = r.skipped_md5,
                "threat-intel feed has no SHA-256 hash"
            );
        }
        if let Some(first) = r.problems.first() {
            tracing::warn!(
                feed = self.label,
                malformed = r.malformed,
                first_line = first.line,
                first_problem = %first.message,
                "threat-intel feed has malformed lines"
            );
        }
        tracing::info!(
            feed = self.label,
            format = %r.format,
            lines = r.lines,
            hashes = r.hashes,
            duplicates = r.duplicates,
            skipped_sha1 = r.skipped_sha1,
            skipped_md5 = r.skipped_md5,
            malformed = r.malformed,
            comments = comments.len(),
            "loaded threat-intel feed"
        );
        Ok(Parsed {
            index,
            comments,
            report: self.report,
            dup_keys,
        })
    }
}

/// Header excerpt for error messages (up to 200 bytes).
fn snippet_long(s: &[u8]) -> String {
    const LEN: usize = 200;
    if s.len() <= LEN {
        String::from_utf8_lossy(s).into_owned()
    } else {
        let mut t = String::from_utf8_lossy(&s[..LEN]).into_owned();
        t.push('…');
        t
    }
}
