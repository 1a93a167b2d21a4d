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

/* Force BTF for the types Go generates. */
const struct lt_fd_event *unused_fd __attribute__((unused));
const struct lt_task_event *unused_task __attribute__((unused));
const struct lt_exec_event *unused_exec __attribute__((unused));
const struct lt_mmap_event *unused_mmap __attribute__((unused));
const struct lt_sys *unused_sys __attribute__((unused));
const enum lt_counter *unused_counter __attribute__((unused));
const enum lt_event_type *unused_type __attribute__((unused));
const enum lt_sys_class *unused_sys_class __attribute__((unused));
const enum lt_sys_flag *unused_sys_flag __attribute__((unused));

static __always_inline int on_sys_enter(struct pt_regs *regs, long id)
{
	const struct lt_sys *sys = sys_row(id);
	__u8 cls = sys ? sys->class : LT_SYS_NONE;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	if (pair_in_kernel && in_traced(tgid))
		stash_before_syscall(cls, (int)regs->di);
	if (cls == LT_SYS_NONE || !is_traced(tgid))
		return 0;
	if (in_compat()) {
		count(LT_CNT_COMPAT);
		return 0;
	}
	if (cls == LT_SYS_EXIT_GROUP)
		return exit_group_enter(regs->di);
	if (cls == LT_SYS_RECVMSG && !msghdr_has_control(regs->si))
		return 0;

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

static __always_inline int on_sys_exit(long id, long ret)
{
	const struct lt_sys *sys = sys_row(id);
	if (!sys || sys->class == LT_SYS_NONE)
		return 0;
	if (!is_traced(bpf_get_current_pid_tgid() >> 32))
		return 0;

	struct inflight *in = bpf_task_storage_get(&inflight, bpf_get_current_task_btf(), 0, 0);
	if (!in || in->nr != id) {
		if (in)
			in->nr = 0;
		/* A compat syscall was counted at enter; anything else is a
		 * syscall entered before we attached. */
		if (!in_compat())
			count(LT_CNT_MISSED_EXIT);
		return 0;
	}
	switch (sys->class) {
	case LT_SYS_MMAP:
		mmap_exit(in, ret);
		break;
	case LT_SYS_RECVMSG:
	case LT_SYS_RECVMMSG:
		rights_exit(in, sys->class == LT_SYS_RECVMMSG, ret);
		break;
	case LT_SYS_WAIT4:
	case LT_SYS_WAITID:
		wait_exit(in, sys->class, ret);
		break;
	default:
		fd_exit(in, sys, ret);
	}
	in->nr = 0;
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(sys_enter, struct pt_regs *regs, long id)
{
	return on_sys_enter(regs, id);
}

SEC("tp_btf/sys_exit")
int BPF_PROG(sys_exit, struct pt_regs *regs, long ret)
{
	return on_sys_exit(regs->orig_ax, ret);
}
