//! A private PostgreSQL server for tests, from the Debian packages (`postgresql`).
//!
//! [`TempPostgres::start`] runs `initdb` into a temp dir and starts `postgres` from the
//! newest `/usr/lib/postgresql/*/bin` on 127.0.0.1 (a free port) and on a unix socket in the
//! temp dir, as an unprivileged user (PostgreSQL refuses to run as root: when the tests run as
//! root the server runs as the `postgres` user the package creates, else `nobody`). The
//! cluster uses the C locale (byte order, as SQLite sorts text), trust authentication for the
//! superuser `ward`, and a database `ward`. Dropping it stops the server (fast shutdown, then
//! SIGKILL) and removes the directory.
//!
//! ```no_run
//! let Some(pg) = ward_testkit::postgres::TempPostgres::start_or_skip("doc example") else {
//!     return;
//! };
//! let url = pg.url(); // postgres://ward@127.0.0.1:PORT/ward
//! # let _ = url;
//! ```

use crate::TestkitError;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running private PostgreSQL server; stopped and removed on drop.
#[derive(Debug)]
pub struct TempPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    child: Option<Child>,
    /// The `postgres` arguments it was started with (for [`TempPostgres::start_again`]).
    args: Vec<String>,
}

/// The newest PostgreSQL server binaries installed (`/usr/lib/postgresql/N/bin`), if any.
pub fn server_bin_dir() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("postgres").is_file() && bin.join("initdb").is_file()).then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b)
}

/// Whether the PostgreSQL server binaries are installed. When not: panics in CI
/// (`CI=true`), else prints `SKIP <test>: ...` and returns false.
pub fn available_or_skip(test: &str) -> bool {
    if server_bin_dir().is_some() {
        return true;
    }
    if in_ci() {
        panic!(
            "{test}: PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin \
             and CI=true (scripts/install-deps.sh installs `postgresql`)"
        );
    }
    crate::skip(
        test,
        "PostgreSQL not installed (apt-get install postgresql; scripts/install-deps.sh)",
    );
    false
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The uid and gid the server runs as when we are root.
fn server_user() -> Option<(u32, u32)> {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    for name in [c"postgres", c"nobody"] {
        // SAFETY: a NUL-terminated name; the returned record is read at once, before any
        // other getpw* call on this thread.
        let pw = unsafe { libc::getpwnam(name.as_ptr()) };
        if !pw.is_null() {
            // SAFETY: non-null pointer to a passwd record.
            let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
            return Some((uid, gid));
        }
    }
    None
}

fn chown(path: &Path, user: Option<(u32, u32)>) -> Result<(), TestkitError> {
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(|e| TestkitError::io(format!("chown {}", path.display()), e))?;
    }
    Ok(())
}

fn free_port() -> Result<u16, TestkitError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| TestkitError::io("bind 127.0.0.1:0 to find a free port", e))?;
    Ok(l.local_addr()
        .map_err(|e| TestkitError::io("local address", e))?
        .port())
}

impl TempPostgres {
    /// Starts a server, or returns `None` after printing `SKIP <test>: ...` when the
    /// PostgreSQL binaries are not installed and this is not CI. In CI (`CI=true`) missing
    /// binaries, and anywhere a failing start, panic: a broken machine must not pass by
    /// skipping.
    pub fn start_or_skip(test: &str) -> Option<TempPostgres> {
        if !available_or_skip(test) {
            return None;
        }
        match TempPostgres::start() {
            Ok(pg) => Some(pg),
            Err(e) => panic!("{test}: cannot start a private PostgreSQL: {e}"),
        }
    }

    /// Starts a server with test settings (no fsync: the data is thrown away).
    pub fn start() -> Result<TempPostgres, TestkitError> {
        TempPostgres::start_with(&[("fsync", "off"), ("synchronous_commit", "off")])
    }

    /// Starts a server with extra `-c name=value` settings (e.g. `fsync=on` for a benchmark
    /// that compares durable commits).
    pub fn start_with(settings: &[(&str, &str)]) -> Result<TempPostgres, TestkitError> {
        Self::start_inner(settings, None)
    }

    /// Starts a test server that also accepts TLS (`ssl=on`) with the given PEM certificate
    /// chain and key (written into the temp dir, readable by the server user only). Plain
    /// connections are still accepted.
    pub fn start_with_tls(cert_pem: &str, key_pem: &str) -> Result<TempPostgres, TestkitError> {
        Self::start_inner(
            &[("fsync", "off"), ("synchronous_commit", "off")],
            Some((cert_pem, key_pem)),
        )
    }

