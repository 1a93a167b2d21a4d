//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/* leaktrace's kernel side: a short dispatcher. Syscall enter parks the
 * arguments of the syscalls sys_table says we follow; syscall exit hands
 * them to the handler of the syscall's class. Each concern lives in its own
 * header; the heavy parts are global functions, verified once. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "leaktrace.h"

char LICENSE[] SEC("license") = "GPL";

#include "common.h"
#include "filter.h"
#include "python.h"
#include "stack.h"
#include "pair.h"
#include "fdinfo.h"
#include "fdops.h"
#include "rights.h"
#include "task.h"
#include "mapping.h"

/* Force BTF for the types Go generates. */
const struct lt_fd_event *unused_fd __attribute__((unused));
const struct lt_task_event *unused_task __attribute__((unused));
const struct lt_exec_event *unused_exec __attribute__((unused));
const struct lt_mmap_event *unused_mmap __attribute__((unused));
const struct lt_map_event *unused_map __attribute__((unused));
const struct lt_file_id_event *unused_file_id __attribute__((unused));
const struct lt_sys *unused_sys __attribute__((unused));
const enum lt_counter *unused_counter __attribute__((unused));
const enum lt_event_type *unused_type __attribute__((unused));
const enum lt_sys_class *unused_sys_class __attribute__((unused));
const enum lt_sys_flag *unused_sys_flag __attribute__((unused));
const enum lt_rule_kind *unused_rule_kind __attribute__((unused));

/* A hook's arguments are in the registers (raw hooks: raw, regs) or in the
 * tracepoint's record (per-syscall hooks: rec). raw is a constant at each
 * caller, so after inlining only one path is left (one load instruction must
 * not serve both kinds of pointer). They are read only once the syscall is
 * known to be followed for a traced process. */
static __always_inline void load_args(const bool raw, struct pt_regs *regs, const __u64 *rec, __u64 a[6])
{
	if (raw) {
		a[0] = regs->di;
		a[1] = regs->si;
		a[2] = regs->dx;
		a[3] = regs->r10;
		a[4] = regs->r8;
		a[5] = regs->r9;
		return;
	}
	/* A syscall's record holds only its own arguments, and the kernel
	 * refuses to attach a program whose direct context reads reach past
	 * the smallest record: the six slots are copied, not loaded. */
	if (bpf_probe_read_kernel(a, 6 * sizeof(__u64), rec))
		__builtin_memset(a, 0, 6 * sizeof(__u64));
}

/* on_sys_enter parks a followed syscall's arguments for its exit. */
static __always_inline int on_sys_enter(const bool raw, long id, struct pt_regs *regs, const __u64 *rec)
{
	const struct lt_sys *sys = sys_row(id);
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	/* A 32-bit syscall's number is from another table (i386's open is
	 * x86-64's fstat): count it for a traced process, never read it. x32
	 * syscalls carry bit 30. Per-syscall tracepoints never fire for them. */
	if (in_compat() || (id & 0x40000000)) {
		if (is_traced(tgid))
			count(LT_CNT_COMPAT);
		return 0;
	}
	/* Only the syscalls whose exit needs what was there at their enter
	 * (its time, the state before it) do anything here; the others'
	 * arguments are read at their exit, from the registers. */
	if (!sys || sys->class == LT_SYS_NONE || !(sys->flags & LT_SYSF_ENTER) || !is_traced(tgid))
		return 0;
	__u8 cls = sys->class;
	__u64 a[6];
	load_args(raw, regs, rec, a);
	if (cls == LT_SYS_EXIT_GROUP)
		return exit_group_enter(a[0]);
	if (cls == LT_SYS_CLOSE)
		return close_enter((int)a[0], id);

	struct inflight *in = bpf_task_storage_get(&inflight, bpf_get_current_task_btf(), 0,
						   BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!in) {
		count(LT_CNT_INFLIGHT_FULL);
		return 0;
	}
	in->nr = id;
	in->ts = bpf_ktime_get_ns();
	in->args[0] = a[0];
	in->args[1] = a[1];
	in->args[2] = a[2];
	in->args[3] = a[3];
	in->args[4] = a[4];
	in->args[5] = a[5];
	if (cls == LT_SYS_BRK)
		in->args[1] = brk_now(); /* brk has one argument */
	return 0;
}

