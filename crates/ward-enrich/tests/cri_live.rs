//! The CRI client against a real containerd (Debian's `containerd` package) running a real pod,
//! offline. Needs root and the `cri` feature:
//! `cargo test -p ward-enrich --features cri --test cri_live -- --nocapture` (1-2 s once built).
//!
//! The test starts a private containerd (its own socket, root, state, runc root and config,
//! CRI plugin with the overlayfs snapshotter, runc, cgroupfs), imports a sandbox ("pause") image
//! and a workload image into its `k8s.io` namespace with `ctr images import` (both built from
//! Debian packages by `scripts/containers/cri-images.sh`; no registry), and then, over CRI gRPC:
//!
//! 1. an unknown container id answers NOT_FOUND, which Ward's client reports as not found;
//! 2. `RunPodSandbox` (host network, so no CNI; cgroup parent `/kubepods/besteffort/pod<uid>`
//!    like a kubelet with the cgroupfs driver), `CreateContainer` + `StartContainer` of a
//!    sleeping busybox;
//! 3. Ward's `cri_inspect` on that container id gives its name, image, image id, labels,
//!    creation time, and the pod's name, namespace and labels;
//! 4. the agent's own path: the container's host pid (from the runtime's verbose status) →
//!    cgroup id → `CgroupResolver` → the same container id, runtime `Cri` →
//!    `MetadataService` (CRI socket only) → the same metadata.
//!
//! The pod is stopped and removed, containerd killed, and leftover processes (by the pod's
//! cgroups and by command lines naming the private directory), mounts under the private
//! directory and the pod's cgroup directories removed, also when an assertion fails.
//! Skipped (a `SKIP` line on stderr) only when not root, when containerd, ctr or runc is not
//! installed, or with `WARD_SKIP_CONTAINER_TESTS=1`; any other problem fails the test.
#![cfg(feature = "cri")]

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ward_enrich::cri::{
    cri_call, cri_inspect, ContainerMetadata, ContainerStatusRequest, ImageSpec, PodSandboxMetadata,
};
use ward_enrich::runtime::{MetadataConfig, MetadataService};
use ward_enrich::{CgroupResolver, ContainerRef, Runtime};

const RUNTIME: &str = "/runtime.v1.RuntimeService/";
const IMAGES: &str = "/runtime.v1.ImageService/";
/// `runtime.v1.NamespaceMode`: NODE = the host's namespace.
const NODE: i32 = 2;
/// POD = shared by the pod's containers.
const POD: i32 = 0;

// --- the CRI messages the test sends (runtime.v1 api.proto, only the fields used) ------------

