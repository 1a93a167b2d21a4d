//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/* leaktrace's kernel side: syscall enter/exit pairs for every fd source and
 * release, sched events for tasks, all filtered to the traced process tree. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "leaktrace.h"

char LICENSE[] SEC("license") = "GPL";

#ifndef container_of
#define container_of(ptr, type, member) ((type *)((void *)(ptr) - offsetof(type, member)))
#endif

/* Knobs, set from Go before load. */
const volatile __u32 trace_all = 0;      /* agent: every process on the host */
const volatile __u32 stack_bytes = 2048; /* user stack copied per creation event */
const volatile __u32 self_tgid = 0;      /* leaktrace itself: never traced */
/* The reader is woken only once this much is pending (or for records it
 * must see at once): a wakeup per record costs the traced program more than
 * the record itself. Go polls on a short deadline for the rest. */
const volatile __u32 wakeup_bytes = 256 << 10;
/* run: an open closed by the same thread's very next syscall never leaves
 * the kernel (see struct stash). */
const volatile __u32 pair_in_kernel = 0;

#define EBADF 9
#define ENFILE 23
#define EMFILE 24

/* x86-64 syscall numbers we care about. */
#define NR_mmap 9
#define NR_open 2
#define NR_close 3
#define NR_pipe 22
#define NR_dup 32
#define NR_dup2 33
#define NR_socket 41
#define NR_accept 43
#define NR_socketpair 53
#define NR_fcntl 72
#define NR_creat 85
#define NR_epoll_create 213
#define NR_inotify_init 253
#define NR_openat 257
#define NR_signalfd 282
#define NR_timerfd_create 283
#define NR_eventfd 284
#define NR_accept4 288
#define NR_signalfd4 289
#define NR_eventfd2 290
#define NR_epoll_create1 291
#define NR_dup3 292
#define NR_pipe2 293
#define NR_inotify_init1 294
#define NR_perf_event_open 298
#define NR_fanotify_init 300
#define NR_open_by_handle_at 304
#define NR_memfd_create 319
#define NR_userfaultfd 323
#define NR_io_uring_setup 425
#define NR_open_tree 428
#define NR_fsopen 430
#define NR_fsmount 432
#define NR_fspick 433
#define NR_pidfd_open 434
#define NR_close_range 436
#define NR_openat2 437
#define NR_pidfd_getfd 438
#define NR_memfd_secret 447
#define NR_wait4 61
#define NR_recvmsg 47
#define NR_recvmmsg 299
#define NR_connect 42
#define NR_bind 49
#define NR_listen 50
#define EINPROGRESS 115
#define NR_waitid 247
#define NR_exit_group 231
#define WNOWAIT 0x01000000
#define NR_MAX 512

#define F_DUPFD 0
#define F_DUPFD_CLOEXEC 1030
#define O_CLOEXEC 02000000
#define MSG_CMSG_CLOEXEC 0x40000000
#define SOL_SOCKET 1
#define SCM_RIGHTS 1
#define MAX_RIGHTS 64 /* fds taken from one recvmsg/recvmmsg */
#define PROT_EXEC 0x4
#define CLOSE_RANGE_UNSHARE (1U << 1)
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#define AT_BASE 7
#define AT_ENTRY 9

struct inflight {
	__u64 args[6];
	__u64 nr;
	__u64 ts; /* enter time: orders a release against a racing open of the same fd */
};

/* struct cmsghdr on x86-64. */
struct cmsg_head {
	__u64 len;
	__s32 level;
	__s32 type;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20); /* resized from Go */
} events SEC(".maps");

/* tgids being traced, one byte per pid (sized to pid_max from Go); grows
 * with fork, shrinks at exit. Every syscall of every process on the host asks
 * it: an array lookup is inlined by the verifier, a hash lookup is a call. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4 << 20); /* PID_MAX_LIMIT; resized from Go */
	__type(key, __u32);
	__type(value, __u8);
} traced SEC(".maps");


/* Syscall arguments parked at enter until exit, in the task itself: task
 * storage is a pointer away, where a hash keyed by tid costs an insert and a
 * delete per syscall. nr == 0 (read, never parked) marks it empty. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct inflight);
} inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LT_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* Per-CPU scratch: records are built here, then copied into the ring buffer
 * with their real size, so a short stack costs a short record. */
union scratch {
	struct lt_fd_event fd;
	struct lt_task_event task;
	struct lt_exec_event exec;
	struct lt_mmap_event mmap;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, union scratch);
} scratch SEC(".maps");

/* Force BTF for the types Go generates. */
const struct lt_fd_event *unused_fd __attribute__((unused));
const struct lt_task_event *unused_task __attribute__((unused));
const struct lt_exec_event *unused_exec __attribute__((unused));
const struct lt_mmap_event *unused_mmap __attribute__((unused));
const enum lt_counter *unused_counter __attribute__((unused));
const enum lt_event_type *unused_type __attribute__((unused));

static __always_inline void count(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &which);
	if (v)
		*v += 1;
}

