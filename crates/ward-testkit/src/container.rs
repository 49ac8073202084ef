//! A running podman container that is removed when dropped.

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::TestkitError;
use crate::sys::cgroup2_mount;

/// Label on every container the testkit starts; its value is the pid of the test process.
const OWNER_LABEL: &str = "ward.testkit.owner-pid";

/// How a test container is networked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// `--network host` (the default): the container shares the host's network namespace, so it
    /// reaches a listener on the host's 127.0.0.1 directly; the socket peer it sees is 127.0.0.1.
    #[default]
    Host,
    /// `--network none`: loopback only.
    None,
    /// Podman's default bridge (netavark, 10.88.0.0/16). Cannot reach the host's 127.0.0.1.
    Bridge,
    /// `--network slirp4netns:allow_host_loopback=true`: user-mode networking in the container's
    /// own namespace; `10.0.2.2` inside the container is the host's 127.0.0.1. The socket peer
    /// seen inside the container is then 10.0.2.2, not loopback, while the host side only ever
    /// listens on 127.0.0.1.
    Slirp,
}

impl Network {
    fn podman_arg(self) -> &'static str {
        match self {
            Network::Host => "--network=host",
            Network::None => "--network=none",
            Network::Bridge => "--network=bridge",
            Network::Slirp => "--network=slirp4netns:allow_host_loopback=true",
        }
    }

    /// The address a process in the container connects to in order to reach a listener bound
    /// to the host's 127.0.0.1, if there is one.
    pub fn host_loopback_addr(self) -> Option<&'static str> {
        match self {
            Network::Host => Some("127.0.0.1"),
            Network::Slirp => Some("10.0.2.2"),
            Network::None | Network::Bridge => None,
        }
    }
}

/// Options for [`Container`]; start with [`Container::builder`].
#[derive(Debug, Clone)]
pub struct ContainerBuilder {
    image: String,
    name_prefix: String,
    network: Network,
    labels: Vec<(String, String)>,
    env: Vec<(String, String)>,
    extra_args: Vec<String>,
}

impl ContainerBuilder {
    /// A container of `image` (e.g. `images.debian`).
    pub fn new(image: &str) -> Self {
        ContainerBuilder {
            image: image.to_string(),
            name_prefix: "ward-test".to_string(),
            network: Network::default(),
            labels: Vec::new(),
            env: Vec::new(),
            extra_args: Vec::new(),
        }
    }

    /// Prefix of the container's unique name (`<prefix>-<pid>-<n>-<nanos>`).
    pub fn name_prefix(mut self, prefix: &str) -> Self {
        self.name_prefix = prefix.to_string();
        self
    }

    /// How the container is networked (default [`Network::Host`]).
    pub fn network(mut self, network: Network) -> Self {
        self.network = network;
        self
    }

