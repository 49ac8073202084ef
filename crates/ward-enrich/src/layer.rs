//! Overlay layer of a file opened from user space (script files; the executed binary's layer
//! comes from the kernel, see `ward_sensor`).
//!
//! The file's own mount (by `statx` mount id) is looked up in the process's `mountinfo`; for an
//! overlay mount its `upperdir` and `lowerdir` options are host paths. The file's path
//! relative to the mount point is then looked up in them: present in the upper directory
//! and in a lower one → [`Layer::Modified`] (copied up), only in the upper one →
//! [`Layer::Added`], only in a lower one → [`Layer::Image`].
//!
//! Paths are compared lexically: a script reached through a symlink whose target lies in
//! another directory may be looked up under the wrong name, which yields `Unknown` (reported
//! like `Added`: not proven to come from the image), never `Image` for a file that is not in
//! a lower layer.

use std::fs::File;
use std::os::unix::fs::FileTypeExt;
use std::path::{Component, Path, PathBuf};

use ward_event::Layer;
use ward_sensor::exec_files::unescape_mountinfo as unescape;

const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;

/// One overlay mount's directories, from a `mountinfo` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayMount {
    /// Where it is mounted, as the process sees it.
    pub mount_point: String,
    pub upper: Option<PathBuf>,
    pub lowers: Vec<PathBuf>,
}

/// The layer of `file`, which the process sees at `path` (absolute, in its own root), using
/// `mountinfo` (the process's `/proc/PID/mountinfo`).
pub fn layer_of(file: &File, path: &str, mountinfo: &Path) -> Layer {
    // `f_type`'s width differs between architectures.
    #[allow(clippy::unnecessary_cast)]
    match rustix::fs::fstatfs(file) {
        Ok(st) if st.f_type as i64 == OVERLAYFS_SUPER_MAGIC => {}
        Ok(_) => return Layer::NotOverlay,
        Err(_) => return Layer::Unknown,
    }
    let Ok(stx) = rustix::fs::statx(
        file,
        "",
        rustix::fs::AtFlags::EMPTY_PATH,
        rustix::fs::StatxFlags::MNT_ID,
    ) else {
        return Layer::Unknown;
    };
    let Ok(text) = std::fs::read_to_string(mountinfo) else {
        return Layer::Unknown;
    };
    let Some(m) = overlay_mount(&text, stx.stx_mnt_id) else {
        return Layer::Unknown;
    };
    let Some(rel) = relative_to(path, &m.mount_point) else {
        return Layer::Unknown;
    };
    classify(&m, &rel)
}

/// The layer of `rel` (relative to the mount point) in the overlay `m`.
pub fn classify(m: &OverlayMount, rel: &Path) -> Layer {
    let present = |dir: &Path| {
        std::fs::symlink_metadata(dir.join(rel)).is_ok_and(|md| {
            // A whiteout (0/0 character device) hides the lower file.
            !(md.file_type().is_char_device() && std::os::unix::fs::MetadataExt::rdev(&md) == 0)
        })
    };
    let in_lower = m.lowers.iter().any(|l| present(l));
    match (m.upper.as_deref().is_some_and(present), in_lower) {
        (true, true) => Layer::Modified,
        (true, false) => Layer::Added,
        (false, true) => Layer::Image,
        (false, false) => Layer::Unknown,
    }
}

/// The overlay mount with id `mnt_id` in a `mountinfo` text.
pub fn overlay_mount(mountinfo: &str, mnt_id: u64) -> Option<OverlayMount> {
    for line in mountinfo.lines() {
        let mut f = line.split(' ');
        if f.next().and_then(|id| id.parse::<u64>().ok()) != Some(mnt_id) {
            continue;
        }
        let mount_point = unescape(f.nth(3)?);
        // Optional fields end at " - ", then fstype, source, super options.
        let rest = line.split_once(" - ")?.1;
        let mut r = rest.split(' ');
        if r.next()? != "overlay" {
            return None;
        }
        let opts = r.nth(1)?;
        let mut m = OverlayMount {
            mount_point,
            upper: None,
            lowers: Vec::new(),
        };
        for o in split_unescaped(opts, ',') {
            if let Some(v) = o.strip_prefix("upperdir=") {
                m.upper = Some(PathBuf::from(unescape(v)));
            } else if let Some(v) = o.strip_prefix("lowerdir=") {
                m.lowers.extend(
                    split_unescaped(v, ':')
                        .iter()
                        .map(|l| PathBuf::from(unescape(l))),
                );
            } else if let Some(v) = o.strip_prefix("lowerdir+=") {
                m.lowers.push(PathBuf::from(unescape(v)));
            }
        }
        return Some(m);
    }
    None
}

