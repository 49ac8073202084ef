// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ward.bpf.c - Ward's kernel programs (CO-RE, tracepoints only).
 *
 * tp_btf/sched_process_exec    -> struct ward_exec_event, packed (ward_abi.h)
 * tp_btf/sched_process_fork    -> struct ward_fork_event (new thread groups only)
 * tp_btf/sched_process_exit    -> struct ward_exit_event (last thread of a group)
 * tracepoint/syscalls/sys_exit_{dup,dup2,dup3,fcntl} -> struct ward_fd_event (fd 0-2)
 * tracepoint/syscalls/sys_exit_{connect,accept,accept4} -> struct ward_conn_event
 *
 * Record layouts live in ward_abi.h only.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "ward_abi.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define S_IFMT   00170000
#define S_IFSOCK 0140000
#define S_IFREG  0100000
#define S_IFCHR  0020000
#define S_IFIFO  0010000

#define AF_UNIX  1
#define AF_INET  2
#define AF_INET6 10
#define SOCK_STREAM 1

#define PIPEFS_MAGIC          0x50495045
#define OVERLAYFS_SUPER_MAGIC 0x794c7630

#define F_DUPFD         0
#define F_DUPFD_CLOEXEC 1030
#define EINPROGRESS     115

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20); /* overridden by the loader */
} events SEC(".maps");

/* A doorbell for the reader (one page; the loader sets the page size): an 8-byte token
 * with a forced wake-up for every record that should not wait (an urgent record, or
 * wakeup_bytes pending). While records keep coming the reader sleeps between passes so
 * that each pass handles a batch; it sleeps in poll() on this ring, not on `events`
 * (which polls readable while any record is pending), so an urgent record still ends
 * the sleep at once. A full doorbell (the reader has not looked yet) drops the token:
 * the reader is already due to wake. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096); /* overridden by the loader: the page size */
} wake SEC(".maps");

/* The exec record is built here (one slot per CPU: tracepoint programs run with
 * preemption disabled and do not nest), then only its used bytes go to the ring
 * buffer (ward_abi.h: packed exec records). A fixed 7.5 KB reservation per exec
 * spread every exec over three ring pages and filled an 8 MiB ring after ~1100
 * execs; packed, a typical exec takes a few hundred bytes. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ward_exec_event);
} exec_scratch SEC(".maps");

/* Reserve failures per CPU, index = event kind. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WARD_DROP_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

/* Wake the reader only when this much data is pending; otherwise it polls on
 * a short timer. Set by the loader. */
const volatile __u64 wakeup_bytes = 1 << 20;

/* Non-zero: an exec of a memfd stops its process (SIGSTOP) and wakes the reader,
 * which opens /proc/PID/exe and resumes it (SIGCONT). A memfd cannot be marked by
 * fanotify and is gone with its process, so only a synchronous hold lets user
 * space hash it. Set by the loader (agent.hold_memfd_execs). */
const volatile __u32 hold_memfd = 0;
/* Non-zero: the same hold for python running a script file (`python3 FILE ...`,
 * `#!` python scripts: comm "python*", argv[1] not an option), so that user
 * space reads the script through the live process's root even when it runs for
 * a few ms only. Set by the loader (agent.hold_python_script_execs). */
const volatile __u32 hold_scripts = 0;
#define WARD_SIGSTOP 19

static __always_inline int python_script_exec(struct ward_exec_event *e)
{
	__u32 i;

	if (!hold_scripts || e->argc < 2 || e->argv_len < 2)
		return 0;
	if (e->comm[0] != 'p' || e->comm[1] != 'y' || e->comm[2] != 't' || e->comm[3] != 'h' ||
	    e->comm[4] != 'o' || e->comm[5] != 'n')
		return 0;
	/* argv[1]: after argv[0]'s NUL, within the first 128 bytes */
	for (i = 0; i < 127; i++) {
		if (i + 1 >= e->argv_len)
			return 0;
		if (e->argv[i] == 0)
			return e->argv[i + 1] != '-' && e->argv[i + 1] != 0;
	}
	return 0;
}

