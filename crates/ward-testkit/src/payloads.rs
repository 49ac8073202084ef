//! Harmless executables that each give their own finding: copies of `/bin/true`, made
//! distinct by a trailing comment so each has its own hash, all listed in an intel feed, so
//! each exec is one *Added Malicious Binary* finding on the host (no container needed).

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// `n` distinct executables in `dir` (`payload-<i>`) and the feed holding their hashes.
/// `tag` keeps tests apart: agents of tests running at once see each other's execs, and
/// only a tag of their own keeps their hashes out of the other's feed.
pub fn distinct_binaries(dir: &Path, n: usize, tag: &str) -> (Vec<PathBuf>, PathBuf) {
    let base = std::fs::read("/bin/true").expect("reading /bin/true");
    let mut feed = String::new();
    let mut bins = Vec::new();
    for i in 0..n {
        let p = dir.join(format!("payload-{i}"));
        let mut bytes = base.clone();
        bytes.extend_from_slice(format!("\nward test payload {tag} {i}\n").as_bytes());
        std::fs::write(&p, &bytes).expect("writing a payload");
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod a payload");
        feed.push_str(&format!(
            "{};ward durability test payload {i}\n",
            hex::encode(Sha256::digest(&bytes))
        ));
        bins.push(p);
    }
    let feed_path = dir.join("feed.txt");
    std::fs::write(&feed_path, feed).expect("writing the feed");
    (bins, feed_path)
}
