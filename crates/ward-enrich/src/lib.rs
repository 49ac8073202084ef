//! Enrichment: turns what the kernel saw into what detectors need. This crate does IO.
//!
//! * [`enricher`]: the [`Enricher`] — sensor records in, trace-format events out, in order,
//!   with a short bounded wait for hashes and container metadata.
//! * [`cgroup`]: container ids from cgroup paths (docker, containerd/CRI, CRI-O, podman) and
//!   the cgroup id → path map.
//! * [`runtime`]: container metadata from the Docker Engine API on a unix socket (docker,
//!   podman), fetched on a worker thread; [`podman_store`] reads podman's on-disk container
//!   store when no socket answers.
//! * `cri` (cargo feature `cri`, off by default: it adds hyper/tokio/prost): containerd and
//!   CRI-O metadata through the CRI gRPC API (ContainerStatus, PodSandboxStatus).
//! * [`hash`]: binary SHA-256 through a handle taken at exec, on worker threads, cached by
//!   file identity, large files partially hashed.
//! * [`script`]: captures the script an interpreter runs — a file (read through the
//!   process's own root and cwd, so container paths resolve), a shebang script, or a `-c`
//!   literal — with its size, SHA-256 of the whole script and size-capped contents.
//! * [`stdin`]: who holds the write end of a shell's stdin pipe (interpreter relays).

pub mod cgroup;
#[cfg(feature = "cri")]
pub mod cri;
pub mod enricher;
pub mod hash;
pub mod layer;
pub mod podman_store;
pub mod runtime;
pub mod script;
pub mod stdin;

pub use cgroup::{container_from_path, CgroupResolver, ContainerRef, Runtime};
pub use enricher::{host_name, EnrichConfig, EnrichStats, Enricher};
pub use hash::{HashConfig, HashStats};
pub use runtime::{MetadataConfig, MetadataStats};
