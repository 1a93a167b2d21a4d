/* In-kernel pairing. A single-threaded process with an unshared table (no
 * other task can touch it) parks the record of the fd it just made here
 * instead of sending it. Its next syscall decides: close of that fd drops
 * both records (the handle lived between two syscalls of one thread and
 * nothing else could see it); anything else sends the parked record first,
 * so order is kept. Thread exit sends it too. */
#ifndef LEAKTRACE_PAIR_H
#define LEAKTRACE_PAIR_H

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
	output(&st->e, size, false);
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

/* stash_before_syscall sends the current task's parked record before any
 * syscall but the close of the parked fd. */
static __always_inline void stash_before_syscall(long nr_class, int arg0)
{
	struct stash *st = bpf_task_storage_get(&stash, bpf_get_current_task_btf(), 0, 0);
	if (st && st->full && !(nr_class == LT_SYS_CLOSE && arg0 == st->e.fd))
		stash_flush(st);
}

/* stash_take_close settles a close of the parked fd: both records are
 * dropped. It returns true when the close was settled. */
static __always_inline bool stash_take_close(int fd)
{
	if (!pair_in_kernel)
		return false;
	struct stash *st = bpf_task_storage_get(&stash, bpf_get_current_task_btf(), 0, 0);
	if (!st || !st->full)
		return false;
	if (st->e.fd == fd) {
		st->full = 0;
		count(LT_CNT_PAIRED);
		return true;
	}
	stash_flush(st);
	return false;
}

/* may_stash: e, made by a syscall of class cls, can wait for its close. */
static __always_inline bool may_stash(struct lt_fd_event *e, __u8 cls)
{
	if (!pair_in_kernel)
		return false;
	if (cls == LT_SYS_PAIR)
		return false; /* two fds: the stash holds one */
	if (cls == LT_SYS_DUP_ONTO)
		return false; /* may have closed the fd it replaced: that must be sent */
	if (e->flags & LT_FD_RECEIVED)
		return false; /* one recvmsg can install many */
	struct task_struct *task = bpf_get_current_task_btf();
	if (task->files->count.counter != 1)
		return false; /* other threads or processes share the table */
	__u32 pid = e->h.pid;
	return bpf_map_lookup_elem(&py_procs, &pid) == NULL; /* Python sends frames ahead */
}

/* stash_put parks e (size bytes); false when it could not. */
static __always_inline bool stash_put(struct lt_fd_event *e, __u64 size)
{
	struct stash *st = bpf_task_storage_get(&stash, bpf_get_current_task_btf(), 0,
					    BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!st || st->full)
		return false;
	if (size > sizeof(st->e))
		size = sizeof(st->e);
	e->h.size = size;
	if (bpf_probe_read_kernel(&st->e, size, e))
		return false;
	st->size = size;
	st->full = 1;
	return true;
}

/* With per-syscall hooks (attach, agent) the next syscall is seen only if it
 * is followed: a parked record also leaves when its thread blocks, so a
 * handle held across a wait is in the live table within one switch. Attached
 * only when pairing in those modes. */
SEC("tp_btf/sched_switch")
int BPF_PROG(sched_switch, bool preempt, struct task_struct *prev)
{
	if (!preempt)
		stash_flush_task(prev);
	return 0;
}

#endif
