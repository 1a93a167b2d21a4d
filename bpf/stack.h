/* The creating stack of a handle: user registers, a frame-pointer walk, and a copy of the top of the user stack so that Go can
 * unwind code without frame pointers through its CFI. */
#ifndef LEAKTRACE_STACK_H
#define LEAKTRACE_STACK_H

/* Our own frame-pointer walk. The kernel's (bpf_get_task_stack) follows
 * %rbp wherever it points: code that reuses %rbp as a general register
 * (gcc -O2, glibc's syscall wrappers' callers) sends it to unmapped
 * addresses, and each such read costs a page fault, microseconds under a
 * hypervisor. A frame here must be aligned, above the one before it and
 * within 8 MiB of sp, so a garbage %rbp ends the walk without a fault. */
struct fp_walk {
	__u64 *out;
	__u64 fp;
	__u64 lo; /* the next frame must lie above this */
	__u64 sp;
	__u32 n;
};

static long fp_step(__u64 i, void *ctx)
{
	struct fp_walk *w = ctx;
	__u64 frame[2]; /* saved %rbp, return address */

	if (w->n >= LT_KSTACK_MAX || (w->fp & 7) || w->fp <= w->lo || w->fp - w->sp > (8 << 20))
		return 1;
	if (bpf_probe_read_user(frame, sizeof(frame), (void *)w->fp) || !frame[1])
		return 1;
	w->out[w->n & (LT_KSTACK_MAX - 1)] = frame[1];
	w->n++;
	w->lo = w->fp;
	w->fp = frame[0];
	return 0;
}

/* capture_stack fills s for the current task and returns the bytes of stack
 * copied. A global function, verified once for all its callers; it needs no
 * program context. */
__noinline int capture_stack(struct lt_stack *s)
{
	if (!s)
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);

	s->ip = BPF_CORE_READ(regs, ip);
	s->sp = BPF_CORE_READ(regs, sp);
	s->bp = BPF_CORE_READ(regs, bp);
	s->stack_len = 0;

	/* As the kernel's walk: the pc first, then return addresses. */
	s->kstack[0] = s->ip;
	struct fp_walk w = {.out = s->kstack, .fp = s->bp, .lo = s->sp - 8, .sp = s->sp, .n = 1};
	bpf_loop(LT_KSTACK_MAX, fp_step, &w, 0);
	s->kstack_len = w.n;

	/* One bounded read of stack_bytes; when that runs past the top of the
	 * stack (unmapped), retry up to the last page boundary below sp+want,
	 * then to the end of sp's page. */
	__u64 want = stack_bytes, sp = s->sp, cut;
	__u32 off = 0;
	if (want > LT_STACK_MAX)
		want = LT_STACK_MAX;
	if (!want)
		return 0;
	if (bpf_probe_read_user(s->stack, want, (void *)sp) == 0) {
		off = want;
		goto out;
	}
	cut = ((sp + want) & ~4095ULL) - sp;
	if (cut && cut < want && bpf_probe_read_user(s->stack, cut & (LT_STACK_MAX - 1), (void *)sp) == 0) {
		off = cut & (LT_STACK_MAX - 1);
		goto out;
	}
	cut = ((sp | 4095ULL) + 1) - sp;
	if (cut > want)
		cut = want;
	if (cut > LT_STACK_MAX)
		cut = LT_STACK_MAX;
	if (bpf_probe_read_user(s->stack, cut, (void *)sp) == 0)
		off = cut;
out:
	s->stack_len = off;
	return off;
}

#endif