/* WARD_EXEC_HELD when this exec is to be held. The signal itself is sent only
 * once the record is in the ring (hold_now): a process stopped without a record
 * would never be resumed. */
static __always_inline __u32 hold_exec(struct ward_exec_event *e, __u32 flags)
{
	if ((hold_memfd && (flags & WARD_EXEC_EXE_MEMFD)) || python_script_exec(e))
		return WARD_EXEC_HELD;
	return 0;
}

static __always_inline void count_drop(__u32 kind);

/* Sends the hold's SIGSTOP; 0 when it could not be sent (counted), and the
 * process runs on. */
static __always_inline int hold_now(__u32 flags)
{
	if (!(flags & WARD_EXEC_HELD))
		return 1;
	if (bpf_send_signal(WARD_SIGSTOP)) {
		count_drop(WARD_SLOT_HOLD_FAILED);
		return 0;
	}
	return 1;
}

/* Diagnostics (cost measurement, docs/agent.md): while ward_pause[0] is non-zero
 * every program returns at once. ward-bench-agent flips it to interleave short
 * blocks with and without the sensor's work in one agent's lifetime; the loader
 * sets it from WARD_SENSOR_NOOP=1. 0 in normal use. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} ward_pause SEC(".maps");

static __always_inline int paused(void)
{
	__u32 zero = 0;
	__u32 *v = bpf_map_lookup_elem(&ward_pause, &zero);

	return v && *v;
}

/* Layout of the per-syscall tracepoints' sys_exit_* records (see the
 * events/syscalls/sys_exit_dup2/format file in tracefs). */
struct sys_exit_args {
	__u64 common;
	int syscall_nr;
	int _pad;
	long ret;
};

/* Kernels before 6.11 keep timestamps as struct timespec64. */
struct inode___pre611 {
	struct timespec64 i_mtime;
	struct timespec64 __i_ctime;
};

static __always_inline void count_drop(__u32 kind)
{
	__u64 *v = bpf_map_lookup_elem(&drops, &kind);

	if (v)
		*v += 1;
}

/* The reader polls on a timer (50 ms by default: every wake-up costs the node
 * CPU). It is woken at once when wakeup_bytes are pending, or for an urgent
 * record: a network socket on a process's stdin/stdout/stderr (exec with one, or
 * dup'ed onto 0-2), the shape of a remote shell, which should not wait for the
 * timer. Those are rare on a normal node. */
static __always_inline __u64 wakeup_flag(void)
{
	__u64 pending = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);

	return pending >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

static __always_inline __u64 urgent_wakeup_flag(int urgent)
{
	return urgent ? BPF_RB_FORCE_WAKEUP : wakeup_flag();
}

/* After a record was submitted with `flag`: a forced wake-up also rings the doorbell
 * (after the commit, so that the reader it wakes finds the record). */
static __always_inline void ring_doorbell(__u64 flag)
{
	if (flag == BPF_RB_FORCE_WAKEUP) {
		__u64 token = 1;

		bpf_ringbuf_output(&wake, &token, sizeof(token), BPF_RB_FORCE_WAKEUP);
	}
}

static __always_inline void submit(void *rec)
{
	__u64 flag = wakeup_flag();

	bpf_ringbuf_submit(rec, flag);
	ring_doorbell(flag);
}

static __always_inline void fill_hdr(struct ward_event_header *h, __u16 kind, __u32 size,
				     __u32 pid, __u32 tgid)
{
	h->kind = kind;
	h->abi_version = WARD_ABI_VERSION;
	h->size = size;
	h->ktime_boot_ns = bpf_ktime_get_boot_ns();
	h->pid = pid;
	h->tgid = tgid;
}

static __always_inline struct mount *real_mount(struct vfsmount *m)
{
	return (struct mount *)((void *)m - bpf_core_field_offset(struct mount, mnt));
}

