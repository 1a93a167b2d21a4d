/* fd creation and release at syscall exit, driven by the syscall's row in
 * sys_table: what it creates, which argument is its path, its cloexec flag,
 * where a pair's fds land. */
#ifndef LEAKTRACE_FDOPS_H
#define LEAKTRACE_FDOPS_H

static __always_inline struct lt_fd_event *fd_event(__u16 type, __u16 nr)
{
	union scratch *s = scratch_get();
	if (!s)
		return NULL;
	struct lt_fd_event *e = &s->fd;
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
	e->file = 0;
	e->depth = 0;
	__builtin_memset(&e->sock, 0, sizeof(e->sock));
	e->name[0] = 0;
	e->path[0] = 0;
	e->stack.stack_len = 0;
	e->stack.kstack_len = 0;
	e->stack.flags = 0;
	return e;
}

/* park_pair parks a pipe's or a socketpair's ends apart: they are released
 * apart, so each waits as a record of its own (fd2 -1) for its own close,
 * and one that cannot wait leaves alone. Global: the second fd lives in a
 * frame of its own, off the deepest call chain (Linux 6.1 allows 512
 * bytes for all of it). */
__noinline int park_pair(struct lt_fd_event *e, __u64 size)
{
	if (!e)
		return 0;
	int fd2 = e->fd2;
	e->fd2 = -1;
	if (!park(size))
		submit_stacked(e, size, &e->stack);
	e->fd = fd2;
	if (!park(size))
		submit_stacked(e, size, &e->stack);
	return 1;
}

/* submit_open sends (or parks, pair.h) a creation record with the Python
 * frames and the user stack that made it. A global function: one copy of
 * the stack capture and the Python walk for the verifier. */
__noinline int submit_open(struct lt_fd_event *e, int cls)
{
	if (!e)
		return 0;
	__u64 py = py_walk(&e->h);
	int n = site_stack(&e->stack, py_hash(py));
	if (e->stack.flags & LT_STK_SITE)
		py = 0; /* Go has the site's Python frames as well */
	__u64 size = offsetof(struct lt_fd_event, stack) + stack_part(n);
	if (may_park(e, cls) && (cls == LT_SYS_PAIR ? park_pair(e, size) : park(size)))
		return 0;
	py_send(py); /* the frames go just ahead of their record */
	submit_stacked(e, size, &e->stack);
	return 0;
}

/* The process hit its fd limit (EMFILE) or the host's (ENFILE): the agent
 * alerts at once, without waiting for a scrape. */
static __always_inline int submit_fd_fail(__u16 nr, long ret)
{
	/* The snapshot Go takes now must see the table whole. */
	park_flush_table(current_files());
	struct lt_fd_event *e = fd_event(LT_EV_FD_FAIL, nr);
	if (!e)
		return 0;
	e->ret = ret;
	submit(e, offsetof(struct lt_fd_event, sock));
	return 0;
}

static __always_inline __u64 arg_at(const struct inflight *in, __u32 i)
{
	if (i >= 6)
		return 0;
	return in->args[i];
}

/* sys_cloexec reports whether the syscall asked for a close-on-exec fd. */
static __always_inline bool sys_cloexec(const struct inflight *in, const struct lt_sys *sys)
{
	if (sys->flags & LT_SYSF_CLOEXEC_ALWAYS)
		return true;
	if (sys->cloexec_arg >= 6)
		return false;
	__u64 v = arg_at(in, sys->cloexec_arg);
	if (sys->flags & LT_SYSF_CLOEXEC_HOW) {
		__u64 uptr = v;
		v = 0;
		bpf_probe_read_user(&v, sizeof(v), (void *)uptr);
	}
	return v & sys->cloexec_mask;
}

/* close_enter settles or sends a close of fd, wholly at its enter: the fd
 * is released on every outcome but EBADF (the fd not open, which the table
 * says now), and nothing the exit would add is needed. An open that gets
 * this number again returns after this time, so a record parked at the fd
 * now is the handle this close releases. A global function: enter hooks
 * stay small for the syscalls that only park their arguments. */
__noinline int close_enter(int fd, __u32 nr)
{
	struct file *f = fd_file(bpf_get_current_task_btf(), fd);
	if (!f)
		return 0;
	__u64 files = current_files();
	/* A close by Python's finalization is no pair: the program held the
	 * handle to its end. Its open goes first, then the close. */
	__u32 py = py_close_flags(bpf_get_current_pid_tgid() >> 32);
	if (py)
		park_flush_fd(fd);
	else if (park_take_close(files, fd))
		return 0;
	struct lt_fd_event *e = fd_event(LT_EV_FD_CLOSE, nr);
	if (!e)
		return 0;
	e->fd = fd;
	e->enter_ts = e->h.ts; /* at its enter */
	/* The file it releases: a creation on another thread whose exit comes
	 * after this entry, and found this file at the fd, made what this
	 * closes (its fd was installed before this close could find it). */
	e->file = (__u64)f;
	e->flags |= py;
	submit(e, offsetof(struct lt_fd_event, sock));
	return 0;
}

