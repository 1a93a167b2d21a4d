/* In-kernel pairing. Most handles live for microseconds (a request's
 * socket, a config file read): their creation record is parked here, keyed
 * by (fd table, fd), instead of being sent. A close of that fd by any thread
 * of any process sharing the table drops both records. What is still parked
 * after pair_window_ns leaves through the ring buffer: Go runs sweep_parked
 * every half window, so a handle held longer is in the live table within
 * 1.5 windows.
 *
 * Order is kept per fd: anything that reads or copies a parked fd (dup,
 * dup2 onto it, connect, close_range, fork, exec, the table's end) sends its
 * parked record first. Records of different fds need no order between them.
 *
 * Ownership: a parked record belongs to whoever deletes it from the map
 * (the closing syscall, a flush, the sweep); the loser of a race sends
 * nothing, so a record is never sent twice nor lost. */
#ifndef LEAKTRACE_PAIR_H
#define LEAKTRACE_PAIR_H

/* How long a handle may wait in the kernel for its close. */
const volatile __u64 pair_window_ns = 100000000;

/* A parked record: a creation record whose stack is a site Go knows (its
 * Python frames are in the site too), cut before the stack's pcs: a few
 * hundred bytes to copy and allocate. A stack sent whole (a copy, a new
 * site's pcs) leaves at once: Go learns from it. */
#define LT_PARK_BYTES (__builtin_offsetof(struct lt_fd_event, stack.kstack))

/* An fd's record: (its table, the fd). A mapping's: (LT_MAP_OWNER(tgid),
 * its address), which no table's kernel address can equal. */
struct park_key {
	__u64 owner;
	__u64 id;
};

#define LT_MAP_OWNER(tgid) (0x8000000000000000ULL | (__u32)(tgid))

struct parked {
	__u8 rec[LT_PARK_BYTES];
};

_Static_assert(sizeof(struct parked) <= sizeof(union scratch), "a parked value is built in the scratch");

/* Small on purpose: a table-wide flush walks every bucket. Entries live at
 * most a window; when the map is full a record is sent at once. Resized
 * from Go. (Preallocated measured the same per settled handle.) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1024);
	__type(key, struct park_key);
	__type(value, struct parked);
} parked SEC(".maps");

/* park_left is what maps_left needs of parked record v (its type and
 * tgid), read before v's delete: a deleted element may be another CPU's
 * new record at once. One word: send_owned is inlined in fd_exit, on
 * Linux 6.1's bound for a call chain's stack. */
static __always_inline __u64 park_left(struct parked *v)
{
	struct lt_header *h = (struct lt_header *)v->rec;
	return (__u64)h->type << 32 | h->pid;
}

/* maps_left counts a mapping's record out of the map (left: park_left of
 * a record that left; an fd's has nothing to count). From the record, not
 * the key: a table's key holds a kernel pointer. */
static __always_inline void maps_left(__u64 left)
{
	if (left >> 32 != LT_EV_MAP_NEW)
		return;
	__u32 tgid = (__u32)left;
	struct lt_image *v = bpf_map_lookup_elem(&images, &tgid);
	if (v)
		__sync_fetch_and_add(&v->maps_parked, -1);
}

/* send_owned sends the parked record v of key k if this caller is the one
 * that deletes it. The copy is taken before the delete (a freed element
 * may be reused at once) and thrown away if another caller won. */
static __always_inline void send_owned(struct park_key *k, struct parked *v)
{
	__u64 size = ((struct lt_header *)v->rec)->size;
	struct bpf_dynptr dp;
	__u64 left;

	/* Two tests on the 64-bit value: Linux 6.1 loses the bounds of
	 * clang's one-compare range check on a 32-bit copy. */
	if (size > LT_PARK_BYTES)
		size = 0;
	asm volatile("" : "+r"(size));
	if (size < sizeof(struct lt_header)) {
		left = park_left(v);
		if (!bpf_map_delete_elem(&parked, k))
			maps_left(left);
		return;
	}
	if (bpf_ringbuf_reserve_dynptr(&events, size, 0, &dp)) {
		bpf_ringbuf_discard_dynptr(&dp, 0);
		left = park_left(v);
		if (!bpf_map_delete_elem(&parked, k)) {
			maps_left(left);
			count(LT_CNT_RINGBUF_FULL);
		}
		return;
	}
	if (bpf_dynptr_write(&dp, 0, v->rec, size, 0)) {
		bpf_ringbuf_discard_dynptr(&dp, 0);
		return;
	}
	left = park_left(v);
	if (bpf_map_delete_elem(&parked, k)) {
		bpf_ringbuf_discard_dynptr(&dp, 0);
		return;
	}
	maps_left(left);
	bpf_ringbuf_submit_dynptr(&dp, wakeup_flag(false));
	count(LT_CNT_EVENTS);
	count_n(LT_CNT_EVENT_BYTES, size);
}