/* args_at_exit reads a syscall's arguments at its exit from the user
 * registers, which x86-64 syscalls leave as they were (not exec, not
 * sigreturn: neither is followed here): regs, the raw hook's, or else the
 * task's. ts 0: no enter time. */
static __always_inline void args_at_exit(struct inflight *in, long id, const bool raw, struct pt_regs *regs)
{
	/* Loads through the BTF pointer, not probe reads: six helper calls
	 * cost more than the rest of a socket's exit. */
	if (!raw)
		regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	load_args(true, regs, NULL, in->args);
	in->nr = id;
	in->ts = 0;
}

/* on_sys_exit completes a followed syscall. Only the syscalls sys_table
 * marks LT_SYSF_ENTER had their enter hook run (raw: every syscall enters
 * the one program, which returns at once for the others). */
static __always_inline int on_sys_exit(const bool raw, struct pt_regs *regs, long id, long ret)
{
	const struct lt_sys *sys = sys_row(id);
	/* close is done at its enter (close_enter). */
	if (!sys || sys->class == LT_SYS_NONE || sys->class == LT_SYS_CLOSE)
		return 0;
	if (!is_traced(bpf_get_current_pid_tgid() >> 32))
		return 0;

	/* The handlers always get the arguments on the stack: one kind of
	 * pointer, so the verifier walks them once, not once per source. */
	struct inflight here, *in = &here;
	bool exit_only = !(sys->flags & LT_SYSF_ENTER);
	if (exit_only) {
		if (in_compat())
			return 0;
		args_at_exit(&here, id, raw, regs);
	} else {
		struct inflight *st = bpf_task_storage_get(&inflight, bpf_get_current_task_btf(), 0, 0);
		if (!st || st->nr != id) {
			if (st)
				st->nr = 0;
			/* A compat syscall was counted at enter; anything else
			 * is a syscall entered before we attached. */
			if (!in_compat())
				count(LT_CNT_MISSED_EXIT);
			return 0;
		}
		here = *st;
		st->nr = 0;
	}
	switch (sys->class) {
	case LT_SYS_MMAP:
		mmap_exit(in, ret);
		mapping_exit(in, sys->class, ret);
		break;
	case LT_SYS_MUNMAP:
	case LT_SYS_MREMAP:
	case LT_SYS_BRK:
	case LT_SYS_MPROTECT:
		mapping_exit(in, sys->class, ret);
		break;
	case LT_SYS_RECVMSG:
	case LT_SYS_RECVMMSG:
		if (sys->class == LT_SYS_RECVMSG && exit_only && !msghdr_has_control(in->args[1]))
			break;
		rights_exit(in, sys->class == LT_SYS_RECVMMSG, ret);
		break;
	case LT_SYS_WAIT4:
	case LT_SYS_WAITID:
		wait_exit(in, sys->class, ret);
		break;
	default:
		fd_exit(in, sys, ret);
	}
	return 0;
}

/* Raw syscall hooks: one program for every syscall on the host. run uses
 * them (attaching is instant); they cost every syscall a program run. */
SEC("tp_btf/sys_enter")
int BPF_PROG(sys_enter, struct pt_regs *regs, long id)
{
	return on_sys_enter(true, id, regs, NULL);
}

SEC("tp_btf/sys_exit")
int BPF_PROG(sys_exit, struct pt_regs *regs, long ret)
{
	return on_sys_exit(true, regs, regs->orig_ax, ret);
}

/* Per-syscall hooks: the same programs attached to each followed syscall's
 * own tracepoint (syscalls/sys_enter_NAME), so that syscalls we do not
 * follow run no program at all. The agent uses them. Layouts are the
 * tracepoints' format files, stable since Linux 2.6.33. */
struct sys_enter_tp_ctx {
	__u64 common;
	__s32 nr;
	__u32 _pad;
	__u64 args[6];
};

struct sys_exit_tp_ctx {
	__u64 common;
	__s32 nr;
	__u32 _pad;
	__s64 ret;
};

SEC("tracepoint/syscalls/sys_enter_followed")
int sys_enter_tp(struct sys_enter_tp_ctx *ctx)
{
	return on_sys_enter(false, ctx->nr, NULL, ctx->args);
}

SEC("tracepoint/syscalls/sys_exit_followed")
int sys_exit_tp(struct sys_exit_tp_ctx *ctx)
{
	return on_sys_exit(false, NULL, ctx->nr, ctx->ret);
}