static __always_inline bool in_traced(__u32 tgid)
{
	__u8 *v = bpf_map_lookup_elem(&traced, &tgid);
	return v && *v;
}

static __always_inline void set_traced(__u32 tgid, __u8 on)
{
	__u8 *v = bpf_map_lookup_elem(&traced, &tgid);
	if (v)
		*v = on;
	else if (on)
		count(LT_CNT_TRACED_FULL);
}

/* Agent filters (issue #5). With trace_all and filter_active, a process is
 * traced when it is in `traced` (a --pid, or a child of a traced process) or
 * when its comm, cgroup or executable is listed below; the rest of the host
 * costs a few lookups per fd syscall and no stack capture. */
const volatile __u32 filter_active = 0;

struct exe_key {
	__u64 ino;
	__u32 dev; /* the kernel's s_dev: major << 20 | minor */
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, char[LT_COMM_LEN]);
	__type(value, __u8);
} comm_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u64);
	__type(value, __u8);
} cgroup_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct exe_key);
	__type(value, __u8);
} exe_filter SEC(".maps");

/* agent_selects: the current task's process passes the agent's filters. Every
 * hook that asks runs in the task it asks about. */
static __always_inline bool agent_selects(__u32 tgid)
{
	if (in_traced(tgid))
		return true;
	struct task_struct *task = bpf_get_current_task_btf();
	char comm[LT_COMM_LEN] = {};
	BPF_CORE_READ_STR_INTO(&comm, task, group_leader, comm);
	if (bpf_map_lookup_elem(&comm_filter, comm))
		return true;
	__u64 cg = bpf_get_current_cgroup_id();
	if (bpf_map_lookup_elem(&cgroup_filter, &cg))
		return true;
	struct inode *ino = BPF_CORE_READ(task, mm, exe_file, f_inode);
	if (!ino)
		return false;
	struct exe_key k = {};
	k.ino = BPF_CORE_READ(ino, i_ino);
	k.dev = BPF_CORE_READ(ino, i_sb, s_dev);
	return bpf_map_lookup_elem(&exe_filter, &k) != NULL;
}

static __always_inline bool is_traced(__u32 tgid)
{
	if (tgid == self_tgid)
		return false;
	if (trace_all)
		return !filter_active || agent_selects(tgid);
	return in_traced(tgid);
}

static __always_inline bool interesting(long nr)
{
	switch (nr) {
	case NR_mmap: case NR_open: case NR_close: case NR_pipe: case NR_dup:
	case NR_dup2: case NR_socket: case NR_accept: case NR_socketpair:
	case NR_fcntl: case NR_creat: case NR_epoll_create: case NR_inotify_init:
	case NR_openat: case NR_signalfd: case NR_timerfd_create: case NR_eventfd:
	case NR_accept4: case NR_signalfd4: case NR_eventfd2: case NR_epoll_create1:
	case NR_dup3: case NR_pipe2: case NR_inotify_init1: case NR_perf_event_open:
	case NR_fanotify_init: case NR_open_by_handle_at: case NR_memfd_create:
	case NR_userfaultfd: case NR_io_uring_setup: case NR_open_tree:
	case NR_fsopen: case NR_fsmount: case NR_fspick: case NR_pidfd_open:
	case NR_close_range: case NR_openat2: case NR_pidfd_getfd:
	case NR_memfd_secret: case NR_wait4: case NR_waitid: case NR_exit_group:
	case NR_connect: case NR_bind: case NR_listen:
	case NR_recvmsg: case NR_recvmmsg:
		return true;
	}
	return false;
}

static __always_inline void fill_header(struct lt_header *h, __u16 type, __u16 nr)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 id = bpf_get_current_pid_tgid();

	h->ts = bpf_ktime_get_ns();
	h->files = (__u64)task->files;
	h->pid = id >> 32;
	h->tid = (__u32)id;
	h->type = type;
	h->nr = nr;
	h->size = 0;
	bpf_get_current_comm(h->comm, sizeof(h->comm));
}

/* capture_stack records the current task's user registers, the kernel's
 * frame-pointer walk and a copy of the top of the user stack. It returns the
 * bytes of stack copied. */
static __always_inline __u32 capture_stack(void *ctx, struct lt_stack *s)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	long n;

	s->ip = regs->ip;
	s->sp = regs->sp;
	s->bp = regs->bp;
	s->stack_len = 0;

	n = bpf_get_stack(ctx, s->kstack, sizeof(s->kstack), BPF_F_USER_STACK);
	s->kstack_len = n > 0 ? (__u32)((__u64)n / 8) : 0;

	/* One bounded read of stack_bytes; when that runs past the top of the
	 * stack (unmapped), retry up to the last page boundary below sp+n, then
	 * to the end of sp's page. Unrolled chunk loops cost the verifier a walk
	 * per chunk per call site. */
	__u64 want = stack_bytes;
	__u32 off = 0;
	if (want > LT_STACK_MAX)
		want = LT_STACK_MAX;
	if (want && bpf_probe_read_user(s->stack, want, (void *)s->sp) == 0) {
		off = want;
	} else if (want) {
		__u64 cut = ((s->sp + want) & ~4095ULL) - s->sp;
		if (cut > want)
			cut = 0;
		if (cut > LT_STACK_MAX)
			cut = LT_STACK_MAX;
		if (cut && bpf_probe_read_user(s->stack, cut, (void *)s->sp) == 0) {
			off = cut;
		} else {
			cut = ((s->sp | 4095ULL) + 1) - s->sp;
			if (cut > want)
				cut = want;
			if (cut > LT_STACK_MAX)
				cut = LT_STACK_MAX;
			if (bpf_probe_read_user(s->stack, cut, (void *)s->sp) == 0)
				off = cut;
		}
	}
	s->stack_len = off;
	return off;
}

