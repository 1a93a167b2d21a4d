/* fds received through SCM_RIGHTS: cmsgs are parsed from the caller's
 * msghdr at syscall exit, when the kernel has written msg_controllen. */
#ifndef LEAKTRACE_RIGHTS_H
#define LEAKTRACE_RIGHTS_H

#define SOL_SOCKET 1
#define SCM_RIGHTS 1
#define MAX_RIGHTS 64 /* fds taken from one recvmsg/recvmmsg */

/* struct cmsghdr on x86-64. */
struct cmsg_head {
	__u64 len;
	__s32 level;
	__s32 type;
};

struct rights {
	__s32 fds[MAX_RIGHTS];
	__u32 n;
	__u32 dropped;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rights);
} rights_scratch SEC(".maps");

/* msghdr_has_control: a recvmsg whose msghdr has no room for a cmsg cannot
 * receive fds, and is not even parked. msg_control at +32, msg_controllen at
 * +40 (x86-64). */
static __always_inline bool msghdr_has_control(__u64 m)
{
	__u64 ctl = 0, len = 0;
	bpf_probe_read_user(&ctl, sizeof(ctl), (void *)(m + 32));
	bpf_probe_read_user(&len, sizeof(len), (void *)(m + 40));
	return ctl && len >= sizeof(struct cmsg_head) + 4;
}

/* collect_rights adds the fds of msghdr's SCM_RIGHTS cmsgs to r. Global:
 * verified once, not once per message of a recvmmsg. */
__noinline int collect_rights(__u64 msghdr, struct rights *r)
{
	__u64 ctl = 0, len = 0, off = 0;

	if (!r)
		return 0;
	if (bpf_probe_read_user(&ctl, sizeof(ctl), (void *)(msghdr + 32)) ||
	    bpf_probe_read_user(&len, sizeof(len), (void *)(msghdr + 40)) || !ctl)
		return 0;
	for (int c = 0; c < 4; c++) {
		struct cmsg_head h = {};
		if (off + sizeof(h) > len)
			break;
		if (bpf_probe_read_user(&h, sizeof(h), (void *)(ctl + off)))
			break;
		if (h.len < sizeof(h) || h.len > len - off)
			break;
		if (h.level == SOL_SOCKET && h.type == SCM_RIGHTS) {
			__s32 fds[16] = {};
			__u64 cnt = (h.len - sizeof(h)) / 4;
			if (cnt > 16) {
				r->dropped += cnt - 16;
				cnt = 16;
			}
			__u32 sz = cnt * 4;
			asm volatile("" : "+r"(sz)); /* keep the clamp on the register the call uses */
			if (sz > sizeof(fds))
				sz = sizeof(fds);
			if (bpf_probe_read_user(fds, sz, (void *)(ctl + off + sizeof(h))))
				break;
			for (int i = 0; i < 16; i++) {
				if (i >= cnt)
					break;
				if (r->n >= MAX_RIGHTS) {
					r->dropped++;
					continue;
				}
				r->fds[r->n & (MAX_RIGHTS - 1)] = fds[i];
				r->n++;
			}
		}
		off += (h.len + 7) & ~7ULL;
	}
	return 0;
}

struct rights_emit {
	__u64 enter_ts;
	struct rights *r;
	__u32 cloexec;
	__u16 nr;
};

static long emit_right(__u64 i, void *data)
{
	struct rights_emit *w = data;
	struct lt_fd_event *e = fd_event(LT_EV_FD_OPEN, w->nr);

	if (!e || i >= MAX_RIGHTS)
		return 1;
	e->enter_ts = w->enter_ts;
	if (!w->enter_ts)
		e->flags |= LT_FD_CHECKED;
	e->fd = w->r->fds[i & (MAX_RIGHTS - 1)];
	e->ret = e->fd;
	e->flags |= LT_FD_RECEIVED;
	if (w->cloexec)
		e->flags |= LT_FD_CLOEXEC;
	describe_fd(e, 1);
	submit_open(e, LT_SYS_RECVMSG);
	return 0;
}

/* rights_exit sends a creation record per fd received. Global: verified once. */
__noinline int rights_exit(struct inflight *in, int mmsg, long ret)
{
	__u32 zero = 0;
	struct rights *r = bpf_map_lookup_elem(&rights_scratch, &zero);

	if (!in || ret < 0 || !r)
		return 0;
	r->n = 0;
	r->dropped = 0;
	if (!mmsg) {
		collect_rights(in->args[1], r);
	} else {
		/* struct mmsghdr is a msghdr (56 bytes) and a length: 64 bytes. */
		for (int m = 0; m < 8; m++) {
			if (m >= ret)
				break;
			collect_rights(in->args[1] + m * 64, r);
		}
		if (ret > 8)
			r->dropped++; /* messages past the 8th were not read */
	}
	if (r->dropped)
		count(LT_CNT_RIGHTS_DROPPED);
	struct rights_emit w = {
		.enter_ts = in->ts,
		.r = r,
		.cloexec = !!((mmsg ? in->args[3] : in->args[2]) & MSG_CMSG_CLOEXEC),
		.nr = in->nr,
	};
	bpf_loop(r->n, emit_right, &w, 0);
	return 0;
}

#endif