#[derive(Clone, PartialEq, prost::Message)]
struct NamespaceOption {
    #[prost(int32, tag = "1")]
    network: i32,
    #[prost(int32, tag = "2")]
    pid: i32,
    #[prost(int32, tag = "3")]
    ipc: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct LinuxSandboxSecurityContext {
    #[prost(message, optional, tag = "1")]
    namespace_options: Option<NamespaceOption>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct LinuxPodSandboxConfig {
    #[prost(string, tag = "1")]
    cgroup_parent: String,
    #[prost(message, optional, tag = "2")]
    security_context: Option<LinuxSandboxSecurityContext>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PodSandboxConfig {
    #[prost(message, optional, tag = "1")]
    metadata: Option<PodSandboxMetadata>,
    #[prost(string, tag = "2")]
    hostname: String,
    #[prost(map = "string, string", tag = "6")]
    labels: HashMap<String, String>,
    #[prost(map = "string, string", tag = "7")]
    annotations: HashMap<String, String>,
    #[prost(message, optional, tag = "8")]
    linux: Option<LinuxPodSandboxConfig>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RunPodSandboxRequest {
    #[prost(message, optional, tag = "1")]
    config: Option<PodSandboxConfig>,
}

/// RunPodSandboxResponse, StopPodSandboxRequest, RemovePodSandboxRequest.
#[derive(Clone, PartialEq, prost::Message)]
struct PodSandboxId {
    #[prost(string, tag = "1")]
    pod_sandbox_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct LinuxContainerSecurityContext {
    #[prost(message, optional, tag = "3")]
    namespace_options: Option<NamespaceOption>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct LinuxContainerConfig {
    #[prost(message, optional, tag = "2")]
    security_context: Option<LinuxContainerSecurityContext>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ContainerConfig {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ContainerMetadata>,
    #[prost(message, optional, tag = "2")]
    image: Option<ImageSpec>,
    #[prost(string, repeated, tag = "3")]
    command: Vec<String>,
    #[prost(string, repeated, tag = "4")]
    args: Vec<String>,
    #[prost(map = "string, string", tag = "9")]
    labels: HashMap<String, String>,
    #[prost(message, optional, tag = "15")]
    linux: Option<LinuxContainerConfig>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct CreateContainerRequest {
    #[prost(string, tag = "1")]
    pod_sandbox_id: String,
    #[prost(message, optional, tag = "2")]
    config: Option<ContainerConfig>,
    #[prost(message, optional, tag = "3")]
    sandbox_config: Option<PodSandboxConfig>,
}

/// CreateContainerResponse, StartContainerRequest.
#[derive(Clone, PartialEq, prost::Message)]
struct ContainerId {
    #[prost(string, tag = "1")]
    container_id: String,
}

/// The `info` map of a verbose ContainerStatusResponse (`info["info"]` is JSON with `pid`).
#[derive(Clone, PartialEq, prost::Message)]
struct VerboseContainerStatus {
    #[prost(map = "string, string", tag = "2")]
    info: HashMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ImageStatusRequest {
    #[prost(message, optional, tag = "1")]
    image: Option<ImageSpec>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Image {
    #[prost(string, tag = "1")]
    id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ImageStatusResponse {
    #[prost(message, optional, tag = "1")]
    image: Option<Image>,
}

/// Every empty response.
#[derive(Clone, PartialEq, prost::Message)]
struct Empty {}

// --- helpers ---------------------------------------------------------------------------------

fn skip(reason: &str) {
    eprintln!("SKIP cri_live: {reason}");
}

fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `KEY=VALUE` lines printed by `scripts/containers/cri-images.sh`.
fn cri_images() -> HashMap<String, String> {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/containers/cri-images.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed ({}); its output is above",
        script.display(),
        out.status
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The private containerd and the pod it runs; `Drop` cleans up, also after a failed assertion.
struct Containerd {
    child: Child,
    sock: PathBuf,
    log: PathBuf,
    pod_uid: String,
    /// The pod's cgroup parent, relative: `kubepods/besteffort/pod<uid>`.
    pod_cgroup: String,
    /// Of `kubepods` and `kubepods/besteffort` (relative to each hierarchy), those that did not
    /// exist before the test: removed at the end if empty.
    created_parents: Vec<String>,
    /// Whether `/run/containerd` is ours: the shims put their sockets in `/run/containerd/s`
    /// whatever containerd's state directory; both are removed at the end if empty.
    created_run_dir: bool,
    sandbox: Option<String>,
    /// The pod's shim socket, `/run/containerd/s/<sha256 of "<address>/k8s.io/<sandbox>">`
    /// (containerd 1.6 `shim.SocketAddress`): left behind when a shim is killed.
    shim_socket: Option<PathBuf>,
    dir: tempfile::TempDir,
}

impl Containerd {
    fn start(sandbox_image: &str) -> Containerd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let sock = d.join("containerd.sock");
        let cfg = d.join("config.toml");
        let log = d.join("containerd.log");
        // containerd 1.6 (Debian 12), config schema version 2. Every path is private; the CNI
        // directories are empty (host-network pods need no CNI); restrict_oom_score_adj because
        // root lacks CAP_SYS_RESOURCE on these VMs (a sandbox's -998 could not be set).
        fs::write(
            &cfg,
            format!(
                r#"version = 2
root = "{d}/root"
state = "{d}/state"
[grpc]
  address = "{sock}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  disable_apparmor = true
  restrict_oom_score_adj = true
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{d}/cni/bin"
    conf_dir = "{d}/cni/conf"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{d}/runc"
"#,
                d = d.display(),
                sock = sock.display(),
            ),
        )
        .unwrap();
        let created_run_dir = !Path::new("/run/containerd").exists();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting containerd");
        let pod_uid = format!(
            "ward-cri-live-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        let parents = ["kubepods", "kubepods/besteffort"];
        let created_parents = parents
            .iter()
            .filter(|p| !hierarchies().iter().any(|h| h.join(p).exists()))
            .map(|p| p.to_string())
            .collect();
        Containerd {
            child,
            sock,
            log,
            pod_cgroup: format!("kubepods/besteffort/pod{pod_uid}"),
            pod_uid,
            created_parents,
            created_run_dir,
            sandbox: None,
            shim_socket: None,
            dir,
        }
    }

    fn set_sandbox(&mut self, id: &str) {
        use sha2::Digest;
        let key = format!("{}/k8s.io/{id}", self.sock.display());
        let hash: String = sha2::Sha256::digest(key.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.shim_socket = Some(Path::new("/run/containerd/s").join(hash));
        self.sandbox = Some(id.to_string());
    }

    /// `ctr images import` into the CRI's `k8s.io` namespace. The CRI plugin learns about
    /// imported images from containerd's events: wait until it knows each of `names`, or
    /// RunPodSandbox would try to pull the pause image.
    fn import_images(&self, archive: &str, names: &[&String]) {
        let out = Command::new("ctr")
            .arg("--address")
            .arg(&self.sock)
            .args(["--namespace", "k8s.io", "images", "import", archive])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ctr images import {archive}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        for image in names {
            loop {
                let st: ImageStatusResponse = self
                    .call(
                        &format!("{IMAGES}ImageStatus"),
                        &ImageStatusRequest {
                            image: Some(ImageSpec {
                                image: image.to_string(),
                                ..Default::default()
                            }),
                        },
                    )
                    .unwrap();
                if st.image.is_some_and(|i| !i.id.is_empty()) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the CRI plugin does not list {image} after `ctr images import`"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    fn call<Req: prost::Message, Resp: prost::Message + Default>(
        &self,
        method: &str,
        req: &Req,
    ) -> Result<Resp, String> {
        cri_call(&self.sock, method, req, Duration::from_secs(30))
            .map_err(|e| format!("{method}: {e} (containerd log: {})", self.log_tail()))
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("level=error") || l.contains("level=warn"))
            .collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }

    /// Pids in the pod's cgroups, in every hierarchy.
    fn pod_pids(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        for h in hierarchies() {
            for dir in subtree(&h.join(&self.pod_cgroup)) {
                let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                pids.extend(procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
            }
        }
        pids.sort_unstable();
        pids.dedup();
        pids
    }
}

/// The mounted cgroup hierarchies: the v1 controllers and the v2 tree (`unified` on hybrid
/// hosts), or `/sys/fs/cgroup` itself on a pure v2 host.
fn hierarchies() -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut out = vec![root.to_path_buf()];
    if let Ok(rd) = fs::read_dir(root) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) && e.path().join("cgroup.procs").exists() {
                out.push(e.path());
            }
        }
    }
    out
}

/// `dir` and every directory below it, deepest first.
fn subtree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if !dir.is_dir() {
        return out;
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
        }
        out.push(d);
    }
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out
}

fn kill(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "cri_live: containerd's last errors/warnings:\n{}",
                self.log_tail()
            );
        }
        // 1. The runtime's own teardown: stops the containers, removes them and their mounts.
        if let Some(id) = self.sandbox.take() {
            let req = PodSandboxId { pod_sandbox_id: id };
            for method in ["StopPodSandbox", "RemovePodSandbox"] {
                if let Err(e) = self.call::<_, Empty>(&format!("{RUNTIME}{method}"), &req) {
                    eprintln!("cri_live cleanup: {e}");
                }
            }
        }
        // 2. containerd.
        let _ = self.child.kill();
        let _ = self.child.wait();
        // 3. Whatever outlived the teardown: shims (their command line names our socket) and
        //    processes still in the pod's cgroups.
        let dir = self.dir.path().to_string_lossy().into_owned();
        let mut leftovers = self.pod_pids();
        if let Ok(rd) = fs::read_dir("/proc") {
            for e in rd.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                    continue;
                };
                let cmdline = fs::read(e.path().join("cmdline")).unwrap_or_default();
                if pid != std::process::id() && String::from_utf8_lossy(&cmdline).contains(&dir) {
                    leftovers.push(pid);
                }
            }
        }
        if !leftovers.is_empty() {
            eprintln!("cri_live cleanup: killing leftover pids {leftovers:?}");
            for pid in &leftovers {
                kill(*pid);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while !self.pod_pids().is_empty() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // 4. Mounts under the private directory (rootfs overlays, shm), deepest first.
        let mut mounts: Vec<String> = fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&dir))
            .map(str::to_string)
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            eprintln!("cri_live cleanup: unmounting {m}");
            let _ = Command::new("umount").args(["-l", &m]).status();
        }
        // 5. The pod's cgroups (a kubelet's job), and the parents this test created, if empty.
        for h in hierarchies() {
            for d in subtree(&h.join(&self.pod_cgroup)) {
                let _ = fs::remove_dir(d);
            }
            for p in self.created_parents.iter().rev() {
                let _ = fs::remove_dir(h.join(p));
            }
        }
        if let Some(sock) = &self.shim_socket {
            let _ = fs::remove_file(sock);
        }
        if self.created_run_dir {
            let _ = fs::remove_dir("/run/containerd/s");
            let _ = fs::remove_dir("/run/containerd");
        }
        // 6. The private directory itself goes with `self.dir`.
    }
}

#[test]
fn containerd_pod_lookup() {
    let started = Instant::now();
    if std::env::var("WARD_SKIP_CONTAINER_TESTS").is_ok_and(|v| v == "1") {
        return skip("WARD_SKIP_CONTAINER_TESTS=1");
    }
    // /proc/self is owned by the effective uid.
    let root = std::os::unix::fs::MetadataExt::uid(&fs::metadata("/proc/self").unwrap()) == 0;
    if !root {
        return skip("needs root (runs containerd and a pod)");
    }
    if let Some(p) = ["containerd", "ctr", "runc"]
        .into_iter()
        .find(|p| !installed(p))
    {
        return skip(&format!(
            "{p} is not installed (Debian packages containerd, runc)"
        ));
    }

    let images = cri_images();
    let pause = &images["WARD_CRI_PAUSE_IMAGE"];
    let workload = &images["WARD_CRI_WORKLOAD_IMAGE"];
    let workload_id = &images["WARD_CRI_WORKLOAD_IMAGE_ID"];
    let archive = &images["WARD_CRI_ARCHIVE"];

    let mut ctd = Containerd::start(pause);
    let sock = ctd.sock.clone();

    // --- 1. transport + NOT_FOUND; also waits for the CRI plugin, which starts after the socket.
    let deadline = Instant::now() + Duration::from_secs(20);
    let unknown = loop {
        let r = cri_inspect(&sock, &"e".repeat(64), Duration::from_secs(2));
        match &r {
            Err(e) if e.is_not_found() => break r,
            _ if Instant::now() >= deadline => break r,
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let e = unknown.expect_err("an unknown container cannot be found");
    assert!(e.is_not_found(), "{e} ({})", ctd.log_tail());
    eprintln!(
        "cri_live: containerd answering after {:?}",
        started.elapsed()
    );

    // --- 2. images (no registry: ctr import into the CRI's namespace), then the pod.
    ctd.import_images(archive, &[pause, workload]);
    // A resolver made before the pod exists, as in an agent that was already running: it
    // learns the container's cgroup from /proc/PID/cgroup.
    let cgroup2 = ward_sensor::cgroup2_mount();
    let mut early_resolver = CgroupResolver::new(cgroup2.clone());

    let pod_labels = map(&[("app", "ward-live"), ("tier", "test")]);
    let pod_config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: "ward-live-pod".into(),
            uid: ctd.pod_uid.clone(),
            namespace: "ward-ns".into(),
            attempt: 0,
        }),
        // No hostname: a host-network pod has the host's UTS namespace.
        hostname: String::new(),
        labels: pod_labels.clone(),
        annotations: map(&[("ward.test/annotation", "yes")]),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: format!("/{}", ctd.pod_cgroup),
            security_context: Some(LinuxSandboxSecurityContext {
                // Host network: no CNI needed. Own pid and ipc namespaces, as a default pod.
                namespace_options: Some(NamespaceOption {
                    network: NODE,
                    pid: POD,
                    ipc: POD,
                }),
            }),
        }),
    };
    let sandbox: PodSandboxId = ctd
        .call(
            &format!("{RUNTIME}RunPodSandbox"),
            &RunPodSandboxRequest {
                config: Some(pod_config.clone()),
            },
        )
        .unwrap();
    assert_eq!(sandbox.pod_sandbox_id.len(), 64, "{sandbox:?}");
    ctd.set_sandbox(&sandbox.pod_sandbox_id);

