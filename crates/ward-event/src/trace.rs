//! The trace format: JSON Lines, one [`Event`] per line, after a header line that names the
//! format and its version:
//!
//! ```text
//! {"type":"header","format":"ward-trace","version":1,"node":"node-1","source":"ward agent"}
//! {"type":"exec","time":1795302273000000000,"node":"node-1","pid":4242,...}
//! ```
//!
//! A line that is not a valid event is reported with its line number and the field at fault,
//! and reading goes on with the next line. Blank lines and lines starting with `//` are
//! skipped. A trace whose header is missing, or names another format or a version this build
//! does not read, is rejected as a whole.

use crate::event::Event;
use serde::{Deserialize, Serialize};
use std::io::BufRead;

/// The trace format version this build writes and reads.
pub const TRACE_VERSION: u32 = 1;
/// The `format` value of the header line.
pub const TRACE_FORMAT: &str = "ward-trace";

/// Longest line accepted (a line with a 64 KiB script and a full argv fits comfortably).
pub const MAX_LINE_BYTES: usize = 4 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TraceHeader {
    /// Always `"header"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Always `"ward-trace"`.
    pub format: String,
    pub version: u32,
    /// Where it was recorded, when one node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// What wrote it (`ward agent --record`, a test, a generator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The first `seeds` exec events after the header are processes that were already running
    /// when recording began: a replay seeds them (lineage and identity, no detection), as the
    /// live agent did.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub seeds: u64,
    /// The recording node's boot id (`/proc/sys/kernel/random/boot_id`) and the offset the
    /// recorder used to turn the kernel's boot-time stamps into `time` (wall clock minus boot
    /// time, ns). Together they let a replay name findings exactly as the live agent did
    /// ([`crate::time::IdClock`]); absent in hand-written traces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_offset_ns: Option<i64>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl TraceHeader {
    pub fn new(node: Option<String>, source: &str) -> Self {
        TraceHeader {
            kind: "header".into(),
            format: TRACE_FORMAT.into(),
            version: TRACE_VERSION,
            node,
            source: Some(source.into()),
            seeds: 0,
            boot_id: None,
            clock_offset_ns: None,
        }
    }

    /// The id clock this header names, when it names both parts.
    pub fn id_clock(&self) -> Option<crate::time::IdClock> {
        Some(crate::time::IdClock {
            boot_id: self.boot_id.clone()?,
            offset_ns: self.clock_offset_ns?,
        })
    }
}

/// A problem with one trace line, or with the trace as a whole.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("line {line}: {field}: {message}")]
    BadLine {
        line: u64,
        /// Path of the field at fault, e.g. `binary.sha256`, or `.` for the line itself.
        field: String,
        message: String,
    },
    #[error("line {line}: line longer than {max} bytes")]
    LineTooLong { line: u64, max: usize },
    #[error("line {line}: not UTF-8")]
    NotUtf8 { line: u64 },
    #[error("line {line}: not a ward trace: {message}")]
    BadHeader { line: u64, message: String },
    #[error("reading the trace: {0}")]
    Io(#[from] std::io::Error),
}

impl TraceError {
    /// True when the error is about one line only, and reading can go on.
    pub fn is_recoverable(&self) -> bool {
        matches!(
            self,
            TraceError::BadLine { .. }
                | TraceError::LineTooLong { .. }
                | TraceError::NotUtf8 { .. }
        )
    }
}

/// Parses one event line. On failure, names the field at fault.
pub fn parse_event(line: &str, line_no: u64) -> Result<Event, TraceError> {
    // Fast path: find the top-level "type" key, then deserialize the concrete record in one
    // pass (serde's internally tagged enums buffer the whole object and parse it twice).
    let parsed = match top_level_type(line) {
        Some("exec") => serde_json::from_str(line).map(|e| Event::Exec(Box::new(e))),
        Some("fork") => serde_json::from_str(line).map(Event::Fork),
        Some("exit") => serde_json::from_str(line).map(Event::Exit),
        Some("fd") => serde_json::from_str(line).map(Event::Fd),
        Some("socket") => serde_json::from_str(line).map(Event::Socket),
        _ => serde_json::from_str::<Event>(line),
    };
    parsed.map_err(|first| explain(line, line_no, first))
}

