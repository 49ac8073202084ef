//! Rust mirror of `bpf/ward_abi.h`, the one definition of the kernel/user
//! record layout. Every size and offset below is asserted at compile time here
//! and (the same numbers) with `_Static_assert` in the C header.

#![allow(missing_docs)]

use std::mem::{offset_of, size_of};

pub const WARD_ABI_VERSION: u16 = 3;

pub const WARD_EV_EXEC: u16 = 1;
pub const WARD_EV_FORK: u16 = 2;
pub const WARD_EV_EXIT: u16 = 3;
pub const WARD_EV_FD: u16 = 4;
pub const WARD_EV_CONNECT: u16 = 5;
pub const WARD_EV_ACCEPT: u16 = 6;

pub const WARD_COMM_LEN: usize = 16;
pub const WARD_FILENAME_MAX: usize = 512;
pub const WARD_PATH_MAX: usize = 1024;
pub const WARD_NAME_MAX: usize = 256;
pub const WARD_PATH_BUF: usize = WARD_PATH_MAX + WARD_NAME_MAX;
pub const WARD_ARGV_MAX: usize = 4096;
/// envp bytes kept per exec (`bpf/ward_abi.h` says why 2 KiB).
pub const WARD_ENV_MAX: usize = 2048;
pub const WARD_PATH_DEPTH: usize = 48;
/// Bytes of a packed exec record before its strings (`size_of::<ward_exec_head>()`).
pub const WARD_EXEC_HEAD_SIZE: usize = 336;

pub const WARD_EXEC_ARGV_TRUNCATED: u32 = 1 << 0;
pub const WARD_EXEC_FILENAME_TRUNCATED: u32 = 1 << 1;
pub const WARD_EXEC_EXE_PATH_TRUNCATED: u32 = 1 << 2;
pub const WARD_EXEC_CWD_TRUNCATED: u32 = 1 << 3;
pub const WARD_EXEC_EXE_DELETED: u32 = 1 << 4;
pub const WARD_EXEC_EXE_DETACHED: u32 = 1 << 5;
pub const WARD_EXEC_CWD_DETACHED: u32 = 1 << 6;
pub const WARD_EXEC_EXE_MEMFD: u32 = 1 << 7;
/// The process was stopped at exec (`hold_memfd`); user space must send SIGCONT.
pub const WARD_EXEC_HELD: u32 = 1 << 8;
/// envp was longer than [`WARD_ENV_MAX`] bytes; the record has its first bytes.
pub const WARD_EXEC_ENV_TRUNCATED: u32 = 1 << 9;
/// A `#!` script: the file executed (the interpreter) is not the one named.
pub const WARD_EXEC_SHEBANG: u32 = 1 << 10;

pub const WARD_OVL_NONE: u8 = 0;
pub const WARD_OVL_LOWER: u8 = 1;
pub const WARD_OVL_UPPER: u8 = 2;
pub const WARD_OVL_UPPER_LOWER: u8 = 3;

pub const WARD_FD_NONE: u8 = 0;
pub const WARD_FD_REG: u8 = 1;
pub const WARD_FD_PIPE: u8 = 2;
pub const WARD_FD_FIFO: u8 = 3;
pub const WARD_FD_CHR: u8 = 4;
pub const WARD_FD_UNIX: u8 = 5;
pub const WARD_FD_INET: u8 = 6;
pub const WARD_FD_OTHER: u8 = 7;

pub const WARD_SYS_DUP: u32 = 1;
pub const WARD_SYS_DUP2: u32 = 2;
pub const WARD_SYS_DUP3: u32 = 3;
pub const WARD_SYS_FCNTL: u32 = 4;

