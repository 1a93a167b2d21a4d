/* Which processes are traced: the pid set that grows with fork (run,
 * attach, the agent's --pid) and the agent's comm/cgroup/exe filters. */
#ifndef LEAKTRACE_FILTER_H
#define LEAKTRACE_FILTER_H

/* tgids being traced, one byte per pid (sized to pid_max from Go); grows
 * with fork, shrinks at exit. Every syscall of every process on the host asks
 * it: an array lookup is inlined by the verifier, a hash lookup is a call. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4 << 20); /* PID_MAX_LIMIT; resized from Go */
	__type(key, __u32);
	__type(value, __u8);
} traced SEC(".maps");

/* Values of traced[tgid]. The filtered agent caches its verdict for a
 * process there, so the comm/cgroup/exe lookups run once per process, not
 * once per followed syscall; exec and exit clear it. */
#define TRACED_NO 0      /* not traced (or not judged yet, filtered agent) */
#define TRACED_YES 1
#define TRACED_FILTERED 2 /* filtered agent: judged, not selected */

static __always_inline bool in_traced(__u32 tgid)
{
	__u8 *v = bpf_map_lookup_elem(&traced, &tgid);
	return v && *v == TRACED_YES;
}

static __always_inline void set_traced(__u32 tgid, __u8 on)
{
	__u8 *v = bpf_map_lookup_elem(&traced, &tgid);
	if (v)
		*v = on;
	else if (on)
		count(LT_CNT_TRACED_FULL);
}

/* Agent filters. With trace_all and filter_active, a process is traced when
 * it is in `traced` (a --pid, or a child of a traced process) or when its
 * comm, cgroup or executable is listed below; the rest of the host costs a
 * few lookups per followed syscall and no stack capture. */
const volatile __u32 filter_active = 0;

struct exe_key {
	__u64 ino;
	__u32 dev; /* the kernel's s_dev: major << 20 | minor */
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, char[LT_COMM_LEN]);
	__type(value, __u8);
} comm_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u64);
	__type(value, __u8);
} cgroup_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct exe_key);
	__type(value, __u8);
} exe_filter SEC(".maps");

/* agent_selects: the current task's process passes the agent's filters. A
 * global function: verified once, not at every hook that asks. */
__noinline int agent_selects(void)
{
	struct task_struct *task = bpf_get_current_task_btf();
	char comm[LT_COMM_LEN] = {};
	BPF_CORE_READ_STR_INTO(&comm, task, group_leader, comm);
	if (bpf_map_lookup_elem(&comm_filter, comm))
		return 1;
	__u64 cg = bpf_get_current_cgroup_id();
	if (bpf_map_lookup_elem(&cgroup_filter, &cg))
		return 1;
	struct inode *ino = BPF_CORE_READ(task, mm, exe_file, f_inode);
	if (!ino)
		return 0;
	struct exe_key k = {};
	k.ino = BPF_CORE_READ(ino, i_ino);
	k.dev = BPF_CORE_READ(ino, i_sb, s_dev);
	return bpf_map_lookup_elem(&exe_filter, &k) != NULL;
}

/* filtered_verdict judges the current process once and caches it. */
static __always_inline bool filtered_verdict(__u32 tgid)
{
	__u8 *v = bpf_map_lookup_elem(&traced, &tgid);
	if (v && *v)
		return *v == TRACED_YES;
	bool yes = agent_selects();
	if (v)
		*v = yes ? TRACED_YES : TRACED_FILTERED;
	return yes;
}

static __always_inline bool is_traced(__u32 tgid)
{
	if (tgid == self_tgid)
		return false;
	if (trace_all)
		return !filter_active || filtered_verdict(tgid);
	return in_traced(tgid);
}

/* forget_verdict: exec changed the process's comm and executable. */
static __always_inline void forget_verdict(__u32 tgid)
{
	if (!trace_all || !filter_active)
		return;
	__u8 *v = bpf_map_lookup_elem(&traced, &tgid);
	if (v && *v == TRACED_FILTERED)
		*v = TRACED_NO;
}

#endif
