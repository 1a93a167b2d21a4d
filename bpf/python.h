/* Python frames at a syscall, and interpreter shutdown at close: included by
 * leaktrace.bpf.c after submit(). Only processes that Go has found to run
 * CPython (an entry in py_procs, with offsets for their version) pay for it.
 *
 * The thread state is found by walking the interpreter's thread list for
 * the one whose native_thread_id is the current tid, not through
 * _PyRuntime's "current thread state": that is cleared while the GIL is
 * released, which is exactly around the blocking syscalls we trace. */
#ifndef LEAKTRACE_PYTHON_H
#define LEAKTRACE_PYTHON_H

#define MAX_PY_PROCS 16384

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PY_PROCS);
	__type(key, __u32);
	__type(value, struct lt_py_proc);
} py_procs SEC(".maps");

/* The Python stack is built here while the fd record sits in scratch. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lt_py_stack_event);
} py_scratch SEC(".maps");

/* Code objects whose names were sent: a direct-mapped table of tags, so
 * that every frame of every stack is checked for a cheap inlined array
 * lookup (an import runs 40 frames deep, its new module body far from the
 * innermost frame). A tag covers process, address, filename and first line:
 * a freed code object's address is soon another's. Two objects sharing a
 * slot only cost their names being sent again. */
#define PY_SEEN_SLOTS 65536

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PY_SEEN_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} py_seen SEC(".maps");

/* Where a frame's fields and a code object's are read at once (struct
 * lt_py_proc's windows): per CPU, as the walk is. */
struct py_win {
	__u8 frame[LT_PY_WIN + 8];
	__u8 code[LT_PY_WIN + 8];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct py_win);
} py_wins SEC(".maps");

/* win_u64 is the word at off in a window read (off from the window's
 * start; Go keeps every field inside it). */
static __always_inline __u64 win_u64(const __u8 *b, __u32 off)
{
	return *(const __u64 *)(b + (off & (LT_PY_WIN - 1)));
}

static __always_inline __u64 py_code_tag(__u32 tgid, __u64 code, __u64 ident, __s32 firstlineno)
{
	__u64 x = code ^ (ident * 0x9e3779b97f4a7c15ULL) ^ ((__u64)tgid << 32 | (__u32)firstlineno);

	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return x | 1; /* never the empty slot's 0 */
}

const struct lt_py_stack_event *unused_py_stack __attribute__((unused));
const struct lt_py_code_event *unused_py_code __attribute__((unused));
const struct lt_py_proc *unused_py_proc __attribute__((unused));

static __always_inline __u64 py_read_ptr(__u64 addr)
{
	__u64 v = 0;

	if (bpf_probe_read_user(&v, sizeof(v), (void *)addr))
		return 0;
	return v;
}

/* py_frame_of is the innermost frame from a thread state's frame field f:
 * one hop through the _PyCFrame on 3.11 and 3.12, f itself from 3.13 on. */
static __always_inline __u64 py_frame_of(const struct lt_py_proc *pp, __u64 f)
{
	if (f && (pp->flags & LT_PY_L_CFRAME))
		f = py_read_ptr(f + pp->cframe_current);
	return f;
}

/* py_current_frame is a thread state's innermost frame. */
static __always_inline __u64 py_current_frame(const struct lt_py_proc *pp, __u64 ts)
{
	return py_frame_of(pp, py_read_ptr(ts + pp->tstate_frame));
}

/* The thread state a task's last walk found, for its next one: a thread
 * pool's thread, or a main thread behind it in the list, is found with a
 * check instead of a walk of every thread ahead of it. */
struct py_tcache {
	__u64 runtime; /* of the interpreter it was found in (struct lt_py_proc) */
	__u64 ts;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct py_tcache);
} py_tstates SEC(".maps");

/* py_cached_frame is the innermost frame of thread state ts if it is still
 * tid's and still in the interpreter's list (its prev links to it, or it
 * heads the list: a freed state's first words are the allocator's), else
 * 0 (walk the list). Global: off py_walk's stack. */