/* close_range_exit sends a close_range that succeeded. */
static __always_inline int close_range_exit(struct inflight *in, long ret)
{
	if (ret != 0)
		return 0;
	park_flush_table(current_files());
	struct lt_fd_event *e = fd_event(LT_EV_CLOSE_RANGE, in->nr);
	if (!e)
		return 0;
	e->fd = (int)in->args[0];
	e->fd2 = in->args[1] > 0x7fffffff ? 0x7fffffff : (int)in->args[1];
	if (in->args[2] & CLOSE_RANGE_UNSHARE)
		e->flags |= LT_FD_UNSHARE;
	if (in->args[2] & CLOSE_RANGE_CLOEXEC)
		e->flags |= LT_FD_ONLY_CLOEXEC;
	e->enter_ts = in->ts;
	e->ret = ret;
	e->flags |= py_close_flags(e->h.pid);
	submit(e, offsetof(struct lt_fd_event, sock));
	return 0;
}

/* fd_exit completes a followed fd syscall of class sys->class. A global
 * function: its body is verified once, not once per caller's state. */
__noinline int fd_exit(struct inflight *in, const struct lt_sys *sys, long ret)
{
	struct lt_fd_event *e;

	if (!in || !sys)
		return 0;
	__u8 cls = sys->class;
	__u16 nr = in->nr;

	/* A parked fd that this syscall reads or replaces leaves first. */
	switch (cls) {
	case LT_SYS_DUP_ONTO:
		park_flush_fd((int)in->args[1]);
		/* fall through */
	case LT_SYS_DUP:
		park_flush_fd((int)in->args[0]);
		break;
	case LT_SYS_FCNTL:
		if (in->args[1] == F_DUPFD || in->args[1] == F_DUPFD_CLOEXEC)
			park_flush_fd((int)in->args[0]);
		break;
	}

	switch (cls) {
	case LT_SYS_CLOSE_RANGE:
		return close_range_exit(in, ret);
	case LT_SYS_FCNTL:
		if (in->args[1] != F_DUPFD && in->args[1] != F_DUPFD_CLOEXEC)
			return 0;
		break;
	case LT_SYS_SOCK_ADDR:
		/* A socket got its addresses: describe it again. */
		if (ret != 0 && ret != -EINPROGRESS)
			return 0;
		e = fd_event(LT_EV_FD_UPDATE, nr);
		if (!e)
			return 0;
		e->fd = (int)in->args[0];
		e->ret = ret;
		describe_fd(e, 0);
		/* A socket still waiting in the kernel (connect right after
		 * socket, a client's usual way) takes its addresses there. */
		if (park_update_sock(current_files(), e))
			return 0;
		submit(e, offsetof(struct lt_fd_event, path));
		return 0;
	case LT_SYS_OPEN_OR_SAME:
		/* signalfd on an existing signalfd updates its mask and returns
		 * it: nothing is created, the original creation stays. */
		if ((int)in->args[0] >= 0 && ret == (int)in->args[0])
			return 0;
		break;
	case LT_SYS_DUP_ONTO:
		if (in->args[0] == in->args[1])
			return 0; /* dup2(fd, fd) changes nothing */
		break;
	}
	if (ret == -EMFILE || ret == -ENFILE)
		return submit_fd_fail(nr, ret);
	if (ret < 0)
		return 0;

	e = fd_event(LT_EV_FD_OPEN, nr);
	if (!e)
		return 0;
	e->enter_ts = in->ts;
	if (!in->ts)
		e->flags |= LT_FD_CHECKED; /* describe_fd says whether it is still there */
	e->ret = ret;
	e->arg0 = in->args[0];
	e->fd = (int)ret;
	if (sys->flags & LT_SYSF_PATH)
		read_path_arg(e, arg_at(in, sys->path_arg));
	if (cls == LT_SYS_FCNTL ? in->args[1] == F_DUPFD_CLOEXEC : sys_cloexec(in, sys))
		e->flags |= LT_FD_CLOEXEC;

	switch (cls) {
	case LT_SYS_PAIR: {
		int fds[2] = {-1, -1};
		if (bpf_probe_read_user(fds, sizeof(fds), (void *)arg_at(in, sys->pair_arg)))
			return 0;
		e->fd = fds[0];
		e->fd2 = fds[1];
		break;
	}
	case LT_SYS_DUP:
	case LT_SYS_DUP_ONTO:
	case LT_SYS_FCNTL:
		e->fd2 = (int)in->args[0]; /* source */
		break;
	}
	describe_fd(e, sys->flags & LT_SYSF_DPATH);
	submit_open(e, cls);
	return 0;
}

#endif
