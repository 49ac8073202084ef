//! Sinks that need no HTTP: JSON Lines (or text lines) to stdout or a file, and syslog
//! (RFC 5424) over UDP, TCP (octet-counting framing, RFC 6587) or a unix datagram socket.

use crate::format::{self, Context, Format, Privacy};
use crate::spec::{OutputKind, OutputSpec, SpecError};
use crate::{FindingSink, Item, SinkError};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;
use ward_event::Finding;

/// Turns a finding into a sink's body: privacy first, then the format.
#[derive(Debug, Clone)]
pub struct Encoder {
    pub format: Format,
    pub privacy: Privacy,
    pub ctx: Context,
}

impl Encoder {
    pub fn for_spec(spec: &OutputSpec, ctx: &Context) -> Encoder {
        Encoder {
            format: spec.effective_format(),
            privacy: spec.privacy(),
            ctx: ctx.clone(),
        }
    }

    /// The body, as one line without a newline. JSON keeps its values; characters that could
    /// drive a terminal are `\uXXXX` escapes ([`crate::text::json_for_terminal`]).
    pub fn encode(&self, f: &Finding) -> String {
        let f = format::redact(f, &self.privacy);
        let body = format::render(self.format, &f, &self.ctx);
        match self.format {
            Format::Text => body,
            _ => crate::text::json_for_terminal(&body).into_owned(),
        }
    }
}

/// Lines to a writer (stdout or an appended file), flushed after each batch.
pub struct LineSink {
    out: Box<dyn Write + Send>,
    encoder: Encoder,
    target: String,
    buf: Vec<u8>,
}

impl LineSink {
    pub fn stdout(encoder: Encoder) -> LineSink {
        LineSink {
            out: Box::new(BufWriter::new(std::io::stdout())),
            encoder,
            target: "stdout".into(),
            buf: Vec::new(),
        }
    }

    pub fn file(path: &Path, encoder: Encoder) -> std::io::Result<LineSink> {
        Ok(LineSink {
            out: Box::new(BufWriter::new(open_append(path)?)),
            encoder,
            target: path.display().to_string(),
            buf: Vec::new(),
        })
    }
}

/// Opens `path` for appending, creating it and its directory.
pub fn open_append(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

impl FindingSink for LineSink {
    fn write_batch(&mut self, batch: &[Item]) -> Result<(), SinkError> {
        self.buf.clear();
        for i in batch {
            self.buf
                .extend_from_slice(self.encoder.encode(&i.finding).as_bytes());
            self.buf.push(b'\n');
        }
        self.out
            .write_all(&self.buf)
            .and_then(|_| self.out.flush())
            .map_err(|source| SinkError::Io {
                target: self.target.clone(),
                message: format!("writing findings: {source}"),
                source,
            })
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|source| SinkError::Io {
            target: self.target.clone(),
            message: format!("flushing: {source}"),
            source,
        })
    }

    fn describe(&self) -> String {
        self.target.clone()
    }
}

enum Transport {
    Udp(UdpSocket),
    Tcp {
        addr: String,
        stream: Option<TcpStream>,
        timeout: Duration,
    },
    Unix {
        path: PathBuf,
        sock: UnixDatagram,
    },
}

/// RFC 5424 messages to a syslog receiver. UDP and unix datagrams carry one message each
/// (the receiver's size limit applies: rsyslog's default is 8 KiB); TCP frames each message
/// as `LEN SP MSG` and reconnects after a failure.
pub struct SyslogSink {
    transport: Transport,
    encoder: Encoder,
    facility: u8,
    target: String,
}

impl SyslogSink {
    pub fn new(spec: &OutputSpec, encoder: Encoder, at: &str) -> Result<SyslogSink, SpecError> {
        let url = spec.url.clone().unwrap_or_default();
        let bad = |m: String| SpecError {
            key: format!("{at}.url"),
            message: m,
        };
        let transport = if let Some(hp) = url.strip_prefix("udp://") {
            let addr = hp
                .to_socket_addrs()
                .map_err(|e| bad(format!("{url}: {e}")))?
                .next()
                .ok_or_else(|| bad(format!("{url}: no address")))?;
            let bind = if addr.is_ipv6() {
                "[::]:0"
            } else {
                "0.0.0.0:0"
            };
            let s = UdpSocket::bind(bind).map_err(|e| bad(format!("{url}: {e}")))?;
            s.connect(addr).map_err(|e| bad(format!("{url}: {e}")))?;
            Transport::Udp(s)
        } else if let Some(hp) = url.strip_prefix("tcp://") {
            Transport::Tcp {
                addr: hp.to_string(),
                stream: None,
                timeout: spec.timeout,
            }
        } else if let Some(p) = url.strip_prefix("unix://") {
            let sock = UnixDatagram::unbound().map_err(|e| bad(format!("{url}: {e}")))?;
            Transport::Unix {
                path: PathBuf::from(p),
                sock,
            }
        } else {
            return Err(bad(format!("{url:?} is not a syslog URL")));
        };
        Ok(SyslogSink {
            transport,
            encoder,
            facility: spec.facility_code(),
            target: url,
        })
    }