__noinline __u64 py_cached_frame(const struct lt_py_proc *pp, __u64 ts, __u32 tid)
{
	struct py_win *win = bpf_map_lookup_elem(&py_wins, &slot0);
	if (!pp || !win || !ts || !pp->tstate_win_len)
		return 0;
	__u32 tw = pp->tstate_win;
	if (bpf_probe_read_user(win->frame, pp->tstate_win_len & (LT_PY_WIN - 1), (void *)(ts + tw)))
		return 0;
	if (win_u64(win->frame, pp->tstate_native_tid - tw) != tid)
		return 0;
	__u64 prev = win_u64(win->frame, pp->tstate_prev - tw);
	__u64 f = win_u64(win->frame, pp->tstate_frame - tw);
	if (prev) {
		if (py_read_ptr(prev + pp->tstate_next) != ts)
			return 0;
	} else {
		__u64 interp = py_read_ptr(pp->runtime + pp->rt_interp_head);
		if (!interp || py_read_ptr(interp + pp->interp_tstate_head) != ts)
			return 0;
	}
	return py_frame_of(pp, f);
}

/* The state of py_walk's loops, one struct for all of them: Linux 6.1
 * bounds the stack of a whole call chain, and this one is at the bound. */
struct py_walk_state {
	const struct lt_py_proc *pp;
	struct lt_py_stack_event *e;
	struct py_win *win; /* where the frame walk reads each frame and code object */
	__u64 ts;    /* the thread state looked at */
	__u64 frame; /* innermost frame of the thread state found, then the frame walked */
	__u32 tid;
	__u32 tgid;
	__u32 found;
	__u32 fresh; /* a code object not seen before */
};

/* A thread state another thread is creating carries its creator's tid until
 * the new thread binds it (3.11), and has no frame yet: the creator's own
 * state is the one with frames, so a match without frames is passed over. */
static long py_thread_step(__u64 i, void *ctx)
{
	struct py_walk_state *w = ctx;

	if (!w->ts)
		return 1;
	if (py_read_ptr(w->ts + w->pp->tstate_native_tid) == w->tid) {
		w->found = 1;
		w->frame = py_current_frame(w->pp, w->ts);
		if (w->frame)
			return 1;
	}
	w->ts = py_read_ptr(w->ts + w->pp->tstate_next);
	return 0;
}

/* py_read_str copies a compact ASCII str's bytes (every identifier and most
 * paths the compiler makes) into dst; false for anything else or too long. */
static __always_inline bool py_read_str(const struct lt_py_proc *pp, __u64 str, char *dst, __u32 max, __u32 *len)
{
	__u64 n = py_read_ptr(str + pp->str_length);
	__u32 state = 0;

	*len = 0;
	if (!str || bpf_probe_read_user(&state, sizeof(state), (void *)(str + pp->str_state)))
		return false;
	/* PEP 393 state bits: compact (5) and ascii (6). */
	if ((state & 0x60) != 0x60 || n == 0 || n > max)
		return false;
	if (bpf_probe_read_user(dst, n, (void *)(str + pp->str_ascii_data)))
		return false;
	*len = n;
	return true;
}

/* py_send_code sends what naming the code object at code needs, read now,
 * while it and its process certainly exist. */
static __always_inline void py_send_code(const struct lt_py_proc *pp, const struct lt_header *h,
				    __u64 code, __u64 ident, __s32 firstlineno)
{
	struct lt_py_code_event *c;

	if (!pp || !h)
		return;
	c = bpf_ringbuf_reserve(&events, sizeof(*c), 0);
	if (!c) {
		count(LT_CNT_RINGBUF_FULL);
		return;
	}
	__builtin_memcpy(&c->h, h, sizeof(c->h));
	c->h.type = LT_EV_PY_CODE;
	c->h.size = sizeof(*c);
	c->code = code;
	c->ident = ident;
	c->firstlineno = firstlineno;
	c->flags = 0;
	c->linetable_len = 0;
	if (py_read_str(pp, py_read_ptr(code + pp->code_qualname), c->name, LT_PY_NAME_MAX, &c->name_len))
		c->flags |= LT_PY_CODE_NAME;
	if (py_read_str(pp, ident, c->file, LT_PY_FILE_MAX, &c->file_len))
		c->flags |= LT_PY_CODE_FILE;
	__u64 lt = py_read_ptr(code + pp->code_linetable);
	__u64 n = lt ? py_read_ptr(lt + pp->bytes_size) : 0;
	/* A long table's start still gives the lines of the code's start. */
	if (n > LT_PY_LINETABLE_MAX)
		n = LT_PY_LINETABLE_MAX;
	if (lt && n > 0 &&
	    !bpf_probe_read_user(c->linetable, n, (void *)(lt + pp->bytes_data))) {
		c->linetable_len = n;
		c->flags |= LT_PY_CODE_LINETABLE;
	}
	bpf_ringbuf_submit(c, 0);
	count(LT_CNT_EVENTS);
	count_n(LT_CNT_EVENT_BYTES, sizeof(*c));
}