/// The value of the top-level `"type"` key of a JSON object, found by skipping other values
/// without building them. `None` when the text is not such an object (the caller then falls
/// back to the full parser, which reports the problem).
fn top_level_type(line: &str) -> Option<&str> {
    let b = line.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        i = skip_ws(b, i);
        let (key_start, key_end) = scan_string(b, i)?;
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, i + 1);
        if &b[key_start + 1..key_end - 1] == b"type" {
            let (vs, ve) = scan_string(b, i)?;
            let v = &line[vs + 1..ve - 1];
            return (!v.contains('\\')).then_some(v);
        }
        i = skip_value(b, i)?;
        i = skip_ws(b, i);
        match b.get(i) {
            Some(b',') => i += 1,
            _ => return None,
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// A string starting at `i`: returns (index of the opening quote, index after the closing).
fn scan_string(b: &[u8], i: usize) -> Option<(usize, usize)> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'"' => return Some((i, j + 1)),
            _ => j += 1,
        }
    }
    None
}

/// Skips one JSON value (string, object, array, number or literal) starting at `i`.
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => scan_string(b, i).map(|(_, e)| e),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = scan_string(b, j)?.1;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

/// Slow path, only for bad lines: find the field at fault. Internally tagged enums buffer
/// their content, which hides the path, so the record type is picked by hand first.
fn explain(line: &str, line_no: u64, first: serde_json::Error) -> TraceError {
    let bad = |field: String, message: String| TraceError::BadLine {
        line: line_no,
        field: if field.is_empty() { ".".into() } else { field },
        message: strip_position(&message),
    };
    let value: serde_json::Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return bad(String::new(), format!("not valid JSON: {e}")),
    };
    let Some(kind) = value.get("type").and_then(|t| t.as_str()) else {
        return bad(
            "type".into(),
            "missing or not a string; expected one of exec, fork, exit, fd, socket".into(),
        );
    };
    fn path_err<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Option<(String, String)> {
        match serde_path_to_error::deserialize::<_, T>(v) {
            Ok(_) => None,
            Err(e) => Some((e.path().to_string(), e.into_inner().to_string())),
        }
    }
    let found = match kind {
        "exec" => path_err::<crate::event::ExecEvent>(value),
        "fork" => path_err::<crate::event::ForkEvent>(value),
        "exit" => path_err::<crate::event::ExitEvent>(value),
        "fd" => path_err::<crate::event::FdEvent>(value),
        "socket" => path_err::<crate::event::SocketEvent>(value),
        other => Some((
            "type".into(),
            format!("unknown event type {other:?}; expected one of exec, fork, exit, fd, socket"),
        )),
    };
    match found {
        Some((field, message)) => bad(field, message),
        None => bad(String::new(), first.to_string()),
    }
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// Streams events from a trace. Yields `Err` for bad lines (recoverable) and stops after a
/// fatal error (bad header, IO).
pub struct TraceReader<R> {
    input: R,
    buf: Vec<u8>,
    line: u64,
    header: Option<TraceHeader>,
    failed: bool,
}

impl<R: BufRead> TraceReader<R> {
    /// Reads and checks the header line.
    pub fn new(mut input: R) -> Result<Self, TraceError> {
        let mut buf = Vec::with_capacity(4096);
        let mut line = 0u64;
        loop {
            buf.clear();
            let n = read_line_capped(&mut input, &mut buf, MAX_LINE_BYTES)?;
            if n == 0 {
                return Err(TraceError::BadHeader {
                    line: line + 1,
                    message: "empty input, expected a header line".into(),
                });
            }
            line += 1;
            let text = std::str::from_utf8(&buf)
                .map_err(|_| TraceError::BadHeader {
                    line,
                    message: "header is not UTF-8".into(),
                })?
                .trim();
            if text.is_empty() || text.starts_with("//") {
                continue;
            }
            let header: TraceHeader = serde_json::from_str(text).map_err(|e| TraceError::BadHeader {
                line,
                message: format!(
                    "expected a header like {{\"type\":\"header\",\"format\":\"{TRACE_FORMAT}\",\"version\":{TRACE_VERSION}}}: {}",
                    strip_position(&e.to_string())
                ),
            })?;
            if header.kind != "header" || header.format != TRACE_FORMAT {
                return Err(TraceError::BadHeader {
                    line,
                    message: format!("type/format must be header/{TRACE_FORMAT}"),
                });
            }
            if header.version != TRACE_VERSION {
                return Err(TraceError::BadHeader {
                    line,
                    message: format!(
                        "trace format version {} is not supported (this build reads version {TRACE_VERSION})",
                        header.version
                    ),
                });
            }
            return Ok(TraceReader {
                input,
                buf,
                line,
                header: Some(header),
                failed: false,
            });
        }
    }

    pub fn header(&self) -> Option<&TraceHeader> {
        self.header.as_ref()
    }

