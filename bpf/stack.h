/* The creating stack of a handle: user registers, the kernel's
 * frame-pointer walk, and a copy of the top of the user stack so that Go can
 * unwind code without frame pointers through its CFI. */
#ifndef LEAKTRACE_STACK_H
#define LEAKTRACE_STACK_H

/* capture_stack fills s for the current task and returns the bytes of stack
 * copied. A global function, verified once for all its callers; it needs no
 * program context (bpf_get_task_stack, not bpf_get_stack). */
__noinline int capture_stack(struct lt_stack *s)
{
	if (!s)
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	long n;

	s->ip = BPF_CORE_READ(regs, ip);
	s->sp = BPF_CORE_READ(regs, sp);
	s->bp = BPF_CORE_READ(regs, bp);
	s->stack_len = 0;

	n = bpf_get_task_stack(task, s->kstack, sizeof(s->kstack), BPF_F_USER_STACK);
	s->kstack_len = n > 0 ? (__u32)((__u64)n / 8) : 0;

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