/* One frame per call, innermost first. The layout's marker byte says either
 * "this frame began an eval call" (3.11) or "this is the shim below the
 * frame that began one" (3.12+, LT_PY_L_SHIM): the shim is not sent, the
 * frame sent before it is marked instead. */
static long py_frame_step(__u64 i, void *ctx)
{
	struct py_walk_state *w = ctx;
	const struct lt_py_proc *pp = w->pp;
	struct lt_py_stack_event *e = w->e;
	struct lt_py_frame *f;
	struct py_win *win = w->win;

	if (!w->frame || !win)
		return 1;
	/* The frame's fields in one read, then the code object's in another. */
	__u32 fw = pp->frame_win, cw = pp->code_win;
	if (bpf_probe_read_user(win->frame, pp->frame_win_len & (LT_PY_WIN - 1), (void *)(w->frame + fw))) {
		e->status |= LT_PY_FAULT;
		return 1;
	}
	__u8 marker = win->frame[(pp->frame_marker - fw) & (LT_PY_WIN - 1)];
	__u64 previous = win_u64(win->frame, pp->frame_previous - fw);
	bool marked = pp->marker_min && marker >= pp->marker_min;
	if (marked && (pp->flags & LT_PY_L_SHIM)) {
		if (e->depth > 0)
			e->frames[(e->depth - 1) & (LT_PY_FRAMES_MAX - 1)].flags |= LT_PY_FRAME_ENTRY;
		w->frame = previous;
		return 0;
	}
	if (e->depth >= LT_PY_FRAMES_MAX) {
		e->status |= LT_PY_TRUNCATED;
		return 1;
	}
	f = &e->frames[e->depth & (LT_PY_FRAMES_MAX - 1)];
	f->code = win_u64(win->frame, pp->frame_code - fw) & pp->code_mask;
	f->prev_instr = win_u64(win->frame, pp->frame_instr - fw);
	f->firstlineno = 0;
	f->ident = 0;
	f->flags = marked ? LT_PY_FRAME_ENTRY : 0;
	if (!f->code) {
		e->status |= LT_PY_FAULT;
		return 1;
	}
	if (!bpf_probe_read_user(win->code, pp->code_win_len & (LT_PY_WIN - 1), (void *)(f->code + cw))) {
		f->firstlineno = *(const __s32 *)(win->code + ((pp->code_firstlineno - cw) & (LT_PY_WIN - 1)));
		f->ident = win_u64(win->code, pp->code_ident - cw);
	}
	__u64 tag = py_code_tag(w->tgid, f->code, f->ident, f->firstlineno);
	__u32 slot = tag >> 32 & (PY_SEEN_SLOTS - 1);
	__u64 *seen = bpf_map_lookup_elem(&py_seen, &slot);
	if (seen && *seen != tag) {
		*seen = tag;
		py_send_code(pp, &e->h, f->code, f->ident, f->firstlineno);
		w->fresh = 1;
	}
	e->depth++;
	w->frame = previous;
	return 0;
}

/* py_hash_step folds frame i into e->hash; a loop of its own after the
 * walk, as the walk's frames are at Linux 6.1's bound of a call chain's
 * stack. */
static long py_hash_step(__u64 i, void *ctx)
{
	struct lt_py_stack_event *e = ((struct py_walk_state *)ctx)->e;
	struct lt_py_frame *f = &e->frames[i & (LT_PY_FRAMES_MAX - 1)];

	if (i >= e->depth)
		return 1;
	e->hash = site_mix(e->hash, f->code);
	e->hash = site_mix(e->hash, f->prev_instr);
	e->hash = site_mix(e->hash, f->ident ^ ((__u64)(__u32)f->firstlineno << 32) ^ f->flags);
	return 0;
}

/* Defined with the process memo (stack.h). */
int py_absent(__u32 tgid);
static __always_inline const struct lt_py_proc *py_proc_of(__u32 tgid);

/* py_walk builds in py_scratch the Python frames of the current thread for
 * the record whose header is h, and returns the record's size: 0 for a
 * process not known to run Python. A global function: verified once, not
 * at each caller. */