static __always_inline struct vfsmount *mount_vfs(struct mount *m)
{
	return (struct vfsmount *)((void *)m + bpf_core_field_offset(struct mount, mnt));
}

struct walk_ctx {
	struct dentry *dentry;
	struct vfsmount *vfsmnt;
	struct mount *mnt;
	struct dentry *root_dentry;
	struct vfsmount *root_mnt;
	char *buf; /* WARD_PATH_BUF bytes */
	__u32 off;
	__u32 flags; /* WALK_* */
};

#define WALK_TRUNCATED 1
#define WALK_DETACHED  2
#define WALK_DONE      4

/* One step of the path walk (a bpf_loop callback, so that the verifier checks
 * it once instead of once per iteration). Returns 1 to stop. */
static long walk_step(__u32 i, void *data)
{
	struct walk_ctx *c = data;
	struct dentry *dentry = c->dentry, *mnt_root, *parent;
	struct vfsmount *vfsmnt = c->vfsmnt;
	struct mount *mnt = c->mnt;
	const unsigned char *name;
	__u32 off = c->off;
	long n;

	/* (locals only in BPF_CORE_READ: walk_ctx is not a kernel type) */
	if (dentry == c->root_dentry && vfsmnt == c->root_mnt) {
		c->flags |= WALK_DONE;
		return 1;
	}
	mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
	parent = BPF_CORE_READ(dentry, d_parent);
	if (dentry == parent && dentry != mnt_root) {
		/* a disconnected dentry (memfd and other pseudo files from
		 * alloc_file_pseudo): its name, then stop */
		c->flags |= WALK_DETACHED | WALK_DONE;
		if (off < WARD_PATH_MAX) {
			name = BPF_CORE_READ(dentry, d_name.name);
			n = bpf_probe_read_kernel_str(c->buf + (off & (WARD_PATH_MAX - 1)),
						      WARD_NAME_MAX, name);
			if (n > 0)
				c->off = off + (n & (WARD_NAME_MAX - 1 + WARD_NAME_MAX));
		}
		return 1;
	}
	if (dentry == mnt_root) {
		struct mount *mp = BPF_CORE_READ(mnt, mnt_parent);

		if (!mp || mp == mnt) {
			/* top of a mount tree that does not contain the task's
			 * root: internal mount (memfd, pipe), another
			 * namespace, or outside a chroot */
			c->flags |= WALK_DETACHED | WALK_DONE;
			return 1;
		}
		c->dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
		c->mnt = mp;
		c->vfsmnt = mount_vfs(mp);
		return 0;
	}
	if (off >= WARD_PATH_MAX) {
		c->flags |= WALK_TRUNCATED | WALK_DONE;
		return 1;
	}
	name = BPF_CORE_READ(dentry, d_name.name);
	n = bpf_probe_read_kernel_str(c->buf + (off & (WARD_PATH_MAX - 1)), WARD_NAME_MAX, name);
	if (n > 0)
		c->off = off + (n & (WARD_NAME_MAX - 1 + WARD_NAME_MAX));
	c->dentry = parent;
	return 0;
}

/*
 * Writes the components of (dentry, vfsmnt) up to (root_dentry, root_mnt),
 * leaf first, each NUL terminated, into buf (WARD_PATH_BUF bytes). Crosses
 * mount points through struct mount. Returns the bytes used.
 */
static __always_inline __u32 walk_path(struct dentry *dentry, struct vfsmount *vfsmnt,
				       struct dentry *root_dentry, struct vfsmount *root_mnt,
				       char *buf, __u32 *flags, __u32 trunc_flag,
				       __u32 detached_flag)
{
	struct walk_ctx c = {
		.dentry = dentry,
		.vfsmnt = vfsmnt,
		.mnt = real_mount(vfsmnt),
		.root_dentry = root_dentry,
		.root_mnt = root_mnt,
		.buf = buf,
	};

	bpf_loop(WARD_PATH_DEPTH, walk_step, &c, 0);
	if (!(c.flags & WALK_DONE) || (c.flags & WALK_TRUNCATED))
		*flags |= trunc_flag;
	if (c.flags & WALK_DETACHED)
		*flags |= detached_flag;
	return c.off > WARD_PATH_BUF ? WARD_PATH_BUF : c.off;
}