/* park_flush_fd sends the parked record of the current task's fd, if
 * any. Global: its key and the ring's dynptr take no stack in fd_exit and
 * submit_open, whose chains of calls are on Linux 6.1's bound (512 bytes,
 * each frame rounded up to 32). */
__noinline int park_flush_fd(int fd)
{
	if (!pair_in_kernel || fd < 0)
		return 0;
	struct park_key k = {.owner = current_files(), .id = (__u32)fd};
	struct parked *v = bpf_map_lookup_elem(&parked, &k);
	if (v)
		send_owned(&k, v);
	return 0;
}

/* park_update_sock gives the parked record of e's fd the socket addresses
 * e describes; false when nothing is parked there, or it left meanwhile
 * (then e is sent as well: an update of a handle Go knows). */
static __always_inline bool park_update_sock(__u64 files, struct lt_fd_event *e)
{
	if (!pair_in_kernel || !(e->flags & LT_FD_HAS_SOCK))
		return false;
	struct park_key k = {.owner = files, .id = (__u32)e->fd};
	struct parked *v = bpf_map_lookup_elem(&parked, &k);
	if (!v)
		return false;
	if (bpf_probe_read_kernel(v->rec + __builtin_offsetof(struct lt_fd_event, sock), sizeof(struct lt_sock), &e->sock))
		return false;
	return bpf_map_lookup_elem(&parked, &k) == v;
}

struct sweep_ctx {
	__u64 files;  /* only this table's records; 0: every table */
	__u64 before; /* only records made before this time */
	__u64 lo, hi; /* mappings: only those overlapping [lo, hi); hi 0: all */
};

static long sweep_one(struct bpf_map *map, struct park_key *k, struct parked *v, struct sweep_ctx *c)
{
	if (c->files && k->owner != c->files)
		return 0;
	if (((struct lt_header *)v->rec)->ts >= c->before)
		return 0;
	if (c->hi) {
		struct lt_map_event *m = (struct lt_map_event *)v->rec;
		__u64 end = m->addr + ((m->len + 4095) & ~4095ULL);
		if (m->addr >= c->hi || end <= c->lo)
			return 0;
	}
	send_owned(k, v);
	return 0;
}

/* park_flush_table sends every parked record of files: its fds are about to
 * be copied (fork), replaced (exec), closed by range, or end with it. */
static __always_inline void park_flush_table(__u64 files)
{
	if (!pair_in_kernel || !files)
		return;
	struct sweep_ctx c = {.files = files, .before = ~0ULL};
	bpf_for_each_map_elem(&parked, sweep_one, &c, 0);
}

/* Handles settled in the kernel by site (struct lt_proc_pc: the site's
 * hash), for Go to read and clear: a site's rate of short-lived handles
 * without a record per handle. Handles whose stack was not a site Go knew
 * count only in LT_CNT_PAIRED. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 1 << 12);
	__type(key, struct lt_proc_pc);
	__type(value, __u64);
} settled SEC(".maps");

/* settled_at counts one handle settled at a site. Global: its key lives in
 * a frame of its own, off the close path's call chain. */
__noinline int settled_at(__u32 flags, __u64 site, __u64 img)
{
	if (!(flags & LT_STK_SITE))
		return 0;
	struct lt_proc_pc k = {.img = img, .pc = site};
	__u64 *n = bpf_map_lookup_elem(&settled, &k);
	if (n) {
		*n += 1;
		return 0;
	}
	__u64 one = 1;
	bpf_map_update_elem(&settled, &k, &one, BPF_NOEXIST);
	return 0;
}

/* park_take_close settles a close of fd in files at its enter, fd still
 * installed: both records are dropped. A record waiting at the fd is the
 * installed handle's: an older handle there was released by a close that
 * took or flushed its record, and an open that found one waiting sent both
 * (park). No clock is read: on a hypervisor a read costs more than the
 * map's lookup. */