    /// Number of the last line read.
    pub fn line(&self) -> u64 {
        self.line
    }
}

impl<R: BufRead> Iterator for TraceReader<R> {
    type Item = Result<Event, TraceError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            self.buf.clear();
            let n = match read_line_capped(&mut self.input, &mut self.buf, MAX_LINE_BYTES) {
                Ok(n) => n,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(TraceError::Io(e)));
                }
            };
            if n == 0 {
                return None;
            }
            self.line += 1;
            if self.buf.len() > MAX_LINE_BYTES {
                return Some(Err(TraceError::LineTooLong {
                    line: self.line,
                    max: MAX_LINE_BYTES,
                }));
            }
            let Ok(text) = std::str::from_utf8(&self.buf) else {
                return Some(Err(TraceError::NotUtf8 { line: self.line }));
            };
            let text = text.trim();
            if text.is_empty() || text.starts_with("//") {
                continue;
            }
            return Some(parse_event(text, self.line));
        }
    }
}

/// Reads one line into `buf`, keeping at most `max + 1` bytes of it (the rest is consumed and
/// dropped, so an endless line cannot exhaust memory). Returns bytes consumed (0 at EOF).
fn read_line_capped<R: BufRead>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<usize> {
    let mut consumed = 0;
    loop {
        let available = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(consumed);
        }
        let (chunk, done) = match memchr::memchr(b'\n', available) {
            Some(i) => (&available[..i], i + 1),
            None => (available, available.len()),
        };
        let room = (max + 1).saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let found_newline = done > chunk.len();
        r.consume(done);
        consumed += done;
        if found_newline {
            return Ok(consumed);
        }
    }
}

