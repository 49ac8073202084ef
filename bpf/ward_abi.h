/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ward_abi.h - THE single definition of the records the kernel programs write
 * into the "events" ring buffer and user space (crates/ward-sensor/src/abi.rs)
 * decodes.
 *
 * Rules (see bpf/README.md):
 *  - every record starts with struct ward_event_header;
 *  - every struct is fixed-size, naturally aligned, with explicit padding
 *    (no implicit holes), sizes a multiple of 8;
 *  - one exception: an exec record is sent packed. Its first
 *    WARD_EXEC_HEAD_SIZE bytes are struct ward_exec_event's fixed fields; then
 *    come only the used bytes of filename, exe_path, cwd, argv and env, in
 *    that order (filename_len, exe_path_len, cwd_len, argv_len, env_len), and
 *    hdr.size is the total;
 *  - any layout change bumps WARD_ABI_VERSION and is mirrored in abi.rs,
 *    whose compile-time assertions check every size and offset below.
 *
 * Needs __u8/__u16/__u32/__u64/__s32/__s64 (from vmlinux.h or linux/types.h).
 */
#ifndef WARD_ABI_H
#define WARD_ABI_H

#define WARD_ABI_VERSION 3

/* ward_event_header.kind */
#define WARD_EV_EXEC    1
#define WARD_EV_FORK    2
#define WARD_EV_EXIT    3
#define WARD_EV_FD      4 /* fd 0-2 replaced by dup/dup2/dup3/fcntl */
#define WARD_EV_CONNECT 5
#define WARD_EV_ACCEPT  6

/* Buffer sizes (bytes). Path buffers hold WARD_PATH_MAX bytes of components
 * plus WARD_NAME_MAX slack so that the kernel can always read one full name. */
#define WARD_COMM_LEN     16
#define WARD_FILENAME_MAX 512
#define WARD_PATH_MAX     1024
#define WARD_NAME_MAX     256
#define WARD_PATH_BUF     (WARD_PATH_MAX + WARD_NAME_MAX)
#define WARD_ARGV_MAX     4096
/* envp (mm->env_start..env_end), "NAME=value" NUL separated. 2 KiB holds a
 * typical container environment (PATH, HOSTNAME, HOME, TERM and a dozen
 * application variables) whole; a Kubernetes pod with many service links is
 * cut (WARD_EXEC_ENV_TRUNCATED). Half the argv cap: envp is read on every exec
 * but only the used bytes go to the ring. */
#define WARD_ENV_MAX      2048
#define WARD_PATH_DEPTH   48

/* ward_exec_event.flags */
#define WARD_EXEC_ARGV_TRUNCATED     (1u << 0)
#define WARD_EXEC_FILENAME_TRUNCATED (1u << 1)
#define WARD_EXEC_EXE_PATH_TRUNCATED (1u << 2) /* too deep or too long */
#define WARD_EXEC_CWD_TRUNCATED      (1u << 3)
#define WARD_EXEC_EXE_DELETED        (1u << 4) /* nlink == 0 or unhashed dentry */
#define WARD_EXEC_EXE_DETACHED       (1u << 5) /* walk ended on a mount outside the task root */
#define WARD_EXEC_CWD_DETACHED       (1u << 6)
#define WARD_EXEC_EXE_MEMFD          (1u << 7) /* file name starts with "memfd:" and nlink == 0 */
/* the process was stopped (SIGSTOP from the program: hold_memfd, hold_scripts)
 * so that user space can open /proc/PID/exe or the script before it runs; user
 * space sends SIGCONT */
#define WARD_EXEC_HELD               (1u << 8)
#define WARD_EXEC_ENV_TRUNCATED      (1u << 9) /* envp longer than WARD_ENV_MAX */
/* a "#!" script: the file executed (the interpreter) is not the one named
 * (bprm->interp was replaced by binfmt_script) */
#define WARD_EXEC_SHEBANG            (1u << 10)

/* ward_exec_event.ovl_layer */
#define WARD_OVL_NONE        0 /* exe is not on overlayfs */
#define WARD_OVL_LOWER       1 /* only in a lower layer: part of the image */
#define WARD_OVL_UPPER       2 /* only in the upper layer: added after start */
#define WARD_OVL_UPPER_LOWER 3 /* upper copy over a lower file: modified */