    fn start_inner(
        settings: &[(&str, &str)],
        tls: Option<(&str, &str)>,
    ) -> Result<TempPostgres, TestkitError> {
        let bin = server_bin_dir().ok_or_else(|| {
            TestkitError::Setup("no PostgreSQL under /usr/lib/postgresql/*/bin".into())
        })?;
        let user = server_user();
        let dir = tempfile::Builder::new()
            .prefix("ward-pg-")
            .tempdir()
            .map_err(|e| TestkitError::io("create a temp dir for PostgreSQL", e))?;
        chown(dir.path(), user)?;
        let data = dir.path().join("data");
        let out = server_command(&bin.join("initdb"), user)
            .args(["-D"])
            .arg(&data)
            .args([
                "-U",
                "ward",
                "--auth=trust",
                "--locale=C",
                "--encoding=UTF8",
                "--no-sync",
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| TestkitError::io(format!("run {}/initdb", bin.display()), e))?;
        if !out.status.success() {
            return Err(TestkitError::Command {
                command: format!("initdb -D {}", data.display()),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        let mut tls_settings: Vec<(String, String)> = Vec::new();
        if let Some((cert, key)) = tls {
            for (name, text) in [("server.crt", cert), ("server.key", key)] {
                let path = dir.path().join(name);
                std::fs::write(&path, text)
                    .map_err(|e| TestkitError::io(format!("write {}", path.display()), e))?;
                std::fs::set_permissions(
                    &path,
                    std::os::unix::fs::PermissionsExt::from_mode(0o600),
                )
                .map_err(|e| TestkitError::io(format!("chmod {}", path.display()), e))?;
                chown(&path, user)?;
            }
            let file = |n: &str| dir.path().join(n).display().to_string();
            tls_settings.push(("ssl".into(), "on".into()));
            tls_settings.push(("ssl_cert_file".into(), file("server.crt")));
            tls_settings.push(("ssl_key_file".into(), file("server.key")));
        }
        // A port found free may be taken before the server binds it: try a few.
        let mut last = None;
        for _ in 0..5 {
            let port = free_port()?;
            let log = dir.path().join("postgres.log");
            let logf = std::fs::File::create(&log)
                .map_err(|e| TestkitError::io(format!("create {}", log.display()), e))?;
            chown(&log, user)?;
            let mut args: Vec<String> = vec![
                "-D".into(),
                data.display().to_string(),
                "-p".into(),
                port.to_string(),
                "-c".into(),
                "listen_addresses=127.0.0.1".into(),
                "-c".into(),
                format!("unix_socket_directories={}", dir.path().display()),
                "-c".into(),
                "max_connections=200".into(),
            ];
            for (k, v) in settings {
                args.push("-c".into());
                args.push(format!("{k}={v}"));
            }
            for (k, v) in &tls_settings {
                args.push("-c".into());
                args.push(format!("{k}={v}"));
            }
            let mut cmd = server_command(&bin.join("postgres"), user);
            cmd.args(&args);
            let mut child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(logf)
                .spawn()
                .map_err(|e| TestkitError::io(format!("run {}/postgres", bin.display()), e))?;
            match wait_ready(&bin, port, &mut child) {
                Ok(()) => {
                    let pg = TempPostgres {
                        dir,
                        bin,
                        port,
                        child: Some(child),
                        args,
                    };
                    pg.psql("postgres", "CREATE DATABASE ward")?;
                    return Ok(pg);
                }
                Err(e) => {
                    stop_child(&mut child);
                    let log = std::fs::read_to_string(&log).unwrap_or_default();
                    if !log.contains("could not bind") && !log.contains("already in use") {
                        return Err(TestkitError::Setup(format!("{e}; server log: {log}")));
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| TestkitError::Setup("no free port".into())))
    }

    /// Runs one SQL command with `psql` (as the superuser `ward`) in database `db`.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, TestkitError> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "ward",
            ])
            .args(["-d", db, "-c", sql])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| TestkitError::io("run psql", e))?;
        if !out.status.success() {
            return Err(TestkitError::Command {
                command: format!("psql -c {sql:?}"),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Creates another database (for tests sharing one server) and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String, TestkitError> {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))?;
        Ok(self.url_for(name))
    }

    /// `postgres://ward@127.0.0.1:PORT/ward`.
    pub fn url(&self) -> String {
        self.url_for("ward")
    }

    /// The URL of database `db` on this server.
    pub fn url_for(&self, db: &str) -> String {
        format!("postgres://ward@127.0.0.1:{}/{db}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the data directory, the log and the unix socket.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    /// Stops the server now (SIGINT: fast shutdown; SIGKILL after 10 s).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child);
        }
    }

    /// Starts a stopped server again on the same data directory and port (an outage's end).
    pub fn start_again(&mut self) -> Result<(), TestkitError> {
        if self.child.is_some() {
            return Ok(());
        }
        let log = self.dir.path().join("postgres.log");
        let logf = std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .map_err(|e| TestkitError::io(format!("open {}", log.display()), e))?;
        let mut child = server_command(&self.bin.join("postgres"), server_user())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .map_err(|e| TestkitError::io(format!("run {}/postgres", self.bin.display()), e))?;
        if let Err(e) = wait_ready(&self.bin, self.port, &mut child) {
            stop_child(&mut child);
            return Err(TestkitError::Setup(format!(
                "{e}; server log: {}",
                self.log()
            )));
        }
        self.child = Some(child);
        Ok(())
    }
}

fn wait_ready(bin: &Path, port: u16, child: &mut Child) -> Result<(), TestkitError> {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(TestkitError::Setup(format!("postgres exited: {status}")));
        }
        let ok = Command::new(bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(());
        }
        if start.elapsed() > START_TIMEOUT {
            return Err(TestkitError::Timeout {
                what: "PostgreSQL to accept connections".into(),
                timeout: START_TIMEOUT,
                partial: String::new(),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop_child(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid, libc::SIGINT) };
    }
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A command run as the unprivileged server user when we are root.
fn server_command(program: &Path, user: Option<(u32, u32)>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("LC_ALL", "C").env_remove("PGDATA");
    if let Some((uid, gid)) = user {
        // std drops the supplementary groups when it changes the uid as root.
        cmd.uid(uid).gid(gid).current_dir("/");
    }
    cmd
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}