static __always_inline struct file *task_fd_file(struct task_struct *task, __u32 fd)
{
	struct files_struct *files = BPF_CORE_READ(task, files);
	struct file *f = NULL;
	struct fdtable *fdt;
	struct file **arr;

	if (!files)
		return NULL;
	fdt = BPF_CORE_READ(files, fdt);
	if (!fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	arr = BPF_CORE_READ(fdt, fd);
	bpf_probe_read_kernel(&f, sizeof(f), &arr[fd & 0xffff]);
	return f;
}

static __always_inline void classify_socket(struct file *f, struct ward_fd_info *out)
{
	struct socket *sock = BPF_CORE_READ(f, private_data);
	struct sock *sk;
	__u16 family;

	out->kind = WARD_FD_OTHER;
	if (!sock)
		return;
	out->sock_type = (__u8)BPF_CORE_READ(sock, type);
	sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family == AF_UNIX) {
		out->kind = WARD_FD_UNIX;
		return;
	}
	if (family != AF_INET && family != AF_INET6)
		return;
	out->kind = WARD_FD_INET;
	out->sock_state = BPF_CORE_READ(sk, __sk_common.skc_state);
	out->local.family = family;
	out->remote.family = family;
	out->local.port = BPF_CORE_READ(sk, __sk_common.skc_num);
	out->remote.port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET) {
		__u32 l = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__u32 r = BPF_CORE_READ(sk, __sk_common.skc_daddr);

		__builtin_memcpy(out->local.addr, &l, 4);
		__builtin_memcpy(out->remote.addr, &r, 4);
	} else {
		BPF_CORE_READ_INTO(&out->local.addr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&out->remote.addr, sk, __sk_common.skc_v6_daddr);
	}
}

static __always_inline void classify_file(struct file *f, struct ward_fd_info *out)
{
	struct inode *inode;
	__u16 mode;

	if (!f) {
		out->kind = WARD_FD_NONE;
		return;
	}
	inode = BPF_CORE_READ(f, f_inode);
	if (!inode) {
		out->kind = WARD_FD_OTHER;
		return;
	}
	mode = BPF_CORE_READ(inode, i_mode);
	out->ino = BPF_CORE_READ(inode, i_ino);
	switch (mode & S_IFMT) {
	case S_IFREG:
		out->kind = WARD_FD_REG;
		break;
	case S_IFIFO:
		out->kind = BPF_CORE_READ(inode, i_sb, s_magic) == PIPEFS_MAGIC ? WARD_FD_PIPE
										  : WARD_FD_FIFO;
		break;
	case S_IFCHR:
		out->kind = WARD_FD_CHR;
		out->rdev = BPF_CORE_READ(inode, i_rdev);
		break;
	case S_IFSOCK:
		classify_socket(f, out);
		break;
	default:
		out->kind = WARD_FD_OTHER;
		break;
	}
}

static __always_inline __u32 ovl_layer(struct inode *inode)
{
	struct ovl_inode *oi;
	struct dentry *upper;
	struct ovl_entry *oe;
	__u32 nlower = 0;

	oi = (struct ovl_inode *)((void *)inode - bpf_core_field_offset(struct ovl_inode, vfs_inode));
	upper = BPF_CORE_READ(oi, __upperdentry);
	oe = BPF_CORE_READ(oi, oe);
	if (oe)
		nlower = BPF_CORE_READ(oe, __numlower);
	if (upper)
		return nlower ? WARD_OVL_UPPER_LOWER : WARD_OVL_UPPER;
	return WARD_OVL_LOWER;
}