static __always_inline bool park_take_close(__u64 files, int fd)
{
	if (!pair_in_kernel)
		return false;
	struct park_key k = {.owner = files, .id = (__u32)fd};
	struct parked *v = bpf_map_lookup_elem(&parked, &k);
	if (!v)
		return false;
	/* Read before the delete: a deleted element may be another CPU's new
	 * record at once. */
	struct lt_stack *st = (struct lt_stack *)(v->rec + offsetof(struct lt_fd_event, stack));
	__u32 flags = st->flags;
	__u64 site = st->site, img = st->img;
	if (bpf_map_delete_elem(&parked, &k))
		return false; /* swept or flushed meanwhile: its record is sent */
	count(LT_CNT_PAIRED);
	settled_at(flags, site, img);
	return true;
}

/* may_park: e, made by a syscall of class cls, can wait for its close. */
static __always_inline bool may_park(struct lt_fd_event *e, __u8 cls)
{
	if (!pair_in_kernel)
		return false;
	if (cls == LT_SYS_DUP || cls == LT_SYS_DUP_ONTO || cls == LT_SYS_FCNTL)
		return false; /* a copy is of its source as it is now; dup2 may have closed the fd it replaced */
	if (e->flags & LT_FD_RECEIVED)
		return false; /* one recvmsg can install many */
	if (!(e->stack.flags & LT_STK_SITE))
		return false; /* Go learns a site's pcs, or how to unwind, from records that leave */
	return true;
}

/* park parks the creation record in this CPU's scratch (fd_event's; size
 * bytes, its stack a known site); false when it could not, and it must be
 * sent. A record already parked at its fd means its close is still in
 * flight on another thread: it is sent, and so is this one, for Go to order
 * by their times. Read from the scratch map, not through a caller's
 * pointer: on Linux 6.1 a map update copies only from the stack or another
 * map's value, and a global function's pointer argument is neither. */
static __always_inline bool park(__u64 size)
{
	if (size > LT_PARK_BYTES)
		return false;
	union scratch *s = scratch_get();
	if (!s)
		return false;
	s->fd.h.size = size;
	struct park_key k = {.owner = s->fd.h.files, .id = (__u32)s->fd.fd};
	if (bpf_map_update_elem(&parked, &k, (struct parked *)s, BPF_NOEXIST) == 0)
		return true;
	park_flush_fd(s->fd.fd); /* the record's table is the current task's */
	return false;
}

/* Mappings pair too: an mmap's record waits, keyed by (LT_MAP_OWNER(tgid),
 * address), for a munmap of exactly that range. Any other change to a
 * process's mappings (a partial munmap, mremap, mprotect, MAP_FIXED, brk)
 * first sends those waiting that it touches: Go applies ranges in order.
 * A fork sends them all; an exec settles them (the image ends), and so
 * does an exit for a reader of live processes only (live_only). images
 * counts them, so a process with none pays no walk. A process sharing its
 * memory with another (vfork, CLONE_VM) is never paired: the other's
 * munmap would not find it. */
static __always_inline bool may_park_map(struct lt_map_event *e)
{
	if (!pair_in_kernel || e->h.type != LT_EV_MAP_NEW || (e->flags & LT_MAP_BRK) || !(e->stack.flags & LT_STK_SITE))
		return false;
	struct task_struct *task = bpf_get_current_task_btf();
	return task->mm->mm_users.counter == task->signal->nr_threads;
}

/* park_map parks the mapping record in this CPU's scratch, as park. */
static __always_inline bool park_map(__u64 size)
{
	if (size > LT_PARK_BYTES)
		return false;
	union scratch *s = scratch_get();
	if (!s)
		return false;
	__u32 tgid = s->map.h.pid;
	struct lt_image *img = bpf_map_lookup_elem(&images, &tgid);
	if (!img)
		return false; /* no count to keep: it would be walked for on every change */
	s->map.h.size = size;
	struct park_key k = {.owner = LT_MAP_OWNER(tgid), .id = s->map.addr};
	if (bpf_map_update_elem(&parked, &k, (struct parked *)s, BPF_NOEXIST))
		return false;
	__sync_fetch_and_add(&img->maps_parked, 1);
	return true;
}

/* maps_waiting: tgid may have mappings waiting (its image counts them). */
static __always_inline bool maps_waiting(__u32 tgid)
{
	if (!pair_in_kernel)
		return false;
	struct lt_image *img = bpf_map_lookup_elem(&images, &tgid);
	return !img || img->maps_parked != 0;
}