/// Serializes a header or an event as one trace line (without the newline).
pub fn to_line<T: Serialize>(record: &T) -> String {
    serde_json::to_string(record).expect("trace records always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::*;
    use std::io::Cursor;

    const HEADER: &str = r#"{"type":"header","format":"ward-trace","version":1}"#;

    fn read(text: &str) -> (Vec<Event>, Vec<String>) {
        let r = TraceReader::new(Cursor::new(text.as_bytes().to_vec())).unwrap();
        let mut evs = vec![];
        let mut errs = vec![];
        for item in r {
            match item {
                Ok(e) => evs.push(e),
                Err(e) => errs.push(e.to_string()),
            }
        }
        (evs, errs)
    }

    #[test]
    fn reads_events_and_reports_bad_lines_with_field() {
        let text = format!(
            "{HEADER}\n\
             {{\"type\":\"fork\",\"time\":1,\"pid\":2,\"ppid\":1}}\n\
             \n\
             {{\"type\":\"fork\",\"time\":1,\"pid\":\"x\",\"ppid\":1}}\n\
             not json\n\
             {{\"type\":\"teleport\",\"time\":1}}\n\
             {{\"type\":\"exit\",\"time\":5,\"pid\":2,\"code\":0}}\n"
        );
        let (evs, errs) = read(&text);
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[1].pid(), 2);
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[0].starts_with("line 4: pid:"), "{}", errs[0]);
        assert!(errs[1].starts_with("line 5:"), "{}", errs[1]);
        assert!(
            errs[2].starts_with("line 6:") && errs[2].contains("teleport"),
            "{}",
            errs[2]
        );
    }

    #[test]
    fn nested_field_is_named() {
        let text = format!(
            "{HEADER}\n{{\"type\":\"exec\",\"time\":1,\"node\":\"n\",\"pid\":3,\"ppid\":1,\"filename\":\"/bin/id\",\"binary\":{{\"path\":\"/bin/id\",\"sha256\":\"zz\"}},\"argv\":[\"id\"]}}\n"
        );
        let (evs, errs) = read(&text);
        assert!(evs.is_empty());
        assert!(errs[0].starts_with("line 2: binary.sha256:"), "{}", errs[0]);
    }

    #[test]
    fn header_is_required_and_versioned() {
        let e = TraceReader::new(Cursor::new(
            b"{\"type\":\"fork\",\"time\":1,\"pid\":2,\"ppid\":1}\n".to_vec(),
        ))
        .err()
        .unwrap();
        assert!(e.to_string().contains("line 1: not a ward trace"), "{e}");
        let e = TraceReader::new(Cursor::new(
            br#"{"type":"header","format":"ward-trace","version":99}"#.to_vec(),
        ))
        .err()
        .unwrap();
        assert!(e.to_string().contains("version 99 is not supported"), "{e}");
        assert!(TraceReader::new(Cursor::new(Vec::new())).is_err());
    }

    #[test]
    fn overlong_and_non_utf8_lines_are_skipped() {
        let mut data = format!("{HEADER}\n").into_bytes();
        data.extend(std::iter::repeat_n(b'a', MAX_LINE_BYTES + 10));
        data.push(b'\n');
        data.extend_from_slice(b"\xff\xfe\n");
        data.extend_from_slice(b"{\"type\":\"exit\",\"time\":5,\"pid\":2}\n");
        let r = TraceReader::new(Cursor::new(data)).unwrap();
        let items: Vec<_> = r.collect();
        assert_eq!(items.len(), 3);
        assert!(matches!(
            items[0],
            Err(TraceError::LineTooLong { line: 2, .. })
        ));
        assert!(matches!(items[1], Err(TraceError::NotUtf8 { line: 3 })));
        assert!(items[2].is_ok());
    }

    #[test]
    fn finds_the_top_level_type_only() {
        assert_eq!(top_level_type(r#"{"type":"exec","a":1}"#), Some("exec"));
        assert_eq!(
            top_level_type(
                r#" { "x" : {"type":"fork","y":[1,{"type":"z"}]}, "s":"\"type\":\"q\"", "n":-1.5e3, "b":true, "type" : "fd" }"#
            ),
            Some("fd")
        );
        assert_eq!(top_level_type(r#"{"a":1}"#), None);
        assert_eq!(top_level_type(r#"[1]"#), None);
        assert_eq!(top_level_type(r#"{"a":"unterminated"#), None);
        assert_eq!(top_level_type(r#"{"a":{"b":1}"#), None);
        assert_eq!(top_level_type(""), None);
        // A record whose first key names another type than its fields fails cleanly.
        assert!(parse_event(r#"{"type":"fork","time":1,"pid":2}"#, 3).is_err());
    }

    #[test]
    fn exec_round_trips() {
        let ev = Event::Exec(Box::new(ExecEvent {
            time: 7,
            node: "n1".into(),
            pid: 10,
            tgid: Some(10),
            ppid: 1,
            uid: 0,
            gid: 0,
            comm: "sh".into(),
            filename: "/bin/sh".into(),
            binary: BinaryInfo {
                path: "/bin/busybox".into(),
                size: 10,
                sha256: Some(crate::Sha256([7; 32])),
                layer: Layer::Image,
                ..Default::default()
            },
            argv: vec!["sh".into(), "-i".into()],
            argv_truncated: false,
            env: crate::StrList::new(),
            env_truncated: false,
            cwd: "/".into(),
            script: None,
            stdio: [
                FdInfo {
                    kind: FdKind::InetSocket,
                    inode: 99,
                    path: None,
                    socket: Some(SocketInfo {
                        protocol: Protocol::Tcp,
                        local_ip: "::1".parse().unwrap(),
                        local_port: 5000,
                        remote_ip: "::1".parse().unwrap(),
                        remote_port: 4444,
                    }),
                },
                FdInfo::default(),
                FdInfo::default(),
            ],
            stdin_writer: Some(9),
            cgroup_id: 5,
            container_id: Some("ab".repeat(32)),
            container: None,
        }));
        let line = to_line(&ev);
        let back = parse_event(&line, 1).unwrap();
        assert_eq!(back, ev);
        assert!(ev_has_peer(&back));
        // No environment: no `env` keys (traces recorded before it keep their bytes).
        assert!(!line.contains("\"env"), "{line}");

        // With one: `env` and `envTruncated`, in order, round-trip.
        let Event::Exec(mut e) = ev else {
            unreachable!()
        };
        e.env = ["PATH=/bin", "HTTP_PROXY=http://p:3128"].iter().collect();
        e.env_truncated = true;
        let ev = Event::Exec(e);
        let line = to_line(&ev);
        assert!(
            line.contains(r#""env":["PATH=/bin","HTTP_PROXY=http://p:3128"],"envTruncated":true"#),
            "{line}"
        );
        assert_eq!(parse_event(&line, 1).unwrap(), ev);
        // A bad `env` is an error naming the field, not a panic.
        let bad = line.replace(r#""env":["PATH=/bin","#, r#""env":[7,"#);
        let err = parse_event(&bad, 4).unwrap_err().to_string();
        assert!(err.contains("line 4"), "{err}");
    }

    fn ev_has_peer(ev: &Event) -> bool {
        match ev {
            Event::Exec(e) => e.stdio[0].remote_stream_peer().is_some(),
            _ => false,
        }
    }
}