    let container_labels = map(&[("app", "ward-live"), ("role", "workload")]);
    let created: ContainerId = ctd
        .call(
            &format!("{RUNTIME}CreateContainer"),
            &CreateContainerRequest {
                pod_sandbox_id: sandbox.pod_sandbox_id.clone(),
                config: Some(ContainerConfig {
                    metadata: Some(ContainerMetadata {
                        name: "workload".into(),
                        attempt: 0,
                    }),
                    image: Some(ImageSpec {
                        image: workload.clone(),
                        ..Default::default()
                    }),
                    command: vec!["/bin/sleep".into()],
                    args: vec!["600".into()],
                    labels: container_labels.clone(),
                    linux: Some(LinuxContainerConfig {
                        security_context: Some(LinuxContainerSecurityContext {
                            namespace_options: Some(NamespaceOption {
                                network: NODE,
                                pid: POD,
                                ipc: POD,
                            }),
                        }),
                    }),
                }),
                sandbox_config: Some(pod_config),
            },
        )
        .unwrap();
    let id = created.container_id.clone();
    assert_eq!(id.len(), 64, "{created:?}");
    let _: Empty = ctd
        .call(
            &format!("{RUNTIME}StartContainer"),
            &ContainerId {
                container_id: id.clone(),
            },
        )
        .unwrap();
    eprintln!(
        "cri_live: pod and container running after {:?}",
        started.elapsed()
    );