/* park_flush_maps sends every mapping of tgid still waiting (a fork: the
 * child's copies of them are known to be copies). */
static __always_inline void park_flush_maps(__u32 tgid)
{
	if (!maps_waiting(tgid))
		return;
	struct sweep_ctx c = {.files = LT_MAP_OWNER(tgid), .before = ~0ULL};
	bpf_for_each_map_elem(&parked, sweep_one, &c, 0);
}

/* park_flush_maps_in sends the mappings of tgid waiting that overlap
 * [lo, hi) (bytes), before a change there: Go applies it to them. The
 * others commute with it (Go's ranges apart are independent) and wait on:
 * the dynamic loader's RELRO mprotect and MAP_FIXED segments no longer send
 * every mapping a process has made. */
static __always_inline void park_flush_maps_in(__u32 tgid, __u64 lo, __u64 hi)
{
	if (!maps_waiting(tgid))
		return;
	if (hi < lo || hi + 4095 < hi)
		hi = ~0ULL; /* wrapped: to the top */
	else
		hi = (hi + 4095) & ~4095ULL;
	lo &= ~4095ULL;
	if (hi <= lo)
		return;
	struct sweep_ctx c = {.files = LT_MAP_OWNER(tgid), .before = ~0ULL, .lo = lo, .hi = hi};
	bpf_for_each_map_elem(&parked, sweep_one, &c, 0);
}

static long drop_one(struct bpf_map *map, struct park_key *k, struct parked *v, struct sweep_ctx *c)
{
	if (k->owner != c->files)
		return 0;
	struct lt_map_event *m = (struct lt_map_event *)v->rec;
	__u32 flags = m->stack.flags;
	__u64 site = m->stack.site, img = m->stack.img, left = park_left(v);
	if (bpf_map_delete_elem(&parked, k))
		return 0; /* swept meanwhile: its record is sent */
	maps_left(left);
	count(LT_CNT_PAIRED);
	settled_at(flags, site, img);
	return 0;
}

/* park_end_maps settles the mappings of tgid still waiting as its address
 * space ends: at exec (the new image has none of them; Go drops them all
 * there), at exit when live_only (run and attach report what a process
 * had mapped at its end: sent). They count as settled at their site. */
static __always_inline void park_end_maps(__u32 tgid, bool exiting)
{
	if (exiting && !live_only) {
		park_flush_maps(tgid);
		return;
	}
	if (!maps_waiting(tgid))
		return;
	struct sweep_ctx c = {.files = LT_MAP_OWNER(tgid)};
	bpf_for_each_map_elem(&parked, drop_one, &c, 0);
}

/* park_take_munmap settles a munmap of [addr, addr+len) entered at enter
 * when it is exactly a mapping made before it began, still waiting. */
static __always_inline bool park_take_munmap(__u32 tgid, __u64 addr, __u64 len, __u64 enter)
{
	if (!pair_in_kernel || !enter)
		return false;
	struct park_key k = {.owner = LT_MAP_OWNER(tgid), .id = addr};
	struct parked *v = bpf_map_lookup_elem(&parked, &k);
	if (!v)
		return false;
	struct lt_map_event *m = (struct lt_map_event *)v->rec;
	if (m->h.ts >= enter || ((m->len + 4095) & ~4095ULL) != ((len + 4095) & ~4095ULL))
		return false;
	__u32 flags = m->stack.flags;
	__u64 site = m->stack.site, img = m->stack.img;
	if (bpf_map_delete_elem(&parked, &k))
		return false;
	maps_left((__u64)LT_EV_MAP_NEW << 32 | tgid);
	count(LT_CNT_PAIRED);
	settled_at(flags, site, img);
	return true;
}

/* sweep_parked sends what has waited a whole window (ctx[0] == 0), or
 * everything (ctx[0] == 1, before detaching). Not attached: Go runs it with
 * BPF_PROG_TEST_RUN. */
SEC("raw_tp")
int sweep_parked(__u64 *ctx)
{
	struct sweep_ctx c = {.files = 0, .before = ~0ULL};
	if (ctx[0] == 0)
		c.before = bpf_ktime_get_ns() - pair_window_ns;
	bpf_for_each_map_elem(&parked, sweep_one, &c, 0);
	return 0;
}

#endif