    /// Adds `--label key=value`.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.push((key.to_string(), value.to_string()));
        self
    }

    /// Adds `--env key=value`.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Adds a raw `podman run` argument (e.g. `--cap-add=NET_RAW`), placed before the image.
    pub fn arg(mut self, arg: &str) -> Self {
        self.extra_args.push(arg.to_string());
        self
    }

    /// `podman run` arguments: `mode` (`-d`, `--rm ...`), name, network, owner and other labels,
    /// env, extra arguments, the image and `cmd`.
    fn run_args(&self, mode: &[String], name: &str, cmd: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec!["run".into()];
        args.extend(mode.iter().cloned());
        args.extend([
            format!("--name={name}"),
            self.network.podman_arg().into(),
            format!("--label={OWNER_LABEL}={}", std::process::id()),
        ]);
        args.extend(self.labels.iter().map(|(k, v)| format!("--label={k}={v}")));
        args.extend(self.env.iter().map(|(k, v)| format!("--env={k}={v}")));
        args.extend(self.extra_args.iter().cloned());
        args.push(self.image.clone());
        args.extend(cmd.iter().map(|s| s.to_string()));
        args
    }

    /// Runs `cmd` as the container's only process in the foreground (`podman run --rm`) and
    /// returns once the container is gone: the short-lived entrypoint case. The id comes from
    /// `--cidfile`; stdout is what the entrypoint printed.
    pub fn run_to_exit(self, cmd: &[&str]) -> Result<Exited, TestkitError> {
        let name = unique_name(&self.name_prefix);
        let dir = std::env::temp_dir().join(format!("ward-testkit-cid-{name}"));
        let _ = std::fs::remove_file(&dir);
        let args = self.run_args(
            &["--rm".into(), format!("--cidfile={}", dir.display())],
            &name,
            cmd,
        );
        let out = podman(&args);
        let id = std::fs::read_to_string(&dir).unwrap_or_default();
        let _ = std::fs::remove_file(&dir);
        let out = out?;
        // 125-127: podman itself or the runtime failed; anything else is the entrypoint's.
        if matches!(out.status.code(), Some(125..=127) | None) {
            check(&format!("podman {}", args.join(" ")), &out)?;
        }
        let id = id.trim().to_string();
        if !is_full_id(&id) {
            return Err(TestkitError::unexpected(
                "`podman run --cidfile` file",
                format!("{id:?} is not a 64-hex container id"),
            ));
        }
        Ok(Exited {
            id,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            code: out.status.code().unwrap_or(-1),
        })
    }

    /// Starts the container detached with `cmd` as its init process (e.g. `["sleep", "600"]`).
    pub fn run(self, cmd: &[&str]) -> Result<Container, TestkitError> {
        let name = unique_name(&self.name_prefix);
        let args = self.run_args(&["-d".into()], &name, cmd);
        let out = podman_ok(&args)?;
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !is_full_id(&id) {
            return Err(TestkitError::unexpected(
                "`podman run -d` output",
                format!("{id:?} is not a 64-hex container id"),
            ));
        }
        // From here on the guard removes the container even if inspecting it fails.
        let mut container = Container {
            id,
            name,
            image: self.image,
            network: self.network,
            pid: 0,
        };
        let pid = container.inspect_format("{{.State.Pid}}")?;
        container.pid = pid.parse().map_err(|_| {
            TestkitError::unexpected("container pid", format!("{pid:?} is not a number"))
        })?;
        if container.pid == 0 {
            return Err(TestkitError::unexpected(
                "container state",
                format!("{} is not running (pid 0)", container.name),
            ));
        }
        Ok(container)
    }
}

/// Where a container's root filesystem layers sit on the host (podman's overlay driver).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayDirs {
    /// Read-only image layers, top first (`GraphDriver.Data.LowerDir`, `:`-separated).
    pub lower: Vec<PathBuf>,
    /// The container's writable layer: files written after start land here.
    pub upper: PathBuf,
    /// The merged view (the container's `/`).
    pub merged: PathBuf,
}

/// A container that ran to completion and is gone ([`ContainerBuilder::run_to_exit`]).
#[derive(Debug, Clone)]
pub struct Exited {
    /// The 64-hex container id.
    pub id: String,
    /// What the container printed on stdout.
    pub stdout: String,
    /// The entrypoint's exit code.
    pub code: i32,
}

/// A running podman container; `Drop` removes it (`podman rm -f -t 0`).
#[derive(Debug)]
pub struct Container {
    id: String,
    name: String,
    image: String,
    network: Network,
    pid: u32,
}

impl Container {
    /// Starts `image` detached with a unique name derived from `name_prefix`, host networking,
    /// and `cmd` as init (e.g. `&["sleep", "600"]`).
    pub fn run(name_prefix: &str, image: &str, cmd: &[&str]) -> Result<Container, TestkitError> {
        ContainerBuilder::new(image)
            .name_prefix(name_prefix)
            .run(cmd)
    }

    /// Options beyond [`Container::run`]: network, labels, env, raw podman arguments.
    pub fn builder(image: &str) -> ContainerBuilder {
        ContainerBuilder::new(image)
    }

    /// Full container id, 64 lowercase hex.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The unique container name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The image the container was started from, as given.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// The network mode the container was started with.
    pub fn network(&self) -> Network {
        self.network
    }