static __always_inline __u32 task_pid_ns(struct task_struct *task)
{
	struct pid *pid = BPF_CORE_READ(task, thread_pid);
	struct upid up = {};
	unsigned int level;

	if (!pid)
		return 0;
	level = BPF_CORE_READ(pid, level);
	bpf_probe_read_kernel(&up, sizeof(up),
			      (void *)pid + bpf_core_field_offset(struct pid, numbers) +
				      (level & 31) * bpf_core_type_size(struct upid));
	if (!up.ns)
		return 0;
	return BPF_CORE_READ(up.ns, ns.inum);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(ward_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	struct ward_exec_event *e;
	struct dentry *root_dentry, *d;
	struct vfsmount *root_mnt;
	struct fs_struct *fs;
	struct mm_struct *mm;
	struct file *file;
	struct inode *inode;
	__u64 uid_gid, magic;
	unsigned long as, ae, len;
	const unsigned char *dname;
	char prefix[6] = {};
	__u32 flags = 0, zero = 0, fl, xl, cl, al, el;
	struct bpf_dynptr out;
	long n;
	int i;

	if (paused())
		return 0;
	e = bpf_map_lookup_elem(&exec_scratch, &zero);
	if (!e)
		return 0;
	/* (hdr.size is set once the lengths are known) */
	fill_hdr(&e->hdr, WARD_EV_EXEC, 0, BPF_CORE_READ(task, pid),
		 BPF_CORE_READ(task, tgid));
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	uid_gid = bpf_get_current_uid_gid();
	e->uid = (__u32)uid_gid;
	e->gid = uid_gid >> 32;
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->pid_ns = task_pid_ns(task);
	e->mnt_ns = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	e->argc = BPF_CORE_READ(bprm, argc);
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->_pad0 = 0;

	/* filename as executed (for a script: the script) */
	n = bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), BPF_CORE_READ(bprm, filename));
	if (n < 1)
		n = 1;
	if (n >= WARD_FILENAME_MAX)
		flags |= WARD_EXEC_FILENAME_TRUNCATED;
	e->filename_len = n - 1;

	/* the file really executed (for a script: the interpreter) */
	file = BPF_CORE_READ(bprm, file);
	inode = BPF_CORE_READ(file, f_inode);
	e->exe_ino = BPF_CORE_READ(inode, i_ino);
	e->exe_size = BPF_CORE_READ(inode, i_size);
	e->exe_nlink = BPF_CORE_READ(inode, __i_nlink);
	if (bpf_core_field_exists(inode->i_mtime_sec)) {
		e->exe_mtime_sec = BPF_CORE_READ(inode, i_mtime_sec);
		e->exe_mtime_nsec = BPF_CORE_READ(inode, i_mtime_nsec);
		e->exe_ctime_sec = BPF_CORE_READ(inode, i_ctime_sec);
		e->exe_ctime_nsec = BPF_CORE_READ(inode, i_ctime_nsec);
	} else {
		struct inode___pre611 *old = (void *)inode;

		e->exe_mtime_sec = BPF_CORE_READ(old, i_mtime.tv_sec);
		e->exe_mtime_nsec = BPF_CORE_READ(old, i_mtime.tv_nsec);
		e->exe_ctime_sec = BPF_CORE_READ(old, __i_ctime.tv_sec);
		e->exe_ctime_nsec = BPF_CORE_READ(old, __i_ctime.tv_nsec);
	}
	e->exe_dev = BPF_CORE_READ(inode, i_sb, s_dev);
	magic = BPF_CORE_READ(inode, i_sb, s_magic);
	e->exe_fs_magic = magic;
	e->ovl_layer = magic == OVERLAYFS_SUPER_MAGIC ? ovl_layer(inode) : WARD_OVL_NONE;

	d = BPF_CORE_READ(file, f_path.dentry);
	if (e->exe_nlink == 0 || !BPF_CORE_READ(d, d_hash.pprev))
		flags |= WARD_EXEC_EXE_DELETED;
	dname = BPF_CORE_READ(d, d_name.name);
	bpf_probe_read_kernel(prefix, sizeof(prefix), dname);
	if (e->exe_nlink == 0 && prefix[0] == 'm' && prefix[1] == 'e' && prefix[2] == 'm' &&
	    prefix[3] == 'f' && prefix[4] == 'd' && prefix[5] == ':')
		flags |= WARD_EXEC_EXE_MEMFD;

	fs = BPF_CORE_READ(task, fs);
	root_dentry = BPF_CORE_READ(fs, root.dentry);
	root_mnt = BPF_CORE_READ(fs, root.mnt);
	e->exe_path_len = walk_path(d, BPF_CORE_READ(file, f_path.mnt), root_dentry, root_mnt,
				    e->exe_path, &flags, WARD_EXEC_EXE_PATH_TRUNCATED,
				    WARD_EXEC_EXE_DETACHED);
	e->cwd_len = walk_path(BPF_CORE_READ(fs, pwd.dentry), BPF_CORE_READ(fs, pwd.mnt),
			       root_dentry, root_mnt, e->cwd, &flags, WARD_EXEC_CWD_TRUNCATED,
			       WARD_EXEC_CWD_DETACHED);

	/* argv from the new image's stack */
	mm = BPF_CORE_READ(task, mm);
	as = BPF_CORE_READ(mm, arg_start);
	ae = BPF_CORE_READ(mm, arg_end);
	len = ae > as ? ae - as : 0;
	if (len > WARD_ARGV_MAX) {
		len = WARD_ARGV_MAX;
		flags |= WARD_EXEC_ARGV_TRUNCATED;
	}
	barrier_var(len);
	if (len > WARD_ARGV_MAX)
		len = 0;
	if (len && bpf_probe_read_user(e->argv, len, (void *)as) == 0)
		e->argv_len = len;
	else
		e->argv_len = 0;

	/* envp, the same way: the first WARD_ENV_MAX bytes */
	as = BPF_CORE_READ(mm, env_start);
	ae = BPF_CORE_READ(mm, env_end);
	len = ae > as ? ae - as : 0;
	if (len > WARD_ENV_MAX) {
		len = WARD_ENV_MAX;
		flags |= WARD_EXEC_ENV_TRUNCATED;
	}
	barrier_var(len);
	if (len > WARD_ENV_MAX)
		len = 0;
	if (len && bpf_probe_read_user(e->env, len, (void *)as) == 0)
		e->env_len = len;
	else
		e->env_len = 0;

	/* stdio */
	for (i = 0; i < 3; i++) {
		struct ward_fd_info *fi = &e->fds[i];

		__builtin_memset(fi, 0, sizeof(*fi));
		classify_file(task_fd_file(task, i), fi);
	}

	flags |= hold_exec(e, flags);
	/* Last, so that the verifier explores no path twice for it (set earlier, the
	 * bit multiplies the states of every branch on flags after it, and the
	 * program with hold_scripts on no longer verifies). */
	if (BPF_CORE_READ(bprm, interp) != BPF_CORE_READ(bprm, filename))
		flags |= WARD_EXEC_SHEBANG;
	e->flags = flags;

	/* Packed: the head, then the used bytes of each buffer. The lengths were
	 * bounded when written; the verifier needs to see it again: masks that keep
	 * every valid length (filename <= 511, paths <= 1280; reading past a path
	 * buffer stays inside the map value), and asm clamps for argv (<= 4096,
	 * the start of env) and env (<= 2048, the end of the value). */
	fl = e->filename_len & (WARD_FILENAME_MAX - 1);
	xl = e->exe_path_len & 2047;
	cl = e->cwd_len & 2047;
	al = e->argv_len;
	asm volatile("if %[v] <= %[max] goto +1; %[v] = %[max]"
		     : [v] "+r"(al)
		     : [max] "i"(WARD_ARGV_MAX));
	el = e->env_len;
	asm volatile("if %[v] <= %[max] goto +1; %[v] = %[max]"
		     : [v] "+r"(el)
		     : [max] "i"(WARD_ENV_MAX));
	e->hdr.size = WARD_EXEC_HEAD_SIZE + fl + xl + cl + al + el;
	if (bpf_ringbuf_reserve_dynptr(&events, e->hdr.size, 0, &out)) {
		bpf_ringbuf_discard_dynptr(&out, 0);
		count_drop(WARD_EV_EXEC);
		return 0;
	}
	bpf_dynptr_write(&out, 0, e, WARD_EXEC_HEAD_SIZE, 0);
	bpf_dynptr_write(&out, WARD_EXEC_HEAD_SIZE, e->filename, fl, 0);
	bpf_dynptr_write(&out, WARD_EXEC_HEAD_SIZE + fl, e->exe_path, xl, 0);
	bpf_dynptr_write(&out, WARD_EXEC_HEAD_SIZE + fl + xl, e->cwd, cl, 0);
	bpf_dynptr_write(&out, WARD_EXEC_HEAD_SIZE + fl + xl + cl, e->argv, al, 0);
	bpf_dynptr_write(&out, WARD_EXEC_HEAD_SIZE + fl + xl + cl + al, e->env, el, 0);
	if (!hold_now(flags)) {
		/* Not stopped: say so in the record (user space then knows the process
		 * may be gone before it looks). */
		flags &= ~WARD_EXEC_HELD;
		e->flags = flags;
		bpf_dynptr_write(&out, 0, e, WARD_EXEC_HEAD_SIZE, 0);
	}
	/* Urgent too: a "#!" script run from a container's file system (its
	 * interpreter is on overlayfs). User space reads the script by path after
	 * the record; a short script as a container's only process is gone at once,
	 * and the container's root, the last way to it, is unmounted by the
	 * runtime's cleanup soon after: the reader must not wait for a batch. */
	__u64 wake_flag = urgent_wakeup_flag((flags & WARD_EXEC_HELD) ||
					     ((flags & WARD_EXEC_SHEBANG) &&
					      e->exe_fs_magic == OVERLAYFS_SUPER_MAGIC) ||
					     e->fds[0].kind == WARD_FD_INET ||
					     e->fds[1].kind == WARD_FD_INET ||
					     e->fds[2].kind == WARD_FD_INET);
	bpf_ringbuf_submit_dynptr(&out, wake_flag);
	ring_doorbell(wake_flag);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(ward_fork, struct task_struct *parent, struct task_struct *child)
{
	struct ward_fork_event *e;
	__u32 pid, tgid;

	if (paused())
		return 0;
	pid = BPF_CORE_READ(child, pid);
	tgid = BPF_CORE_READ(child, tgid);
	if (pid != tgid)
		return 0; /* a new thread, not a new process */
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_drop(WARD_EV_FORK);
		return 0;
	}
	fill_hdr(&e->hdr, WARD_EV_FORK, sizeof(*e), pid, tgid);
	e->parent_pid = BPF_CORE_READ(parent, pid);
	e->parent_tgid = BPF_CORE_READ(child, real_parent, tgid);
	e->cgroup_id = bpf_get_current_cgroup_id();
	BPF_CORE_READ_INTO(&e->comm, child, comm);
	submit(e);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(ward_exit, struct task_struct *task, bool group_dead)
{
	struct ward_exit_event *e;

	if (paused())
		return 0;
	if (!group_dead)
		return 0; /* other threads of the process live on */
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_drop(WARD_EV_EXIT);
		return 0;
	}
	fill_hdr(&e->hdr, WARD_EV_EXIT, sizeof(*e), BPF_CORE_READ(task, pid),
		 BPF_CORE_READ(task, tgid));
	e->exit_code = BPF_CORE_READ(task, exit_code);
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	BPF_CORE_READ_INTO(&e->comm, task, comm);
	submit(e);
	return 0;
}