__noinline int py_walk(const struct lt_header *h)
{
	const struct lt_py_proc *pp;
	struct lt_py_stack_event *e;
	__u32 zero = 0;

	if (!h)
		return 0;
	__u32 pid = h->pid;
	pp = py_proc_of(pid);
	if (!pp)
		return 0;
	e = bpf_map_lookup_elem(&py_scratch, &zero);
	if (!e)
		return 0;
	__builtin_memcpy(&e->h, h, sizeof(e->h));
	e->h.type = LT_EV_PY_STACK;
	e->depth = 0;
	e->status = 0;
	e->hash = 0;
	/* A handle made once finalization began is the exit-time code's own
	 * (C destructors, preloaded libraries): its close then is no leak. */
	if (py_read_ptr(pp->runtime + pp->rt_finalizing))
		e->status |= LT_PY_FINALIZING;

	struct py_walk_state w = {
		.pp = pp,
		.e = e,
		.tid = h->tid,
		.tgid = pid,
	};
	struct task_struct *task = bpf_get_current_task_btf();
	struct py_tcache *tc = bpf_task_storage_get(&py_tstates, task, 0, 0);
	if (tc && tc->runtime == pp->runtime)
		w.frame = py_cached_frame(pp, tc->ts, w.tid);
	count(LT_CNT_PY_STACKS);
	if (w.frame) {
		w.found = 1;
		count(LT_CNT_PY_THREAD_KNOWN);
	} else {
		__u64 interp = py_read_ptr(pp->runtime + pp->rt_interp_head);
		w.ts = interp ? py_read_ptr(interp + pp->interp_tstate_head) : 0;
		bpf_loop(LT_PY_THREADS_MAX, py_thread_step, &w, 0);
		if (w.frame && pp->tstate_win_len) {
			if (!tc)
				tc = bpf_task_storage_get(&py_tstates, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
			if (tc) {
				tc->runtime = pp->runtime;
				tc->ts = w.ts;
			}
		}
	}
	bool fresh = true;
	if (!w.found) {
		e->status |= LT_PY_NO_TSTATE;
	} else {
		/* Shims take a step each: at most one per frame sent. */
		w.win = bpf_map_lookup_elem(&py_wins, &slot0);
		bpf_loop(2 * LT_PY_FRAMES_MAX + 1, py_frame_step, &w, 0);
		fresh = w.fresh;
	}
	/* What Go learns from the frames but the fresh bit is in the hash. */
	bpf_loop(LT_PY_FRAMES_MAX, py_hash_step, &w, 0);
	e->hash = site_mix(e->hash, e->status | 0x100000000ULL);
	if (fresh)
		e->status |= LT_PY_FRESH;
	__u64 size = offsetof(struct lt_py_stack_event, frames) +
		     (__u64)(e->depth & (2 * LT_PY_FRAMES_MAX - 1)) * sizeof(struct lt_py_frame);
	if (size > sizeof(*e))
		size = sizeof(*e);
	e->h.size = size;
	return size;
}

/* py_send sends what py_walk built (size bytes). Go reads new code objects
 * from the live process: a fresh one wakes it now. */
static __always_inline void py_send(__u64 size)
{
	__u32 zero = 0;
	struct lt_py_stack_event *e = bpf_map_lookup_elem(&py_scratch, &zero);

	if (!e || !size)
		return;
	if (size > sizeof(*e))
		size = sizeof(*e);
	output(e, size, e->status & LT_PY_FRESH);
}

/* py_hash is the hash of the frames py_walk built (size bytes), 0 for none. */
static __always_inline __u64 py_hash(__u64 size)
{
	__u32 zero = 0;
	struct lt_py_stack_event *e = bpf_map_lookup_elem(&py_scratch, &zero);

	return e && size ? e->hash : 0;
}

/* py_close_flags marks a close made while the interpreter finalizes: the
 * handle was still referenced when the program ended, and it is the
 * interpreter's shutdown, not the program, that releases it. */
static __always_inline __u32 py_close_flags(__u32 tgid)
{
	const struct lt_py_proc *pp = py_proc_of(tgid);

	if (!pp)
		return 0;
	return py_read_ptr(pp->runtime + pp->rt_finalizing) ? LT_FD_PY_SHUTDOWN : 0;
}

/* A forked child runs the same interpreter at the same addresses until it
 * execs. */
static __always_inline bool py_fork(__u32 ptgid, __u32 ctgid)
{
	const struct lt_py_proc *pp = bpf_map_lookup_elem(&py_procs, &ptgid);

	return pp && ptgid != ctgid && !bpf_map_update_elem(&py_procs, &ctgid, pp, BPF_ANY);
}

/* exec replaces the image; exit ends the process. */
static __always_inline void py_forget(__u32 tgid)
{
	bpf_map_delete_elem(&py_procs, &tgid);
}

#endif