/* ward_fd_info.kind */
#define WARD_FD_NONE   0 /* closed / not open */
#define WARD_FD_REG    1
#define WARD_FD_PIPE   2 /* anonymous pipe (pipefs) */
#define WARD_FD_FIFO   3 /* named pipe */
#define WARD_FD_CHR    4 /* character device, tty included (see rdev) */
#define WARD_FD_UNIX   5 /* AF_UNIX socket */
#define WARD_FD_INET   6 /* AF_INET / AF_INET6 socket: local/remote valid */
#define WARD_FD_OTHER  7 /* directory, block device, anon inode, other sockets */

/* ward_fd_event.syscall */
#define WARD_SYS_DUP   1
#define WARD_SYS_DUP2  2
#define WARD_SYS_DUP3  3
#define WARD_SYS_FCNTL 4

struct ward_event_header {
	__u16 kind;
	__u16 abi_version;
	__u32 size; /* size of the whole record */
	__u64 ktime_boot_ns; /* bpf_ktime_get_boot_ns() */
	__u32 pid; /* kernel pid of the thread (TID) */
	__u32 tgid; /* process id */
}; /* 24 */

struct ward_sockaddr {
	__u16 family; /* AF_INET (2), AF_INET6 (10) or 0 */
	__u16 port; /* host byte order */
	__u32 _pad0;
	__u8 addr[16]; /* network order; IPv4 in addr[0..4] */
}; /* 24 */

struct ward_fd_info {
	__u8 kind; /* WARD_FD_* */
	__u8 sock_type; /* SOCK_STREAM 1, SOCK_DGRAM 2, ... (sockets only) */
	__u8 sock_state; /* TCP_ESTABLISHED 1, ... (inet only) */
	__u8 _pad0;
	__u32 rdev; /* kernel dev_t (major << 20 | minor) of char devices */
	__u64 ino; /* inode number (pipes link processes) */
	struct ward_sockaddr local;
	struct ward_sockaddr remote;
}; /* 64 */

struct ward_exec_event {
	struct ward_event_header hdr; /* 0 */
	__u32 ppid; /* 24: real parent tgid */
	__u32 uid; /* 28 */
	__u32 gid; /* 32 */
	__u32 flags; /* 36: WARD_EXEC_* */
	__u64 cgroup_id; /* 40: cgroup v2 id */
	__u32 pid_ns; /* 48: inum */
	__u32 mnt_ns; /* 52: inum */
	__u32 argc; /* 56 */
	__u16 argv_len; /* 60: bytes used in argv (NUL separated) */
	__u16 env_len; /* 62: bytes used in env (NUL separated) */
	__u16 filename_len; /* 64: bytes in filename, without the NUL */
	__u16 exe_path_len; /* 66: bytes used in exe_path */
	__u16 cwd_len; /* 68: bytes used in cwd */
	__u8 ovl_layer; /* 70: WARD_OVL_* */
	__u8 _pad0; /* 71 */
	__u32 exe_dev; /* 72: kernel dev_t of the exe's super block */
	__u32 exe_nlink; /* 76 */
	__u64 exe_ino; /* 80 */
	__u64 exe_size; /* 88 */
	__s64 exe_mtime_sec; /* 96 */
	__s64 exe_ctime_sec; /* 104 */
	__u32 exe_mtime_nsec; /* 112 */
	__u32 exe_ctime_nsec; /* 116 */
	__u64 exe_fs_magic; /* 120: super block magic */
	struct ward_fd_info fds[3]; /* 128 */
	char comm[WARD_COMM_LEN]; /* 320 */
	char filename[WARD_FILENAME_MAX]; /* 336: bprm->filename */
	/* 848: path components of the executed file, leaf first, each NUL
	 * terminated; user space reverses them. Relative to the task's root. */
	char exe_path[WARD_PATH_BUF];
	char cwd[WARD_PATH_BUF]; /* 2128: same encoding */
	char argv[WARD_ARGV_MAX]; /* 3408: NUL separated */
	char env[WARD_ENV_MAX]; /* 7504: NUL separated "NAME=value" */
}; /* 9552: the BPF side's scratch layout; see WARD_EXEC_HEAD_SIZE */

/* Bytes of struct ward_exec_event sent before the packed strings. */
#define WARD_EXEC_HEAD_SIZE 336

struct ward_fork_event {
	struct ward_event_header hdr; /* child pid / tgid */
	__u32 parent_pid; /* 24 */
	__u32 parent_tgid; /* 28 */
	__u64 cgroup_id; /* 32 */
	char comm[WARD_COMM_LEN]; /* 40 */
}; /* 56 */

