/* Memory mappings as handles: mmap and brk growth create them (with the
 * Python and native stack that asked), munmap and brk shrinking release
 * them, mremap moves them. Only what the syscall did is sent: which pieces
 * of which mapping a range touches is worked out in Go (aggregator), where
 * the ranges are kept. */
#ifndef LEAKTRACE_MAPPING_H
#define LEAKTRACE_MAPPING_H

#define MAP_SHARED 0x01
#define MAP_FIXED 0x10
#define MAP_ANONYMOUS 0x20
#define MREMAP_DONTUNMAP 4

/* brk_now is the current task's program break: brk's enter parks it, as the
 * syscall returns only the new one. */
static __always_inline __u64 brk_now(void)
{
	struct task_struct *task = bpf_get_current_task_btf();
	return BPF_CORE_READ(task, mm, brk);
}

static __always_inline struct lt_map_event *map_event(__u16 type, __u16 nr)
{
	union scratch *s = scratch_get();
	if (!s)
		return NULL;
	struct lt_map_event *e = &s->map;
	fill_header(&e->h, type, nr);
	e->addr = 0;
	e->len = 0;
	e->old_addr = 0;
	e->old_len = 0;
	e->ino = 0;
	e->flags = 0;
	e->prot = 0;
	e->name[0] = 0;
	return e;
}

/* map_new sends a creation record with its Python frames and user stack.
 * Global: one copy of the stack capture for the verifier. */
__noinline int map_new(struct lt_map_event *e)
{
	if (!e)
		return 0;
	__u64 py = py_walk(&e->h);
	int n = site_stack(&e->stack, py_hash(py));
	__u64 size = offsetof(struct lt_map_event, stack) + stack_part(n);
	if (may_park_map(e) && park_map(size))
		return 0;
	if (!(e->stack.flags & LT_STK_SITE))
		py_send(py); /* the frames go just ahead of their record */
	submit_stacked(e, size, &e->stack);
	return 0;
}

/* mapping_exit completes mmap, munmap, mremap and brk. Global: verified once. */
__noinline int mapping_exit(struct inflight *in, __u8 cls, long ret)
{
	struct lt_map_event *e;

	if (!in)
		return 0;
	switch (cls) {
	case LT_SYS_MMAP:
		if (ret < 0 && ret > -4096)
			return 0;
		if (in->args[3] & MAP_FIXED) /* it may have replaced one */
			park_flush_maps_in(bpf_get_current_pid_tgid() >> 32, (__u64)ret, (__u64)ret + in->args[1]);
		e = map_event(LT_EV_MAP_NEW, in->nr);
		if (!e)
			return 0;
		e->addr = (__u64)ret;
		e->len = in->args[1];
		e->prot = in->args[2];
		if (in->args[3] & MAP_SHARED)
			e->flags |= LT_MAP_SHARED;
		if (!(in->args[3] & MAP_ANONYMOUS) && (int)in->args[4] >= 0) {
			struct file *f = fd_file(bpf_get_current_task_btf(), (int)in->args[4]);
			if (f) {
				e->flags |= LT_MAP_FILE;
				e->ino = BPF_CORE_READ(f, f_inode, i_ino);
				bpf_probe_read_kernel_str(e->name, sizeof(e->name), BPF_CORE_READ(f, f_path.dentry, d_name.name));
			}
		}
		return map_new(e);
	case LT_SYS_MUNMAP: {
		if (ret != 0)
			return 0;
		__u32 tgid = bpf_get_current_pid_tgid() >> 32;
		/* Python's finalization unmapping is no pair: the program held
		 * the memory to its end. */
		if (!py_close_flags(tgid) && park_take_munmap(tgid, in->args[0], in->args[1], in->ts))
			return 0;
		park_flush_maps_in(tgid, in->args[0], in->args[0] + in->args[1]);
		e = map_event(LT_EV_MAP_FREE, in->nr);
		if (!e)
			return 0;
		e->addr = in->args[0];
		e->len = in->args[1];
		e->flags |= py_close_flags(e->h.pid);
		submit(e, offsetof(struct lt_map_event, name));
		return 0;
	}
	case LT_SYS_MREMAP:
		if (ret < 0 && ret > -4096)
			return 0;
		/* The old range and the new: one walk over what holds both. */
		park_flush_maps_in(bpf_get_current_pid_tgid() >> 32, min_u64(in->args[0], (__u64)ret),
				   max_u64(in->args[0] + in->args[1], (__u64)ret + in->args[2]));
		e = map_event(LT_EV_MAP_MOVE, in->nr);
		if (!e)
			return 0;
		e->old_addr = in->args[0];
		e->old_len = in->args[1];
		e->len = in->args[2];
		e->addr = (__u64)ret;
		if (in->args[3] & MREMAP_DONTUNMAP)
			e->flags |= LT_MAP_DONTUNMAP;
		submit(e, offsetof(struct lt_map_event, name));
		return 0;
	case LT_SYS_MPROTECT:
		/* Reserved address space (PROT_NONE) made accessible is memory
		 * committed here: glibc grows a thread's heap so. Which parts
		 * were reserved is known in Go, so every change is sent. */
		if (ret != 0)
			return 0;
		park_flush_maps_in(bpf_get_current_pid_tgid() >> 32, in->args[0], in->args[0] + in->args[1]);
		e = map_event(LT_EV_MAP_PROT, in->nr);
		if (!e)
			return 0;
		e->addr = in->args[0];
		e->len = in->args[1];
		e->prot = in->args[2];
		if (e->prot & 7)
			return map_new(e);
		submit(e, offsetof(struct lt_map_event, name));
		return 0;
	case LT_SYS_BRK: {
		/* brk returns the new break, or the old one when it failed. */
		__u64 old = in->args[1], now = (__u64)ret;
		if (now == old || !old)
			return 0;
		park_flush_maps_in(bpf_get_current_pid_tgid() >> 32, min_u64(old, now), max_u64(old, now));
		if (now > old) {
			e = map_event(LT_EV_MAP_NEW, in->nr);
			if (!e)
				return 0;
			e->addr = old;
			e->len = now - old;
			e->flags = LT_MAP_BRK;
			e->prot = 3; /* PROT_READ|PROT_WRITE */
			return map_new(e);
		}
		e = map_event(LT_EV_MAP_FREE, in->nr);
		if (!e)
			return 0;
		e->addr = now;
		e->len = old - now;
		e->flags = LT_MAP_BRK | py_close_flags(e->h.pid);
		submit(e, offsetof(struct lt_map_event, name));
		return 0;
	}
	}
	return 0;
}

#endif