/// `path` relative to `mount_point`, normalised lexically; `None` when outside it.
fn relative_to(path: &str, mount_point: &str) -> Option<PathBuf> {
    let mut norm: Vec<&std::ffi::OsStr> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(s) => norm.push(s),
            Component::ParentDir => {
                norm.pop();
            }
            _ => {}
        }
    }
    let abs: PathBuf = std::iter::once(std::ffi::OsStr::new("/"))
        .chain(norm)
        .collect();
    let rel = abs.strip_prefix(mount_point).ok()?;
    (!rel.as_os_str().is_empty()).then(|| rel.to_path_buf())
}

/// Splits at `sep` not preceded by a backslash (overlay escapes `:` and `,` in paths so).
fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    if n != sep {
                        out.last_mut().unwrap().push('\\');
                    }
                    out.last_mut().unwrap().push(n);
                }
            }
            c if c == sep => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out
}

/// Where the overlay super block `dev` (user-space `st_dev` of a file on it, e.g. a
/// container's executed binary) is mounted at its root in *our* mount namespace, with its
/// layer directories: a container runtime mounts each container's root file system on the
/// host (podman and docker under their storage directory, `.../merged`), and that mount
/// outlives the container's processes until the runtime cleans the container up. `None` when
/// no such mount is there.
///
/// The directories are read with the mount point, in one read of the mount table: a file
/// opened through the mount is then classified ([`classify_path`]) even when the runtime
/// unmounts it right after (looking the mount up again by the file's mount id found nothing
/// then, and an image script was reported with layer `unknown`, as Added).
pub fn host_mount_of(dev: u64) -> Option<OverlayMount> {
    let want = format!("{}:{}", rustix::fs::major(dev), rustix::fs::minor(dev));
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut f = left.split(' ');
        let (id, _, devno, root) = (f.next()?, f.next()?, f.next()?, f.next()?);
        if devno != want || root != "/" || right.split(' ').next() != Some("overlay") {
            return None;
        }
        overlay_mount(line, id.parse().ok()?)
    })
}