struct ward_exit_event {
	struct ward_event_header hdr;
	__u32 exit_code; /* 24: wait(2) status: code << 8 | signal */
	__u32 ppid; /* 28 */
	char comm[WARD_COMM_LEN]; /* 32 */
}; /* 48 */

struct ward_fd_event {
	struct ward_event_header hdr;
	__u32 fd; /* 24: 0, 1 or 2 */
	__u32 syscall; /* 28: WARD_SYS_* */
	struct ward_fd_info info; /* 32: new state of fd */
}; /* 96 */

/* WARD_EV_CONNECT and WARD_EV_ACCEPT (inet stream sockets only) */
struct ward_conn_event {
	struct ward_event_header hdr;
	__u32 fd; /* 24: connected fd / accepted fd */
	__s32 ret; /* 28: 0 or -EINPROGRESS for connect; the fd for accept */
	struct ward_fd_info info; /* 32: kind WARD_FD_INET */
}; /* 96 */

/* Index of the per-CPU "drops" array: one counter per event kind (reserve
 * failures), index = kind. */
#define WARD_DROP_SLOTS 8
/* Slot 7 of "drops": holds whose SIGSTOP could not be sent (bpf_send_signal
 * failed); the record then goes out without WARD_EXEC_HELD. */
#define WARD_SLOT_HOLD_FAILED 7

/* The same numbers are asserted in crates/ward-sensor/src/abi.rs. */
#define WARD_ABI_ASSERT_OFF(t, f, o) _Static_assert(__builtin_offsetof(struct t, f) == (o), #t "." #f)
#define WARD_ABI_ASSERT_SIZE(t, s) _Static_assert(sizeof(struct t) == (s), "sizeof " #t)
WARD_ABI_ASSERT_SIZE(ward_event_header, 24);
WARD_ABI_ASSERT_SIZE(ward_sockaddr, 24);
WARD_ABI_ASSERT_SIZE(ward_fd_info, 64);
WARD_ABI_ASSERT_OFF(ward_fd_info, ino, 8);
WARD_ABI_ASSERT_OFF(ward_fd_info, local, 16);
WARD_ABI_ASSERT_OFF(ward_fd_info, remote, 40);
WARD_ABI_ASSERT_SIZE(ward_exec_event, 9552);
WARD_ABI_ASSERT_OFF(ward_exec_event, cgroup_id, 40);
WARD_ABI_ASSERT_OFF(ward_exec_event, filename_len, 64);
WARD_ABI_ASSERT_OFF(ward_exec_event, ovl_layer, 70);
WARD_ABI_ASSERT_OFF(ward_exec_event, exe_dev, 72);
WARD_ABI_ASSERT_OFF(ward_exec_event, exe_mtime_sec, 96);
WARD_ABI_ASSERT_OFF(ward_exec_event, exe_fs_magic, 120);
WARD_ABI_ASSERT_OFF(ward_exec_event, fds, 128);
WARD_ABI_ASSERT_OFF(ward_exec_event, comm, 320);
WARD_ABI_ASSERT_OFF(ward_exec_event, filename, WARD_EXEC_HEAD_SIZE);
WARD_ABI_ASSERT_OFF(ward_exec_event, exe_path, 848);
WARD_ABI_ASSERT_OFF(ward_exec_event, cwd, 2128);
WARD_ABI_ASSERT_OFF(ward_exec_event, argv_len, 60);
WARD_ABI_ASSERT_OFF(ward_exec_event, env_len, 62);
WARD_ABI_ASSERT_OFF(ward_exec_event, argv, 3408);
WARD_ABI_ASSERT_OFF(ward_exec_event, env, 7504);
WARD_ABI_ASSERT_SIZE(ward_fork_event, 56);
WARD_ABI_ASSERT_OFF(ward_fork_event, comm, 40);
WARD_ABI_ASSERT_SIZE(ward_exit_event, 48);
WARD_ABI_ASSERT_OFF(ward_exit_event, comm, 32);
WARD_ABI_ASSERT_SIZE(ward_fd_event, 96);
WARD_ABI_ASSERT_OFF(ward_fd_event, info, 32);
WARD_ABI_ASSERT_SIZE(ward_conn_event, 96);
WARD_ABI_ASSERT_OFF(ward_conn_event, info, 32);

#endif /* WARD_ABI_H */