pub const WARD_DROP_SLOTS: u32 = 8;
/// Slot of the drops array counting holds whose SIGSTOP could not be sent.
pub const WARD_SLOT_HOLD_FAILED: u32 = 7;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ward_event_header {
    pub kind: u16,
    pub abi_version: u16,
    pub size: u32,
    pub ktime_boot_ns: u64,
    pub pid: u32,
    pub tgid: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ward_sockaddr {
    pub family: u16,
    pub port: u16,
    pub _pad0: u32,
    pub addr: [u8; 16],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ward_fd_info {
    pub kind: u8,
    pub sock_type: u8,
    pub sock_state: u8,
    pub _pad0: u8,
    pub rdev: u32,
    pub ino: u64,
    pub local: ward_sockaddr,
    pub remote: ward_sockaddr,
}

/// The fixed-size start of `struct ward_exec_event` (everything before the string buffers): the
/// first [`WARD_EXEC_HEAD_SIZE`] bytes of a packed exec record, which go on with the used bytes
/// of filename, exe_path, cwd, argv and env, in that order.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ward_exec_head {
    pub hdr: ward_event_header,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub flags: u32,
    pub cgroup_id: u64,
    pub pid_ns: u32,
    pub mnt_ns: u32,
    pub argc: u32,
    pub argv_len: u16,
    pub env_len: u16,
    pub filename_len: u16,
    pub exe_path_len: u16,
    pub cwd_len: u16,
    pub ovl_layer: u8,
    pub _pad0: u8,
    pub exe_dev: u32,
    pub exe_nlink: u32,
    pub exe_ino: u64,
    pub exe_size: u64,
    pub exe_mtime_sec: i64,
    pub exe_ctime_sec: i64,
    pub exe_mtime_nsec: u32,
    pub exe_ctime_nsec: u32,
    pub exe_fs_magic: u64,
    pub fds: [ward_fd_info; 3],
    pub comm: [u8; WARD_COMM_LEN],
}

/// `struct ward_exec_event` of `bpf/ward_abi.h`: the fixed head, then the string buffers.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ward_exec_event {
    pub head: ward_exec_head,
    pub filename: [u8; WARD_FILENAME_MAX],
    pub exe_path: [u8; WARD_PATH_BUF],
    pub cwd: [u8; WARD_PATH_BUF],
    pub argv: [u8; WARD_ARGV_MAX],
    pub env: [u8; WARD_ENV_MAX],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ward_fork_event {
    pub hdr: ward_event_header,
    pub parent_pid: u32,
    pub parent_tgid: u32,
    pub cgroup_id: u64,
    pub comm: [u8; WARD_COMM_LEN],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ward_exit_event {
    pub hdr: ward_event_header,
    pub exit_code: u32,
    pub ppid: u32,
    pub comm: [u8; WARD_COMM_LEN],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ward_fd_event {
    pub hdr: ward_event_header,
    pub fd: u32,
    pub syscall: u32,
    pub info: ward_fd_info,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ward_conn_event {
    pub hdr: ward_event_header,
    pub fd: u32,
    pub ret: i32,
    pub info: ward_fd_info,
}

macro_rules! assert_layout {
    ($t:ty, size $s:expr $(, $f:ident @ $o:expr)* $(,)?) => {
        const _: () = assert!(size_of::<$t>() == $s);
        $(const _: () = assert!(offset_of!($t, $f) == $o);)*
    };
}

assert_layout!(ward_event_header, size 24, kind @ 0, abi_version @ 2, size @ 4, ktime_boot_ns @ 8, pid @ 16, tgid @ 20);
assert_layout!(ward_sockaddr, size 24, family @ 0, port @ 2, addr @ 8);
assert_layout!(ward_fd_info, size 64, kind @ 0, sock_type @ 1, sock_state @ 2, rdev @ 4, ino @ 8, local @ 16, remote @ 40);
assert_layout!(ward_exec_event, size 9552, head @ 0, filename @ 336, exe_path @ 848, cwd @ 2128,
    argv @ 3408, env @ 7504);
// The C struct's fixed fields, at the offsets `bpf/ward_abi.h` gives them.
assert_layout!(ward_exec_head, size 336,
    ppid @ 24, uid @ 28, gid @ 32, flags @ 36, cgroup_id @ 40, pid_ns @ 48, mnt_ns @ 52,
    argc @ 56, argv_len @ 60, env_len @ 62, filename_len @ 64, exe_path_len @ 66, cwd_len @ 68,
    ovl_layer @ 70, exe_dev @ 72, exe_nlink @ 76, exe_ino @ 80, exe_size @ 88,
    exe_mtime_sec @ 96, exe_ctime_sec @ 104, exe_mtime_nsec @ 112, exe_ctime_nsec @ 116,
    exe_fs_magic @ 120, fds @ 128, comm @ 320);
const _: () = assert!(size_of::<ward_exec_head>() == WARD_EXEC_HEAD_SIZE);
assert_layout!(ward_fork_event, size 56, parent_pid @ 24, parent_tgid @ 28, cgroup_id @ 32, comm @ 40);
assert_layout!(ward_exit_event, size 48, exit_code @ 24, ppid @ 28, comm @ 32);
assert_layout!(ward_fd_event, size 96, fd @ 24, syscall @ 28, info @ 32);
assert_layout!(ward_conn_event, size 96, fd @ 24, ret @ 28, info @ 32);

/// Plain old data: every bit pattern is a valid value.
///
/// # Safety
/// Implement only for `repr(C)` structs made of integers and arrays of them.
pub(crate) unsafe trait Pod: Copy {}
unsafe impl Pod for ward_event_header {}
unsafe impl Pod for ward_exec_event {}
unsafe impl Pod for ward_exec_head {}
unsafe impl Pod for ward_fork_event {}
unsafe impl Pod for ward_exit_event {}
unsafe impl Pod for ward_fd_event {}
unsafe impl Pod for ward_conn_event {}

/// Reads a `T` from the start of `bytes`, or `None` if too short.
pub(crate) fn read_pod<T: Pod>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < size_of::<T>() {
        return None;
    }
    // SAFETY: length checked; T is Pod (any bit pattern valid); read_unaligned
    // has no alignment requirement.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}