static __always_inline int emit_fd(long ret, __u32 sys)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct ward_fd_info info = {};
	struct ward_fd_event *e;
	__u64 pid_tgid;

	if (ret < 0 || ret > 2 || paused())
		return 0;
	classify_file(task_fd_file(task, (__u32)ret), &info);
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_drop(WARD_EV_FD);
		return 0;
	}
	pid_tgid = bpf_get_current_pid_tgid();
	fill_hdr(&e->hdr, WARD_EV_FD, sizeof(*e), (__u32)pid_tgid, pid_tgid >> 32);
	e->fd = (__u32)ret;
	e->syscall = sys;
	__builtin_memcpy(&e->info, &info, sizeof(info));
	__u64 wake_flag = urgent_wakeup_flag(info.kind == WARD_FD_INET);

	bpf_ringbuf_submit(e, wake_flag);
	ring_doorbell(wake_flag);
	return 0;
}

static __always_inline int emit_conn(__u16 kind, long fd, long ret)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct ward_fd_info info = {};
	struct ward_conn_event *e;
	__u64 pid_tgid;

	if (fd < 0 || fd > 0xffff || paused())
		return 0;
	classify_file(task_fd_file(task, (__u32)fd), &info);
	if (info.kind != WARD_FD_INET || info.sock_type != SOCK_STREAM)
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_drop(kind);
		return 0;
	}
	pid_tgid = bpf_get_current_pid_tgid();
	fill_hdr(&e->hdr, kind, sizeof(*e), (__u32)pid_tgid, pid_tgid >> 32);
	e->fd = (__u32)fd;
	e->ret = (__s32)ret;
	__builtin_memcpy(&e->info, &info, sizeof(info));
	submit(e);
	return 0;
}