    /// Host pid of the container's init process.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Runs `cmd` in the container (`podman exec`) and waits for it.
    pub fn exec(&self, cmd: &[&str]) -> Result<Output, TestkitError> {
        let mut args = vec!["exec", self.id.as_str()];
        args.extend_from_slice(cmd);
        podman(&args)
    }

    /// Like [`Container::exec`], but fails unless `cmd` exits 0; returns its stdout (lossy UTF-8).
    pub fn exec_ok(&self, cmd: &[&str]) -> Result<String, TestkitError> {
        let out = self.exec(cmd)?;
        check(
            &format!("podman exec {} {}", self.name, cmd.join(" ")),
            &out,
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `cmd` in the container with `stdin` as its standard input (`podman exec -i`).
    pub fn exec_with_stdin(&self, cmd: &[&str], stdin: &[u8]) -> Result<Output, TestkitError> {
        let mut child = self.spawn_exec(cmd)?;
        if let Some(mut input) = child.stdin.take() {
            input
                .write_all(stdin)
                .map_err(|e| TestkitError::io("writing stdin of podman exec", e))?;
        }
        child
            .wait_with_output()
            .map_err(|e| TestkitError::io("waiting for podman exec", e))
    }

    /// Starts `cmd` in the container in the background (`podman exec -d`) and returns at once.
    pub fn exec_detached(&self, cmd: &[&str]) -> Result<(), TestkitError> {
        let mut args = vec!["exec", "-d", self.id.as_str()];
        args.extend_from_slice(cmd);
        podman_ok(&args).map(|_| ())
    }

    /// Starts `podman exec -i <id> cmd...` with piped stdin/stdout/stderr, for a test that
    /// wants to talk to the process or wait for it itself.
    pub fn spawn_exec(&self, cmd: &[&str]) -> Result<Child, TestkitError> {
        Command::new("podman")
            .args(["exec", "-i", self.id.as_str()])
            .args(cmd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| TestkitError::io("spawning podman exec", e))
    }

    /// Copies a host file into the running container (`podman cp`); it lands in the upper
    /// (writable) overlay layer, like a binary dropped after start.
    pub fn copy_in(&self, host_path: &Path, container_path: &str) -> Result<(), TestkitError> {
        let dest = format!("{}:{container_path}", self.id);
        podman_ok(&[OsStr::new("cp"), host_path.as_os_str(), OsStr::new(&dest)]).map(|_| ())
    }

    /// A path inside the container, seen from the host through `/proc/<pid>/root`.
    pub fn host_path(&self, container_path: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.pid))
            .join(container_path.trim_start_matches('/'))
    }

    /// The container's cgroup v2 path as `/proc/<pid>/cgroup` gives it (the `0::` line), e.g.
    /// `/libpod_parent/libpod-<64 hex id>` with podman's cgroupfs manager.
    pub fn cgroup_path(&self) -> Result<String, TestkitError> {
        let file = format!("/proc/{}/cgroup", self.pid);
        let text = fs::read_to_string(&file).map_err(|e| TestkitError::io(&file, e))?;
        text.lines()
            .find_map(|l| l.strip_prefix("0::"))
            .map(str::to_string)
            .ok_or_else(|| TestkitError::unexpected(file, "no cgroup v2 (0::) line"))
    }

    /// The container's cgroup directory on the host, under the cgroup2 mount
    /// (`/sys/fs/cgroup/unified/libpod_parent/libpod-<id>` here).
    pub fn cgroup_dir(&self) -> Result<PathBuf, TestkitError> {
        let mount =
            cgroup2_mount().map_err(|e| TestkitError::io("finding the cgroup2 mount", e))?;
        let path = self.cgroup_path()?;
        Ok(mount.join(path.trim_start_matches('/')))
    }

    /// The cgroup id `bpf_get_current_cgroup_id()` returns for processes in this container:
    /// the inode number of [`Container::cgroup_dir`].
    pub fn cgroup_id(&self) -> Result<u64, TestkitError> {
        use std::os::unix::fs::MetadataExt;
        let dir = self.cgroup_dir()?;
        fs::metadata(&dir)
            .map(|m| m.ino())
            .map_err(|e| TestkitError::io(format!("stat {}", dir.display()), e))
    }