static __always_inline __u64 wakeup_flag(bool now)
{
	if (now || bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

static __always_inline void submit_flags(void *rec, __u64 size, bool now)
{
	/* Bound for the verifier; the real size is at most the union's. */
	if (size > sizeof(union scratch))
		size = sizeof(union scratch);
	if (size < sizeof(struct lt_header))
		size = sizeof(struct lt_header);
	((struct lt_header *)rec)->size = size;
	if (bpf_ringbuf_output(&events, rec, size, wakeup_flag(now)))
		count(LT_CNT_RINGBUF_FULL);
	else
		count(LT_CNT_EVENTS);
}

static __always_inline void submit(void *rec, __u64 size) { submit_flags(rec, size, false); }

/* Records the reader should see promptly: exec, process exit. */
static __always_inline void submit_now(void *rec, __u64 size) { submit_flags(rec, size, true); }

/* In-kernel pairing. A single-threaded process with an unshared table (no
 * other task can touch it) parks the record of the fd it just made here
 * instead of sending it. Its next syscall decides: close of that fd drops
 * both records (the handle lived between two syscalls of one thread and
 * nothing else could see it); anything else sends the parked record first,
 * so order is kept. Thread exit sends it too. */
struct stash {
	__u32 full;
	__u32 size;
	struct lt_fd_event e;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct stash);
} stash SEC(".maps");

static __always_inline void stash_flush(struct stash *st)
{
	__u64 size = st->size;
	if (size > sizeof(st->e))
		size = sizeof(st->e);
	if (size < sizeof(struct lt_header))
		size = sizeof(struct lt_header);
	st->full = 0;
	if (bpf_ringbuf_output(&events, &st->e, size, wakeup_flag(false)))
		count(LT_CNT_RINGBUF_FULL);
	else
		count(LT_CNT_EVENTS);
}

/* stash_flush_task sends task's parked record, if any. */
static __always_inline void stash_flush_task(struct task_struct *task)
{
	if (!pair_in_kernel)
		return;
	struct stash *st = bpf_task_storage_get(&stash, task, 0, 0);
	if (st && st->full)
		stash_flush(st);
}

#include "python.h"

/* Kernel pointers from tp_btf arguments and bpf_get_current_task_btf() are
 * BTF-typed: plain loads through them are checked by the verifier and cost a
 * load each, where BPF_CORE_READ costs a helper call per step. Pointers read
 * as plain numbers get their type back with bpf_rdonly_cast. */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

#define AS_BTF(type, p) ((type *)bpf_rdonly_cast((p), bpf_core_type_id_kernel(type)))

static __always_inline struct file *fd_file(struct task_struct *task, int fd)
{
	struct files_struct *files = task->files;
	struct file *f = NULL;

	if (!files || fd < 0)
		return NULL;
	struct fdtable *fdt = files->fdt;
	if (!fdt || (unsigned int)fd >= fdt->max_fds)
		return NULL;
	struct file **fda = fdt->fd;
	bpf_probe_read_kernel(&f, sizeof(f), &fda[fd]);
	return f;
}

static __always_inline void describe_file(struct lt_fd_event *e, struct file *file)
{
	e->mode = 0;
	e->ino = 0;
	e->magic = 0;
	e->name[0] = 0;
	if (!file)
		return;
	struct file *f = AS_BTF(struct file, file);
	struct inode *inode = f->f_inode;
	e->mode = inode->i_mode;
	e->ino = inode->i_ino;
	e->magic = inode->i_sb->s_magic;
	bpf_probe_read_kernel_str(e->name, sizeof(e->name), f->f_path.dentry->d_name.name);

	if ((e->mode & 00170000) == 0140000) { /* S_IFSOCK */
		struct socket *sock = AS_BTF(struct socket, f->private_data);
		struct sock *sk = sock->sk;
		if (!sk)
			return;
		e->flags |= LT_FD_HAS_SOCK;
		e->sock.family = sk->__sk_common.skc_family;
		e->sock.type = sock->type;
		e->sock.protocol = sk->sk_protocol;
		e->sock.state = sk->__sk_common.skc_state;
		e->sock.sport = sk->__sk_common.skc_num;
		e->sock.dport = __builtin_bswap16(sk->__sk_common.skc_dport);
		if (e->sock.family == 2) { /* AF_INET */
			__u32 s = sk->__sk_common.skc_rcv_saddr;
			__u32 d = sk->__sk_common.skc_daddr;
			__builtin_memcpy(e->sock.saddr, &s, 4);
			__builtin_memcpy(e->sock.daddr, &d, 4);
		} else if (e->sock.family == 10) { /* AF_INET6 */
			BPF_CORE_READ_INTO(&e->sock.saddr, sk, __sk_common.skc_v6_rcv_saddr);
			BPF_CORE_READ_INTO(&e->sock.daddr, sk, __sk_common.skc_v6_daddr);
		}
	}
}

/* Rebuild a path from dentries, leaf first, crossing mounts. bpf_loop keeps
 * the verifier from walking every path through the loop. */
struct dpath_walk {
	struct dentry *d;
	struct mount *mnt;
	char (*out)[LT_NAME_LEN];
	__u32 depth;
	__u32 max;  /* components out holds, at most LT_PATH_DEPTH */
	__u32 full; /* the walk reached the namespace's root */
};

static long dpath_step(__u64 i, void *ctx)
{
	struct dpath_walk *w = ctx;
	struct dentry *d = w->d;
	struct mount *mnt = w->mnt;
	struct dentry *root = BPF_CORE_READ(mnt, mnt.mnt_root);
	struct dentry *parent = BPF_CORE_READ(d, d_parent);

	if (d == root) {
		struct mount *pm = BPF_CORE_READ(mnt, mnt_parent);
		if (pm == mnt) {
			w->full = 1; /* the namespace's root */
			return 1;
		}
		w->d = BPF_CORE_READ(mnt, mnt_mountpoint);
		w->mnt = pm;
		return 0;
	}
	if (d == parent || w->depth >= w->max || w->depth >= LT_PATH_DEPTH)
		return 1;
	const unsigned char *name = BPF_CORE_READ(d, d_name.name);
	bpf_probe_read_kernel_str(w->out[w->depth & (LT_PATH_DEPTH - 1)], LT_NAME_LEN, name);
	w->depth++;
	w->d = parent;
	return 0;
}

static __always_inline __u32 read_dpath(struct path *p, char (*out)[LT_NAME_LEN], __u32 max, __u32 *full)
{
	struct vfsmount *vmnt = BPF_CORE_READ(p, mnt);
	struct dpath_walk w = {
		.d = BPF_CORE_READ(p, dentry),
		.mnt = container_of(vmnt, struct mount, mnt),
		.out = out,
		.depth = 0,
		.max = max,
	};
	bpf_loop(2 * LT_PATH_DEPTH, dpath_step, &w, 0);
	if (full)
		*full = w.full;
	return w.depth;
}

/* A file opened by a relative path, by handle, or received from another
 * process: the kernel's dentries name it when no absolute path argument
 * does. Up to LT_FD_DPATH_DEPTH components go into e->path, leaf first. */
static __always_inline void fd_dpath(struct lt_fd_event *e, struct file *f)
{
	__u32 t = e->mode & 00170000, full = 0;
	if (!f || (t != 0100000 && t != 0040000) || e->path[0] == '/')
		return;
	struct path p = {};
	BPF_CORE_READ_INTO(&p, f, f_path);
	e->depth = read_dpath(&p, (char (*)[LT_NAME_LEN])e->path, LT_FD_DPATH_DEPTH, &full);
	e->flags |= LT_FD_DPATH;
	if (full)
		e->flags |= LT_FD_DPATH_FULL;
}

static __always_inline struct lt_fd_event *fd_event(__u16 type, __u16 nr)
{
	__u32 zero = 0;
	struct lt_fd_event *e = bpf_map_lookup_elem(&scratch, &zero);

	if (!e)
		return NULL;
	fill_header(&e->h, type, nr);
	e->fd = -1;
	e->fd2 = -1;
	e->ret = 0;
	e->flags = 0;
	e->mode = 0;
	e->ino = 0;
	e->arg0 = 0;
	e->magic = 0;
	e->enter_ts = 0;
	e->depth = 0;
	__builtin_memset(&e->sock, 0, sizeof(e->sock));
	e->name[0] = 0;
	e->path[0] = 0;
	e->stack.stack_len = 0;
	e->stack.kstack_len = 0;
	return e;
}

/* Submit an fd-creating event with the stack that made it. */
static __always_inline bool may_stash(struct lt_fd_event *e)
{
	if (!pair_in_kernel)
		return false;
	if (e->h.nr == NR_pipe || e->h.nr == NR_pipe2 || e->h.nr == NR_socketpair)
		return false; /* two fds: the stash holds one */
	if (e->h.nr == NR_dup2 || e->h.nr == NR_dup3)
		return false; /* may have closed the fd it replaced: that must be sent */
	if (e->flags & LT_FD_RECEIVED)
		return false; /* one recvmsg can install many */
	struct task_struct *task = bpf_get_current_task_btf();
	if (task->files->count.counter != 1)
		return false; /* other threads or processes share the table */
	__u32 pid = e->h.pid;
	return bpf_map_lookup_elem(&py_procs, &pid) == NULL; /* Python sends frames ahead */
}

static __always_inline void submit_open(void *ctx, struct lt_fd_event *e)
{
	py_submit_stack(&e->h);
	__u32 n = capture_stack(ctx, &e->stack);
	__u64 size = offsetof(struct lt_fd_event, stack.stack) + (n & (LT_STACK_MAX - 1));
	if (may_stash(e)) {
		struct stash *st = bpf_task_storage_get(&stash, bpf_get_current_task_btf(), 0,
						    BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (st && !st->full) {
			if (size > sizeof(st->e))
				size = sizeof(st->e);
			e->h.size = size;
			if (bpf_probe_read_kernel(&st->e, size, e) == 0) {
				st->size = size;
				st->full = 1;
				return;
			}
		}
	}
	submit(e, size);
}

static __always_inline void read_path_arg(struct lt_fd_event *e, __u64 uptr)
{
	long n = bpf_probe_read_user_str(e->path, sizeof(e->path), (void *)uptr);
	if (n == sizeof(e->path))
		e->flags |= LT_FD_TRUNCATED_PATH;
	if (n < 0)
		e->path[0] = 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(sys_enter, struct pt_regs *regs, long id)
{
	if (pair_in_kernel && in_traced(bpf_get_current_pid_tgid() >> 32)) {
		/* Any syscall but close of the parked fd sends it first. */
		struct stash *st = bpf_task_storage_get(&stash, bpf_get_current_task_btf(), 0, 0);
		if (st && st->full && !(id == NR_close && (int)regs->di == st->e.fd))
			stash_flush(st);
	}
	if (!interesting(id))
		return 0;
	__u64 pidtgid = bpf_get_current_pid_tgid();
	if (!is_traced(pidtgid >> 32))
		return 0;

	if (id == NR_exit_group) {
		__u32 zero = 0;
		union scratch *s = bpf_map_lookup_elem(&scratch, &zero);
		if (!s)
			return 0;
		fill_header(&s->task.h, LT_EV_EXIT_GROUP, id);
		s->task.exit_code = (int)regs->di;
		s->task.child_pid = pidtgid >> 32;
		s->task.child_tid = (__u32)pidtgid;
		submit(&s->task, offsetof(struct lt_task_event, stack));
		return 0;
	}

	if (id == NR_recvmsg) {
		/* Only a msghdr with room for a cmsg can carry SCM_RIGHTS. */
		__u64 m = regs->si, ctl = 0, len = 0;
		bpf_probe_read_user(&ctl, sizeof(ctl), (void *)(m + 32));
		bpf_probe_read_user(&len, sizeof(len), (void *)(m + 40));
		if (!ctl || len < sizeof(struct cmsg_head) + 4)
			return 0;
	}

	struct inflight *in = bpf_task_storage_get(&inflight, bpf_get_current_task_btf(), 0,
						   BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!in) {
		count(LT_CNT_INFLIGHT_FULL);
		return 0;
	}
	in->nr = id;
	in->ts = bpf_ktime_get_ns();
	in->args[0] = regs->di;
	in->args[1] = regs->si;
	in->args[2] = regs->dx;
	in->args[3] = regs->r10;
	in->args[4] = regs->r8;
	in->args[5] = regs->r9;
	return 0;
}

/* The process hit its fd limit (EMFILE) or the host's (ENFILE): the agent
 * alerts at once, without waiting for a scrape. */
static __always_inline int submit_fd_fail(__u16 nr, long ret)
{
	struct lt_fd_event *e = fd_event(LT_EV_FD_FAIL, nr);
	if (!e)
		return 0;
	e->ret = ret;
	submit(e, offsetof(struct lt_fd_event, sock));
	return 0;
}

static __always_inline int handle_fd_exit(void *ctx, struct inflight *in, long ret)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u16 nr = in->nr;
	struct lt_fd_event *e;

	switch (nr) {
	case NR_close:
		/* close releases the fd on every outcome but EBADF. */
		if (ret == -EBADF)
			return 0;
		if (pair_in_kernel) {
			struct stash *st = bpf_task_storage_get(&stash, task, 0, 0);
			if (st && st->full) {
				if (st->e.fd == (int)in->args[0]) {
					st->full = 0;
					count(LT_CNT_PAIRED);
					return 0;
				}
				stash_flush(st);
			}
		}
		e = fd_event(LT_EV_FD_CLOSE, nr);
		if (!e)
			return 0;
		e->enter_ts = in->ts;
		e->fd = (int)in->args[0];
		e->ret = ret;
		e->flags |= py_close_flags(e->h.pid);
		submit(e, offsetof(struct lt_fd_event, sock));
		return 0;
	case NR_close_range:
		if (ret != 0)
			return 0;
		e = fd_event(LT_EV_CLOSE_RANGE, nr);
		if (!e)
			return 0;
		e->enter_ts = in->ts;
		e->fd = (int)in->args[0];
		e->fd2 = in->args[1] > 0x7fffffff ? 0x7fffffff : (int)in->args[1];
		if (in->args[2] & CLOSE_RANGE_UNSHARE)
			e->flags |= LT_FD_UNSHARE;
		if (in->args[2] & CLOSE_RANGE_CLOEXEC)
			e->flags |= LT_FD_ONLY_CLOEXEC;
		e->flags |= py_close_flags(e->h.pid);
		submit(e, offsetof(struct lt_fd_event, sock));
		return 0;
	case NR_fcntl:
		if (in->args[1] != F_DUPFD && in->args[1] != F_DUPFD_CLOEXEC)
			return 0;
		break;
	case NR_mmap:
		return 0; /* handled by the caller */
	case NR_connect:
	case NR_bind:
	case NR_listen:
		/* A socket got its addresses: describe it again. */
		if (ret != 0 && !(nr == NR_connect && ret == -EINPROGRESS))
			return 0;
		e = fd_event(LT_EV_FD_UPDATE, nr);
		if (!e)
			return 0;
		e->fd = (int)in->args[0];
		e->ret = ret;
		describe_file(e, fd_file(task, e->fd));
		submit(e, offsetof(struct lt_fd_event, path));
		return 0;
	}
	if (ret == -EMFILE || ret == -ENFILE)
		return submit_fd_fail(nr, ret);
	if (ret < 0)
		return 0;

	e = fd_event(LT_EV_FD_OPEN, nr);
	if (!e)
		return 0;
	e->enter_ts = in->ts;
	e->ret = ret;
	e->arg0 = in->args[0];
	e->fd = (int)ret;

	switch (nr) {
	case NR_open:
	case NR_creat:
		read_path_arg(e, in->args[0]);
		if (nr == NR_open && (in->args[1] & O_CLOEXEC))
			e->flags |= LT_FD_CLOEXEC;
		break;
	case NR_openat:
		read_path_arg(e, in->args[1]);
		if (in->args[2] & O_CLOEXEC)
			e->flags |= LT_FD_CLOEXEC;
		break;
	case NR_openat2: {
		__u64 oflags = 0;
		read_path_arg(e, in->args[1]);
		bpf_probe_read_user(&oflags, sizeof(oflags), (void *)in->args[2]);
		if (oflags & O_CLOEXEC)
			e->flags |= LT_FD_CLOEXEC;
		break;
	}
	case NR_pipe:
	case NR_pipe2:
	case NR_socketpair: {
		int fds[2] = {-1, -1};
		__u64 uptr = nr == NR_socketpair ? in->args[3] : in->args[0];
		if (bpf_probe_read_user(fds, sizeof(fds), (void *)uptr))
			return 0;
		e->fd = fds[0];
		e->fd2 = fds[1];
		break;
	}
	case NR_dup2:
	case NR_dup3:
		e->fd2 = (int)in->args[0]; /* source */
		break;
	case NR_dup:
	case NR_fcntl:
		e->fd2 = (int)in->args[0];
		break;
	}
	struct file *f = fd_file(task, e->fd);
	describe_file(e, f);
	if (nr == NR_open || nr == NR_openat || nr == NR_openat2 || nr == NR_creat ||
	    nr == NR_open_by_handle_at)
		fd_dpath(e, f);
	submit_open(ctx, e);
	return 0;
}

/* fds received through SCM_RIGHTS: cmsgs are parsed from the caller's
 * msghdr at syscall exit, when the kernel has written msg_controllen. */
struct rights {
	__s32 fds[MAX_RIGHTS];
	__u32 n;
	__u32 dropped;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rights);
} rights_scratch SEC(".maps");

/* msghdr: msg_control at +32, msg_controllen at +40 (x86-64). */
static __always_inline void collect_rights(__u64 msghdr, struct rights *r)
{
	__u64 ctl = 0, len = 0, off = 0;

	if (bpf_probe_read_user(&ctl, sizeof(ctl), (void *)(msghdr + 32)) ||
	    bpf_probe_read_user(&len, sizeof(len), (void *)(msghdr + 40)) || !ctl)
		return;
	for (int c = 0; c < 4; c++) {
		struct cmsg_head h = {};
		if (off + sizeof(h) > len)
			break;
		if (bpf_probe_read_user(&h, sizeof(h), (void *)(ctl + off)))
			break;
		if (h.len < sizeof(h) || h.len > len - off)
			break;
		if (h.level == SOL_SOCKET && h.type == SCM_RIGHTS) {
			__s32 fds[16] = {};
			__u64 cnt = (h.len - sizeof(h)) / 4;
			if (cnt > 16) {
				r->dropped += cnt - 16;
				cnt = 16;
			}
			__u32 sz = cnt * 4;
			asm volatile("" : "+r"(sz)); /* keep the clamp on the register the call uses */
			if (sz > sizeof(fds))
				sz = sizeof(fds);
			if (bpf_probe_read_user(fds, sz, (void *)(ctl + off + sizeof(h))))
				break;
			for (int i = 0; i < 16; i++) {
				if (i >= cnt)
					break;
				if (r->n >= MAX_RIGHTS) {
					r->dropped++;
					continue;
				}
				r->fds[r->n & (MAX_RIGHTS - 1)] = fds[i];
				r->n++;
			}
		}
		off += (h.len + 7) & ~7ULL;
	}
}

struct rights_emit {
	void *ctx;
	__u64 enter_ts;
	struct rights *r;
	__u32 cloexec;
	__u16 nr;
};

static long emit_right(__u64 i, void *data)
{
	struct rights_emit *w = data;
	struct lt_fd_event *e = fd_event(LT_EV_FD_OPEN, w->nr);

	if (!e || i >= MAX_RIGHTS)
		return 1;
	e->enter_ts = w->enter_ts;
	e->fd = w->r->fds[i & (MAX_RIGHTS - 1)];
	e->ret = e->fd;
	e->flags |= LT_FD_RECEIVED;
	if (w->cloexec)
		e->flags |= LT_FD_CLOEXEC;
	struct file *f = fd_file(bpf_get_current_task_btf(), e->fd);
	describe_file(e, f);
	fd_dpath(e, f);
	submit_open(w->ctx, e);
	return 0;
}

static __always_inline int handle_rights_exit(void *ctx, struct inflight *in, long ret)
{
	__u32 zero = 0;
	struct rights *r = bpf_map_lookup_elem(&rights_scratch, &zero);

	if (ret < 0 || !r)
		return 0;
	r->n = 0;
	r->dropped = 0;
	if (in->nr == NR_recvmsg) {
		collect_rights(in->args[1], r);
	} else {
		/* struct mmsghdr is a msghdr (56 bytes) and a length: 64 bytes. */
		for (int m = 0; m < 8; m++) {
			if (m >= ret)
				break;
			collect_rights(in->args[1] + m * 64, r);
		}
		if (ret > 8)
			r->dropped++; /* messages past the 8th were not read */
	}
	if (r->dropped)
		count(LT_CNT_RIGHTS_DROPPED);
	struct rights_emit w = {
		.ctx = ctx,
		.enter_ts = in->ts,
		.r = r,
		.cloexec = !!(in->args[2] & MSG_CMSG_CLOEXEC),
		.nr = in->nr,
	};
	if (in->nr == NR_recvmmsg)
		w.cloexec = !!(in->args[3] & MSG_CMSG_CLOEXEC);
	bpf_loop(r->n, emit_right, &w, 0);
	return 0;
}

static __always_inline int handle_mmap_exit(struct inflight *in, long ret)
{
	if (ret < 0 && ret > -4096)
		return 0;
	if (!(in->args[2] & PROT_EXEC) || (int)in->args[4] < 0)
		return 0;

	struct task_struct *task = bpf_get_current_task_btf();
	struct file *f = fd_file(task, (int)in->args[4]);
	if (!f)
		return 0;

	__u32 zero = 0;
	union scratch *s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		return 0;
	struct lt_mmap_event *e = &s->mmap;
	fill_header(&e->h, LT_EV_MMAP, NR_mmap);
	e->addr = (__u64)ret;
	e->len = in->args[1];
	e->pgoff = in->args[5];
	e->ino = BPF_CORE_READ(f, f_inode, i_ino);
	struct path p = {};
	BPF_CORE_READ_INTO(&p, f, f_path);
	e->depth = read_dpath(&p, e->path, LT_PATH_DEPTH, NULL);
	submit(e, sizeof(*e));
	return 0;
}

/* A child is gone for good when wait4/waitid reaps it. */
static __always_inline int handle_wait_exit(struct inflight *in, long ret)
{
	__u32 child = 0;

	if (in->nr == NR_wait4) {
		if (ret <= 0)
			return 0;
		child = ret;
	} else {
		if (ret != 0 || !in->args[2] || (in->args[3] & WNOWAIT))
			return 0;
		/* siginfo: si_signo, si_errno, si_code, pad, then si_pid */
		bpf_probe_read_user(&child, sizeof(child), (void *)(in->args[2] + 16));
		if (!child)
			return 0;
	}
	__u32 zero = 0;
	union scratch *s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		return 0;
	struct lt_task_event *e = &s->task;
	fill_header(&e->h, LT_EV_REAP, in->nr);
	e->child_pid = child;
	e->child_tid = child;
	submit(e, offsetof(struct lt_task_event, stack));
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(sys_exit, struct pt_regs *regs, long ret)
{
	long id = regs->orig_ax;
	if (!interesting(id))
		return 0;
	__u64 pidtgid = bpf_get_current_pid_tgid();
	if (!is_traced(pidtgid >> 32))
		return 0;

	struct inflight *in = bpf_task_storage_get(&inflight, bpf_get_current_task_btf(), 0, 0);
	if (!in || in->nr != id) {
		if (in)
			in->nr = 0;
		count(LT_CNT_MISSED_EXIT);
		return 0;
	}
	if (id == NR_mmap)
		handle_mmap_exit(in, ret);
	else if (id == NR_recvmsg || id == NR_recvmmsg)
		handle_rights_exit(ctx, in, ret);
	else if (id == NR_wait4 || id == NR_waitid)
		handle_wait_exit(in, ret);
	else
		handle_fd_exit(ctx, in, ret);
	in->nr = 0;
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(sched_process_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = BPF_CORE_READ(parent, tgid);
	if (!is_traced(ptgid))
		return 0;

	__u32 ctgid = BPF_CORE_READ(child, tgid);
	if (ctgid != ptgid && (!trace_all || filter_active)) {
		set_traced(ctgid, 1);
	}

	__u32 zero = 0;
	union scratch *s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		return 0;
	struct lt_task_event *e = &s->task;
	fill_header(&e->h, LT_EV_TASK_NEW, 0);
	e->child_pid = ctgid;
	e->child_tid = BPF_CORE_READ(child, pid);
	e->child_files = (__u64)BPF_CORE_READ(child, files);
	e->is_thread = ctgid == ptgid;
	e->group_dead = 0;
	e->exit_code = 0;
	e->ppid = ptgid;
	e->autoreap = 0;
	py_fork(ptgid, ctgid);
	py_submit_stack(&e->h);
	__u32 n = capture_stack(ctx, &e->stack);
	submit(e, offsetof(struct lt_task_event, stack.stack) + (n & (LT_STACK_MAX - 1)));
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(sched_process_exit, struct task_struct *task, bool group_dead)
{
	stash_flush_task(task);
	__u32 tgid = BPF_CORE_READ(task, tgid);
	if (!is_traced(tgid))
		return 0;

	__u32 zero = 0;
	union scratch *s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		return 0;
	struct lt_task_event *e = &s->task;
	fill_header(&e->h, LT_EV_TASK_EXIT, 0);
	e->child_pid = tgid;
	e->child_tid = BPF_CORE_READ(task, pid);
	e->child_files = 0;
	e->is_thread = 0;
	e->group_dead = group_dead;
	e->exit_code = BPF_CORE_READ(task, exit_code);
	struct task_struct *parent = BPF_CORE_READ(task, real_parent);
	e->ppid = BPF_CORE_READ(parent, tgid);
	e->autoreap = 0;
	if (group_dead) {
		/* SIGCHLD ignored or SA_NOCLDWAIT: the kernel reaps the child itself. */
		struct sighand_struct *sh = BPF_CORE_READ(parent, sighand);
		__u64 handler = (__u64)BPF_CORE_READ(sh, action[16].sa.sa_handler);
		__u64 flags = BPF_CORE_READ(sh, action[16].sa.sa_flags);
		if (handler == 1 || (flags & 2))
			e->autoreap = 1;
	}
	submit_flags(e, offsetof(struct lt_task_event, stack), group_dead);

	if (group_dead && (!trace_all || filter_active))
		set_traced(tgid, 0);
	if (group_dead)
		py_forget(tgid);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(sched_process_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 tgid = BPF_CORE_READ(task, tgid);
	if (!is_traced(tgid))
		return 0;

	__u32 zero = 0;
	union scratch *s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		return 0;
	struct lt_exec_event *e = &s->exec;
	fill_header(&e->h, LT_EV_EXEC, 0);
	e->old_tid = old_pid;
	py_forget(tgid);

	/* The new image's auxv: where the executable and ld.so were loaded. */
	struct mm_struct *mm = BPF_CORE_READ(task, mm);
	e->at_entry = 0;
	e->at_base = 0;
	for (int i = 0; i < 56; i += 2) {
		__u64 kv[2] = {};
		if (bpf_core_read(kv, sizeof(kv), &mm->saved_auxv[i]))
			break;
		if (kv[0] == 0)
			break;
		if (kv[0] == AT_ENTRY)
			e->at_entry = kv[1];
		else if (kv[0] == AT_BASE)
			e->at_base = kv[1];
	}

	/* The fd table after exec closed the close-on-exec fds. */
	struct files_struct *files = BPF_CORE_READ(task, files);
	struct fdtable *fdt = BPF_CORE_READ(files, fdt);
	__u32 max_fds = BPF_CORE_READ(fdt, max_fds);
	unsigned long *open_fds = BPF_CORE_READ(fdt, open_fds);
	__u32 words = max_fds / 64;
	if (words > LT_FDBITS_WORDS)
		words = LT_FDBITS_WORDS;
	e->max_fds = max_fds;
	e->fdbits_words = words;
	__u32 sz = words * 8;
	if (sz > sizeof(e->fdbits))
		sz = sizeof(e->fdbits);
	bpf_probe_read_kernel(e->fdbits, sz, open_fds);

	struct file *exe = BPF_CORE_READ(bprm, file);
	struct path p = {};
	BPF_CORE_READ_INTO(&p, exe, f_path);
	e->depth = read_dpath(&p, e->path, LT_PATH_DEPTH, NULL);
	submit_now(e, sizeof(*e));
	return 0;
}
