/* Tasks as handles (threads, child processes) and the events that end or
 * replace a process: fork, exit, exec, exit_group, reaping by wait. Also the
 * executable mappings that symbolization needs. */
#ifndef LEAKTRACE_TASK_H
#define LEAKTRACE_TASK_H

#define AT_BASE 7
#define AT_ENTRY 9

static __always_inline int exit_group_enter(long code)
{
	union scratch *s = scratch_get();
	if (!s)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	fill_header(&s->task.h, LT_EV_EXIT_GROUP, 0);
	s->task.exit_code = (int)code;
	s->task.child_pid = id >> 32;
	s->task.child_tid = (__u32)id;
	submit(&s->task, offsetof(struct lt_task_event, stack));
	return 0;
}

static __always_inline int mmap_exit(struct inflight *in, long ret)
{
	if (ret < 0 && ret > -4096)
		return 0;
	if (!(in->args[2] & PROT_EXEC) || (int)in->args[4] < 0)
		return 0;

	struct file *f = fd_file(bpf_get_current_task_btf(), (int)in->args[4]);
	if (!f)
		return 0;
	img_mapped(bpf_get_current_pid_tgid() >> 32);
	union scratch *s = scratch_get();
	if (!s)
		return 0;
	struct lt_mmap_event *e = &s->mmap;
	fill_header(&e->h, LT_EV_MMAP, in->nr);
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
static __always_inline int wait_exit(struct inflight *in, __u8 cls, long ret)
{
	__u32 child = 0;

	if (cls == LT_SYS_WAIT4) {
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
	union scratch *s = scratch_get();
	if (!s)
		return 0;
	struct lt_task_event *e = &s->task;
	fill_header(&e->h, LT_EV_REAP, in->nr);
	e->child_pid = child;
	e->child_tid = child;
	submit(e, offsetof(struct lt_task_event, stack));
	return 0;
}

/* task_new sends the creation of child by the current task. Global: the
 * stack capture and Python walk are verified once. */
__noinline int task_new(struct lt_task_event *e, __u32 ptgid, __u32 ctgid, __u32 ctid, __u64 cfiles)
{
	if (!e)
		return 0;
	fill_header(&e->h, LT_EV_TASK_NEW, 0);
	e->child_pid = ctgid;
	e->child_tid = ctid;
	e->child_files = cfiles;
	e->is_thread = ctgid == ptgid;
	e->group_dead = 0;
	e->exit_code = 0;
	e->ppid = ptgid;
	e->autoreap = 0;
	if (py_fork(ptgid, ctgid))
		proc_changed(); /* a memo may say the child's tgid has none */
	__u64 py = py_walk(&e->h);
	int n = capture_stack(&e->stack, py_hash(py));
	if (!(e->stack.flags & LT_STK_SITE))
		py_send(py); /* the frames go just ahead of their record */
	submit_stacked(e, offsetof(struct lt_task_event, stack) + stack_part(n), &e->stack);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(sched_process_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = parent->tgid;
	if (!is_traced(ptgid))
		return 0;
	__u32 ctgid = child->tgid;
	if (ctgid != ptgid && (!trace_all || filter_active))
		set_traced(ctgid, 1);
	if (ctgid != ptgid) {
		park_flush_maps(ptgid); /* the child has copies of its mappings */
		img_fork(ptgid, ctgid); /* the same code at the same addresses */
	}
	/* A child with a copy of the parent's table: parked opens go first. */
	__u64 pfiles = (__u64)parent->files;
	if (pfiles != (__u64)BPF_CORE_READ(child, files))
		park_flush_table(pfiles);
	union scratch *s = scratch_get();
	if (!s)
		return 0;
	return task_new(&s->task, ptgid, ctgid, child->pid, (__u64)BPF_CORE_READ(child, files));
}

/* autoreaps: the parent ignores SIGCHLD or set SA_NOCLDWAIT, so the kernel
 * reaps the child itself and no zombie is left. */
static __always_inline __u32 autoreaps(struct task_struct *parent)
{
	struct sighand_struct *sh = BPF_CORE_READ(parent, sighand);
	__u64 handler = (__u64)BPF_CORE_READ(sh, action[16].sa.sa_handler);
	__u64 flags = BPF_CORE_READ(sh, action[16].sa.sa_flags);
	return handler == 1 || (flags & 2);
}

/* sched_process_exit's arguments are (task) before Linux 6.16 and (task,
 * group_dead) since: group_dead is read only where it exists (a branch the
 * verifier prunes), else from signal->live, which the exiting thread has
 * already decremented at this tracepoint. */
SEC("tp_btf/sched_process_exit")
int sched_process_exit(__u64 *ctx)
{
	struct task_struct *task = (struct task_struct *)ctx[0];
	__u32 group_dead;

	__u32 tgid = task->tgid;
	if (exit_has_group_dead)
		group_dead = !!(ctx[1] & 0xff);
	else
		group_dead = BPF_CORE_READ(task, signal, live.counter) == 0;
	bool traced = is_traced(tgid);
	/* The table ends with its process: what is parked was held to the end. */
	if (group_dead && traced) {
		park_flush_table((__u64)task->files);
		park_end_maps(tgid, true);
	}
	/* The pid may be reused: whatever filter state it had goes with it
	 * (the filtered agent's cached verdicts too, traced or not). */
	if (group_dead && (!trace_all || filter_active))
		set_traced(tgid, 0);
	if (!traced)
		return 0;

	union scratch *s = scratch_get();
	if (!s)
		return 0;
	struct lt_task_event *e = &s->task;
	fill_header(&e->h, LT_EV_TASK_EXIT, 0);
	e->child_pid = tgid;
	e->child_tid = task->pid;
	e->child_files = 0;
	e->is_thread = 0;
	e->group_dead = group_dead;
	e->exit_code = task->exit_code;
	struct task_struct *parent = task->real_parent;
	e->ppid = BPF_CORE_READ(parent, tgid);
	e->autoreap = group_dead ? autoreaps(parent) : 0;
	submit_flags(e, offsetof(struct lt_task_event, stack), group_dead && !live_only);
	if (group_dead) {
		py_forget(tgid);
		img_forget(tgid);
	}
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(sched_process_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 tgid = task->tgid;
	forget_verdict(tgid);
	if (!is_traced(tgid))
		return 0;
	/* Before the exec record, whose table has cloexec fds closed; the
	 * old image's mappings waiting end with it, settled. */
	park_flush_table((__u64)task->files);
	park_end_maps(tgid, false);
	union scratch *s = scratch_get();
	if (!s)
		return 0;
	struct lt_exec_event *e = &s->exec;
	fill_header(&e->h, LT_EV_EXEC, 0);
	e->old_tid = old_pid;
	py_forget(tgid);
	img_forget(tgid);

	/* The new image's auxv: where the executable and ld.so were loaded. */
	struct mm_struct *mm = BPF_CORE_READ(task, mm);
	e->at_entry = 0;
	e->at_base = 0;
	e->mnt_ns = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
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

#endif