    /// `podman inspect` of the container, as JSON (the first element of podman's array).
    pub fn inspect(&self) -> Result<serde_json::Value, TestkitError> {
        let out = podman_ok(&["container", "inspect", self.id.as_str()])?;
        let mut v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| TestkitError::unexpected("podman inspect output", e.to_string()))?;
        Ok(v.get_mut(0).map(serde_json::Value::take).unwrap_or(v))
    }

    /// The id (64 hex) of the image the container runs.
    pub fn image_id(&self) -> Result<String, TestkitError> {
        self.inspect_format("{{.Image}}")
    }

    /// Where the container's overlay layers sit on the host.
    pub fn overlay_dirs(&self) -> Result<OverlayDirs, TestkitError> {
        let v = self.inspect()?;
        let data = &v["GraphDriver"]["Data"];
        let field = |k: &str| {
            data[k].as_str().map(str::to_string).ok_or_else(|| {
                TestkitError::unexpected("podman inspect GraphDriver.Data", format!("no {k}"))
            })
        };
        Ok(OverlayDirs {
            lower: field("LowerDir")?.split(':').map(PathBuf::from).collect(),
            upper: field("UpperDir")?.into(),
            merged: field("MergedDir")?.into(),
        })
    }

    fn inspect_format(&self, format: &str) -> Result<String, TestkitError> {
        let out = podman_ok(&["container", "inspect", "--format", format, self.id.as_str()])?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "-f", "-t", "0", self.id.as_str()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Removes containers that an earlier, since-dead test process started and never removed
/// (a test binary killed mid-run cannot run `Drop`).
pub(crate) fn remove_stale_containers() {
    let Ok(out) = podman(&[
        "ps",
        "-a",
        "--filter",
        &format!("label={OWNER_LABEL}"),
        "--format",
        &format!("{{{{.ID}}}} {{{{index .Labels \"{OWNER_LABEL}\"}}}}"),
    ]) else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut parts = line.split_whitespace();
        let (Some(id), Some(pid)) = (parts.next(), parts.next()) else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = podman(&["rm", "-f", "-t", "0", id]);
        }
    }
}

fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let clean: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let clean = clean.trim_start_matches(['-', '.', '_']);
    let clean = if clean.is_empty() { "ward-test" } else { clean };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{clean}-{}-{}-{nanos:09}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn is_full_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn podman<S: AsRef<OsStr>>(args: &[S]) -> Result<Output, TestkitError> {
    Command::new("podman")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| TestkitError::io("running podman", e))
}

fn podman_ok<S: AsRef<OsStr>>(args: &[S]) -> Result<Output, TestkitError> {
    let out = podman(args)?;
    let shown: Vec<String> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    check(&format!("podman {}", shown.join(" ")), &out)?;
    Ok(out)
}

fn check(command: &str, out: &Output) -> Result<(), TestkitError> {
    if out.status.success() {
        return Ok(());
    }
    Err(TestkitError::Command {
        command: command.to_string(),
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_are_valid_and_distinct() {
        let a = unique_name("rev shell/1");
        let b = unique_name("rev shell/1");
        assert_ne!(a, b);
        assert!(a.starts_with("rev-shell-1-"), "{a}");
        assert!(unique_name("").starts_with("ward-test-"));
        assert!(unique_name("--x").starts_with("x-"));
    }

    #[test]
    fn full_ids() {
        assert!(is_full_id(&"a".repeat(64)));
        assert!(!is_full_id(&"A".repeat(64)));
        assert!(!is_full_id("abc"));
    }

    #[test]
    fn host_loopback_addresses() {
        assert_eq!(Network::Host.host_loopback_addr(), Some("127.0.0.1"));
        assert_eq!(Network::Slirp.host_loopback_addr(), Some("10.0.2.2"));
        assert_eq!(Network::Bridge.host_loopback_addr(), None);
    }
}