    // --- 3. Ward's CRI lookup.
    let meta = cri_inspect(&sock, &id, Duration::from_secs(5)).unwrap();
    eprintln!("cri_live: cri_inspect({}) = {meta:?}", &id[..12]);
    assert_eq!(meta.name, "workload");
    assert_eq!(&meta.image, workload);
    // containerd 1.6 reports the image id (config digest), which is podman's image id; newer
    // versions may report a repo digest.
    assert!(
        meta.image_id == format!("sha256:{workload_id}") || meta.image_id.contains("@sha256:"),
        "image id {:?}, podman's {workload_id}",
        meta.image_id
    );
    let want_labels: std::collections::BTreeMap<_, _> = container_labels.into_iter().collect();
    assert_eq!(meta.labels, want_labels);
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let created_ns = meta.created.expect("creation time");
    assert!(
        now_ns.saturating_sub(created_ns) < 120_000_000_000 && created_ns <= now_ns + 1_000_000_000,
        "created {created_ns}, now {now_ns}"
    );
    let pod = meta.pod.clone().expect("pod metadata");
    assert_eq!(pod.name, "ward-live-pod");
    assert_eq!(pod.namespace, "ward-ns");
    let want_pod_labels: std::collections::BTreeMap<_, _> = pod_labels.into_iter().collect();
    assert_eq!(pod.labels, want_pod_labels);
    assert_eq!(meta.note, None);

