//! Small host facts: are we root, is podman there, where is cgroup2, what is a cgroup's id.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// True when the effective uid is 0 (rootful podman and cgroup inspection need it).
pub fn root_available() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// True when a `podman` binary answers `podman --version`.
pub fn podman_available() -> bool {
    Command::new("podman")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Mount point of the cgroup v2 hierarchy: `/sys/fs/cgroup/unified` on the hybrid layout of
/// Ward's VMs, `/sys/fs/cgroup` on a pure v2 host. This is the hierarchy whose ids
/// `bpf_get_current_cgroup_id()` returns.
pub fn cgroup2_mount() -> io::Result<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")?;
    for line in mountinfo.lines() {
        // <id> <parent> <maj:min> <root> <mount point> <opts> [optional...] - <fstype> <src> <opts>
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        if right.split_whitespace().next() == Some("cgroup2") {
            if let Some(mount_point) = left.split_whitespace().nth(4) {
                return Ok(PathBuf::from(unescape_mountinfo(mount_point)));
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        "no cgroup2 mount in /proc/self/mountinfo",
    ))
}

fn unescape_mountinfo(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let octal = std::str::from_utf8(&bytes[i + 1..i + 4]).ok();
            if let Some(v) = octal.and_then(|o| u8::from_str_radix(o, 8).ok()) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The kernel's id of a cgroup v2 directory, as `name_to_handle_at(2)` reports it: the value
/// `bpf_get_current_cgroup_id()` returns for tasks in that cgroup (libbpf and bpftool compute
/// cgroup ids the same way). On 64-bit kernels it equals the directory's inode number.
pub fn cgroup_id_of_dir(dir: &Path) -> io::Result<u64> {
    #[repr(C)]
    struct Handle {
        handle_bytes: libc::c_uint,
        handle_type: libc::c_int,
        f_handle: [u8; 64],
    }
    let path = CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut handle = Handle {
        handle_bytes: 64,
        handle_type: 0,
        f_handle: [0; 64],
    };
    let mut mount_id: libc::c_int = 0;
    // SAFETY: path is NUL-terminated, handle has room for `handle_bytes` bytes, and mount_id is
    // a valid out pointer; the syscall writes only within those.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            libc::AT_FDCWD,
            path.as_ptr(),
            &mut handle as *mut Handle,
            &mut mount_id as *mut libc::c_int,
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if handle.handle_bytes != 8 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: file handle of {} bytes, expected 8 (not a cgroup2 directory?)",
                dir.display(),
                handle.handle_bytes
            ),
        ));
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&handle.f_handle[..8]);
    Ok(u64::from_ne_bytes(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo_octal() {
        assert_eq!(unescape_mountinfo(r"/a\040b"), "/a b");
        assert_eq!(
            unescape_mountinfo("/sys/fs/cgroup/unified"),
            "/sys/fs/cgroup/unified"
        );
        assert_eq!(unescape_mountinfo(r"/x\"), r"/x\");
    }
}