/* x86_64 syscall arguments are preserved in pt_regs at syscall exit. */
static __always_inline unsigned long syscall_arg0(void)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());

	return BPF_CORE_READ(regs, di);
}

static __always_inline unsigned long syscall_arg1(void)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());

	return BPF_CORE_READ(regs, si);
}

SEC("tracepoint/syscalls/sys_exit_dup")
int ward_sys_exit_dup(struct sys_exit_args *ctx)
{
	return emit_fd(ctx->ret, WARD_SYS_DUP);
}

SEC("tracepoint/syscalls/sys_exit_dup2")
int ward_sys_exit_dup2(struct sys_exit_args *ctx)
{
	return emit_fd(ctx->ret, WARD_SYS_DUP2);
}

SEC("tracepoint/syscalls/sys_exit_dup3")
int ward_sys_exit_dup3(struct sys_exit_args *ctx)
{
	return emit_fd(ctx->ret, WARD_SYS_DUP3);
}

SEC("tracepoint/syscalls/sys_exit_fcntl")
int ward_sys_exit_fcntl(struct sys_exit_args *ctx)
{
	long ret = ctx->ret;
	unsigned long cmd;

	if (ret < 0 || ret > 2)
		return 0;
	cmd = syscall_arg1();
	if (cmd != F_DUPFD && cmd != F_DUPFD_CLOEXEC)
		return 0;
	return emit_fd(ret, WARD_SYS_FCNTL);
}

SEC("tracepoint/syscalls/sys_exit_connect")
int ward_sys_exit_connect(struct sys_exit_args *ctx)
{
	long ret = ctx->ret;

	if (ret != 0 && ret != -EINPROGRESS)
		return 0;
	return emit_conn(WARD_EV_CONNECT, (int)syscall_arg0(), ret);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int ward_sys_exit_accept(struct sys_exit_args *ctx)
{
	return emit_conn(WARD_EV_ACCEPT, ctx->ret, ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int ward_sys_exit_accept4(struct sys_exit_args *ctx)
{
	return emit_conn(WARD_EV_ACCEPT, ctx->ret, ctx->ret);
}