    // --- 4. The agent's path: host pid → cgroup id → container id → metadata.
    let verbose: VerboseContainerStatus = ctd
        .call(
            &format!("{RUNTIME}ContainerStatus"),
            &ContainerStatusRequest {
                container_id: id.clone(),
                verbose: true,
            },
        )
        .unwrap();
    let info: serde_json::Value =
        serde_json::from_str(verbose.info.get("info").expect("verbose info")).unwrap();
    let pid = info["pid"].as_u64().expect("pid in the verbose info") as u32;
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "sleep", "pid {pid}");
    let proc_cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    eprintln!("cri_live: container pid {pid}, /proc/{pid}/cgroup:\n{proc_cgroup}");
    assert!(
        proc_cgroup.contains(&format!("/{}/{id}", ctd.pod_cgroup)),
        "the container's cgroup is not under the pod's cgroup parent"
    );
    assert!(ctd.pod_pids().contains(&pid));
    // What the sensor stamps on the process's events (0 on a host without cgroup v2).
    let cgroup_id = cgroup2
        .as_deref()
        .and_then(|root| ward_sensor::cgroup_id_of(pid, root))
        .unwrap_or(0);
    let want = ContainerRef {
        id: id.clone(),
        runtime: Runtime::Cri,
    };
    assert_eq!(
        early_resolver.resolve(cgroup_id, pid),
        Some(want.clone()),
        "known by /proc/{pid}/cgroup"
    );
    assert_eq!(early_resolver.stats().proc_reads, 1);
    // Cached now; and a resolver started after the container finds it by walking the tree.
    assert_eq!(early_resolver.resolve(cgroup_id, pid), Some(want.clone()));
    if cgroup_id != 0 {
        assert_eq!(early_resolver.stats().hits, 1);
    }
    let mut fresh = CgroupResolver::new(cgroup2);
    assert_eq!(
        fresh.resolve(cgroup_id, pid),
        Some(want.clone()),
        "known by the walk"
    );
    if cgroup_id != 0 {
        assert_eq!(fresh.stats().proc_reads, 0);
    }
    // The metadata worker the enricher uses, with only the private CRI socket configured.
    let mut service = MetadataService::start(MetadataConfig {
        docker_sockets: vec![],
        cri_sockets: vec![sock.clone()],
        ..MetadataConfig::default()
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let served = loop {
        service.drain();
        if let Some(m) = service.get_or_request(&want) {
            break m;
        }
        assert!(Instant::now() < deadline, "no metadata from the service");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(*served, meta);
    assert_eq!(service.stats().found, 1);

    // --- teardown through the runtime; Drop only mops up what that leaves.
    let sandbox_id = ctd.sandbox.take().unwrap();
    let req = PodSandboxId {
        pod_sandbox_id: sandbox_id,
    };
    let _: Empty = ctd.call(&format!("{RUNTIME}StopPodSandbox"), &req).unwrap();
    let _: Empty = ctd
        .call(&format!("{RUNTIME}RemovePodSandbox"), &req)
        .unwrap();
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists()
            || fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() != "sleep"),
        "the workload survived StopPodSandbox"
    );
    let e = cri_inspect(&sock, &id, Duration::from_secs(5)).expect_err("removed with its pod");
    assert!(e.is_not_found(), "{e}");
    drop(ctd);
    eprintln!("cri_live: done in {:?}", started.elapsed());
}