/// The layer of the file at `path` (absolute, relative to the root of the overlay `m`).
pub fn classify_path(m: &OverlayMount, path: &str) -> Layer {
    match relative_to(path, "/") {
        Some(rel) => classify(m, &rel),
        None => Layer::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "81 51 0:40 / / rw,relatime - overlay overlay rw,lowerdir=/s/l/A:/s/l/B,upperdir=/s/c1/diff,workdir=/s/c1/work,uuid=on\n\
        90 81 0:41 / /data rw - ext4 /dev/vda rw\n\
        91 81 0:42 / /my\\040dir rw - overlay overlay rw,lowerdir+=/x/low,upperdir=/x/up\n";

    #[test]
    fn parses_overlay_lines() {
        let m = overlay_mount(INFO, 81).unwrap();
        assert_eq!(m.mount_point, "/");
        assert_eq!(m.upper.as_deref(), Some(Path::new("/s/c1/diff")));
        assert_eq!(
            m.lowers,
            vec![PathBuf::from("/s/l/A"), PathBuf::from("/s/l/B")]
        );
        assert_eq!(overlay_mount(INFO, 90), None, "not an overlay");
        assert_eq!(overlay_mount(INFO, 7), None, "unknown id");
        let m = overlay_mount(INFO, 91).unwrap();
        assert_eq!(m.mount_point, "/my dir");
        assert_eq!(m.lowers, vec![PathBuf::from("/x/low")]);
    }

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative_to("/app/./x/../run.py", "/"),
            Some("app/run.py".into())
        );
        assert_eq!(relative_to("/my dir/a.py", "/my dir"), Some("a.py".into()));
        assert_eq!(relative_to("/other/a.py", "/my dir"), None);
    }

    /// The host mount of an overlay, found by the device of a file on it, keeps its
    /// directories: a file is still classified after the mount is gone (what a runtime's
    /// cleanup does to a container's root right after its last process exited).
    #[test]
    fn host_mount_is_found_and_classifies_after_the_unmount() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: mounting an overlay needs root (CI runs as root)");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        for sub in ["lo/usr/bin", "up", "work", "merged"] {
            std::fs::create_dir_all(d.path().join(sub)).unwrap();
        }
        std::fs::write(d.path().join("lo/usr/bin/tool"), "#!/bin/sh\n").unwrap();
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            d.path().join("lo").display(),
            d.path().join("up").display(),
            d.path().join("work").display()
        );
        let merged = d.path().join("merged");
        let ok = std::process::Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &opts])
            .arg(&merged)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount -t overlay");
        std::fs::write(merged.join("added"), "#!/bin/sh\n").unwrap();
        let dev = std::os::unix::fs::MetadataExt::dev(
            &std::fs::metadata(merged.join("usr/bin/tool")).unwrap(),
        );
        let m = host_mount_of(dev);
        let umount = std::process::Command::new("umount")
            .arg(&merged)
            .status()
            .unwrap();
        assert!(umount.success());
        let m = m.expect("the overlay's mount");
        assert_eq!(
            Path::new(&m.mount_point),
            std::fs::canonicalize(&merged).unwrap()
        );
        assert_eq!(host_mount_of(dev), None, "unmounted");
        assert_eq!(classify_path(&m, "/usr/bin/tool"), Layer::Image);
        assert_eq!(classify_path(&m, "/usr/bin/../bin/tool"), Layer::Image);
        assert_eq!(classify_path(&m, "/added"), Layer::Added);
        assert_eq!(classify_path(&m, "/nowhere"), Layer::Unknown);
    }

    #[test]
    fn classifies_by_presence_in_upper_and_lower() {
        let d = tempfile::tempdir().unwrap();
        let (up, lo) = (d.path().join("up"), d.path().join("lo"));
        std::fs::create_dir_all(up.join("app")).unwrap();
        std::fs::create_dir_all(lo.join("app")).unwrap();
        std::fs::write(lo.join("app/image.py"), "").unwrap();
        std::fs::write(lo.join("app/changed.py"), "").unwrap();
        std::fs::write(up.join("app/changed.py"), "").unwrap();
        std::fs::write(up.join("app/new.py"), "").unwrap();
        let m = OverlayMount {
            mount_point: "/".into(),
            upper: Some(up),
            lowers: vec![d.path().join("missing"), lo],
        };
        for (f, want) in [
            ("app/image.py", Layer::Image),
            ("app/changed.py", Layer::Modified),
            ("app/new.py", Layer::Added),
            ("app/none.py", Layer::Unknown),
        ] {
            assert_eq!(classify(&m, Path::new(f)), want, "{f}");
        }
    }

    /// A real overlay mount (needs root; skipped otherwise).
    #[test]
    fn real_overlay_mount() {
        if std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) != 0 {
            eprintln!("SKIP real_overlay_mount: needs root");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let p = |s: &str| d.path().join(s);
        for s in ["lo", "up", "work", "merged"] {
            std::fs::create_dir(p(s)).unwrap();
        }
        std::fs::write(p("lo/image.py"), "print(1)").unwrap();
        std::fs::write(p("lo/changed.py"), "print(2)").unwrap();
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            p("lo").display(),
            p("up").display(),
            p("work").display()
        );
        let st = std::process::Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &opts])
            .arg(p("merged"))
            .status()
            .unwrap();
        if !st.success() {
            eprintln!("SKIP real_overlay_mount: mount -t overlay failed");
            return;
        }
        struct Unmount(PathBuf);
        impl Drop for Unmount {
            fn drop(&mut self) {
                let _ = std::process::Command::new("umount").arg(&self.0).status();
            }
        }
        let _u = Unmount(p("merged"));
        std::fs::write(p("merged/changed.py"), "print(3)").unwrap();
        std::fs::write(p("merged/new.py"), "print(4)").unwrap();
        let info = Path::new("/proc/self/mountinfo");
        for (f, want) in [
            ("image.py", Layer::Image),
            ("changed.py", Layer::Modified),
            ("new.py", Layer::Added),
        ] {
            let path = p("merged").join(f);
            let file = File::open(&path).unwrap();
            assert_eq!(layer_of(&file, path.to_str().unwrap(), info), want, "{f}");
        }
        let plain = File::open(p("lo/image.py")).unwrap();
        assert_eq!(
            layer_of(&plain, p("lo/image.py").to_str().unwrap(), info),
            Layer::NotOverlay
        );
    }
}
