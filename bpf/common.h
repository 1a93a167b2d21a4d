/* What every part of leaktrace's kernel side shares: knobs, the ring buffer,
 * counters, the per-CPU record scratch, and how records are sent. */
#ifndef LEAKTRACE_COMMON_H
#define LEAKTRACE_COMMON_H

#ifndef container_of
#define container_of(ptr, type, member) ((type *)((void *)(ptr) - offsetof(type, member)))
#endif

/* Knobs, set from Go before load. Branches on them are pruned by the
 * verifier: a program pays only for the mode it was loaded in. */
const volatile __u32 trace_all = 0;      /* agent: every process on the host */
const volatile __u32 stack_bytes = 2048; /* user stack copied per creation event */
const volatile __u32 self_tgid = 0;      /* leaktrace itself: never traced */
/* The reader is woken only once this much is pending (or for records it
 * must see at once): a wakeup per record costs the traced program more than
 * the record itself. Go polls on a short deadline for the rest. */
const volatile __u32 wakeup_bytes = 256 << 10;
/* An open closed by the same thread's very next syscall never leaves the
 * kernel (pair.h). */
const volatile __u32 pair_in_kernel = 0;
/* The reader keeps live processes only (the agent): what a process had
 * mapped as it ended is settled in the kernel, never sent (pair.h), and
 * exec and exit do not wake it (submit_now). */
const volatile __u32 live_only = 0;
/* sched_process_exit passes group_dead (Linux 6.16+); older kernels pass
 * only the task, and the program must not read past it. */
const volatile __u32 exit_has_group_dead = 0;

static __always_inline __u64 min_u64(__u64 a, __u64 b)
{
	return a < b ? a : b;
}

static __always_inline __u64 max_u64(__u64 a, __u64 b)
{
	return a > b ? a : b;
}

#define EBADF 9
#define ENFILE 23
#define EMFILE 24
#define EINPROGRESS 115

#define F_DUPFD 0
#define F_DUPFD_CLOEXEC 1030
#define O_CLOEXEC 02000000
#define MSG_CMSG_CLOEXEC 0x40000000
#define PROT_EXEC 0x4
#define CLOSE_RANGE_UNSHARE (1U << 1)
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#define WNOWAIT 0x01000000
#define TS_COMPAT 0x0002 /* x86 thread_info.status: in a 32-bit syscall */

/* A syscall's arguments, parked at enter until exit. */
struct inflight {
	__u64 args[6];
	__u64 nr;
	__u64 ts; /* enter time: orders a release against a racing open of the same fd */
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20); /* resized from Go */
} events SEC(".maps");

/* One row per x86-64 syscall number, filled from tracer/syscalls.go. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LT_SYS_MAX);
	__type(key, __u32);
	__type(value, struct lt_sys);
} sys_table SEC(".maps");

/* Syscall arguments parked at enter until exit, in the task itself: task
 * storage is a pointer away, where a hash keyed by tid costs an insert and a
 * delete per syscall. nr == 0 (read, never parked) marks it empty. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct inflight);
} inflight SEC(".maps");

/* Keys of one-slot per-CPU maps, from .rodata, not the stack: the rule
 * walk and the Python walk are on Linux 6.1's bound for the stack of a
 * call chain. */
const __u32 slot0 = 0;
const __u32 slot1 = 1;

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
	struct lt_map_event map;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, union scratch);
} scratch SEC(".maps");

static __always_inline void count_n(__u32 which, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &which);
	if (v)
		*v += n;
}

static __always_inline void count(__u32 which) { count_n(which, 1); }

static __always_inline const struct lt_sys *sys_row(long nr)
{
	__u32 k = (__u32)nr;
	if (nr < 0 || nr >= LT_SYS_MAX)
		return NULL;
	return bpf_map_lookup_elem(&sys_table, &k);
}

static __always_inline union scratch *scratch_get(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&scratch, &zero);
}

/* site_mix folds a word into a site's hash (struct lt_stack.site). */
static __always_inline __u64 site_mix(__u64 h, __u64 pc)
{
	h = (h ^ pc) * 0x9e3779b97f4a7c15ULL;
	return h ^ (h >> 29);
}

/* current_files is the current task's fd table: the identity records carry. */
static __always_inline __u64 current_files(void)
{
	struct task_struct *task = bpf_get_current_task_btf();
	return (__u64)task->files;
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

static __always_inline __u64 wakeup_flag(bool now)
{
	if (now || bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

/* output sends size bytes of rec (already bounded by the caller); false
 * when the ring buffer was full. */
static __always_inline bool output(void *rec, __u64 size, bool now)
{
	if (bpf_ringbuf_output(&events, rec, size, wakeup_flag(now))) {
		count(LT_CNT_RINGBUF_FULL);
		return false;
	}
	count(LT_CNT_EVENTS);
	count_n(LT_CNT_EVENT_BYTES, size);
	return true;
}

static __always_inline bool submit_flags(void *rec, __u64 size, bool now)
{
	/* Bound for the verifier; the real size is at most the union's. */
	if (size > sizeof(union scratch))
		size = sizeof(union scratch);
	if (size < sizeof(struct lt_header))
		size = sizeof(struct lt_header);
	((struct lt_header *)rec)->size = size;
	return output(rec, size, now);
}

static __always_inline bool submit(void *rec, __u64 size) { return submit_flags(rec, size, false); }

/* Records the reader should see promptly: exec (Go reads the new image's
 * inherited fds in /proc while it lives), process exit (run and attach end
 * on it). A reader of live processes only waits for its poll: on a host
 * starting processes, a wakeup each cost the agent more than the records. */
static __always_inline bool submit_now(void *rec, __u64 size) { return submit_flags(rec, size, !live_only); }

/* in_compat reports whether the current task is in a 32-bit syscall, whose
 * numbers and argument layouts are not the ones sys_table describes. */
static __always_inline bool in_compat(void)
{
	struct task_struct *task = bpf_get_current_task_btf();
	if (!bpf_core_field_exists(task->thread_info.status))
		return false;
	return task->thread_info.status & TS_COMPAT;
}

#endif