    fn io(&self, what: &str, source: std::io::Error) -> SinkError {
        SinkError::Io {
            target: self.target.clone(),
            message: format!("{what}: {source}"),
            source,
        }
    }
}

impl FindingSink for SyslogSink {
    fn health(&self) -> Option<String> {
        match &self.transport {
            Transport::Tcp { stream, .. } => Some(
                if stream.is_some() {
                    "connected"
                } else {
                    "not connected"
                }
                .into(),
            ),
            _ => None,
        }
    }

    fn write_batch(&mut self, batch: &[Item]) -> Result<(), SinkError> {
        let msgs: Vec<String> = batch
            .iter()
            .map(|i| {
                let f = format::redact(&i.finding, &self.encoder.privacy);
                format::syslog_5424(&f, &self.encoder.ctx, self.facility, self.encoder.format)
            })
            .collect();
        let r = match &mut self.transport {
            Transport::Udp(s) => msgs
                .iter()
                .try_for_each(|m| s.send(m.as_bytes()).map(|_| ()))
                .map_err(|e| ("sending", e)),
            Transport::Unix { path, sock } => msgs
                .iter()
                .try_for_each(|m| sock.send_to(m.as_bytes(), &*path).map(|_| ()))
                .map_err(|e| ("sending", e)),
            Transport::Tcp {
                addr,
                stream,
                timeout,
            } => {
                // A receiver that restarted closed our connection; a write would still
                // succeed once (into the kernel's buffer) and be lost: reconnect first.
                if stream.as_ref().is_some_and(peer_closed) {
                    *stream = None;
                }
                if stream.is_none() {
                    let connected = addr
                        .to_socket_addrs()
                        .and_then(|mut a| {
                            a.next().ok_or_else(|| {
                                std::io::Error::new(std::io::ErrorKind::NotFound, "no address")
                            })
                        })
                        .and_then(|a| TcpStream::connect_timeout(&a, *timeout));
                    match connected {
                        Ok(s) => {
                            let _ = s.set_write_timeout(Some(*timeout));
                            *stream = Some(s);
                        }
                        Err(e) => return Err(self.io("connecting", e)),
                    }
                }
                let mut framed = Vec::new();
                for m in &msgs {
                    framed.extend_from_slice(format!("{} ", m.len()).as_bytes());
                    framed.extend_from_slice(m.as_bytes());
                }
                let s = stream.as_mut().expect("connected above");
                match s.write_all(&framed).and_then(|_| s.flush()) {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        *stream = None;
                        Err(("sending", e))
                    }
                }
            }
        };
        r.map_err(|(what, e)| self.io(what, e))
    }

    fn describe(&self) -> String {
        self.target.clone()
    }
}

/// True when the peer has closed the connection (EOF or an error is pending). Receivers of
/// syslog over TCP never send, so anything readable means closed.
fn peer_closed(s: &TcpStream) -> bool {
    if s.set_nonblocking(true).is_err() {
        return true;
    }
    let mut b = [0u8; 1];
    let closed = match s.peek(&mut b) {
        Ok(_) => true,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    };
    closed || s.set_nonblocking(false).is_err()
}

/// Builds a local sink for `spec` (stdout, file, syslog); `None` for the HTTP kinds, which
/// `ward_api::outputs` builds.
pub fn build(
    spec: &OutputSpec,
    ctx: &Context,
    at: &str,
) -> Option<Result<Box<dyn FindingSink>, SpecError>> {
    let enc = Encoder::for_spec(spec, ctx);
    Some(match spec.kind {
        OutputKind::Stdout => Ok(Box::new(LineSink::stdout(enc))),
        OutputKind::File => {
            let p = spec.path.clone().unwrap_or_default();
            LineSink::file(&p, enc)
                .map(|s| Box::new(s) as Box<dyn FindingSink>)
                .map_err(|e| SpecError {
                    key: format!("{at}.path"),
                    message: format!("cannot open {}: {e}", p.display()),
                })
        }
        OutputKind::Syslog => {
            SyslogSink::new(spec, enc, at).map(|s| Box::new(s) as Box<dyn FindingSink>)
        }
        OutputKind::Webhook | OutputKind::Falcosidekick | OutputKind::Central => return None,
    })
}
