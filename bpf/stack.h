/* The creating stack of a handle. The kernel walks it with the unwind
 * rules Go learned from earlier stacks of the same process image, and sends
 * a stack walked whole as a call site (its pcs once, then a hash); where a
 * frame has no rule yet it sends that frame's registers, its frame-pointer
 * walk and a copy of the stack from there, for Go to unwind through its CFI
 * and teach the kernel. */
#ifndef LEAKTRACE_STACK_H
#define LEAKTRACE_STACK_H

/* Unwind rules Go learned per process image and pc (struct lt_rule), and
 * the sites whose pcs Go has: LRU, so an image gone leaves nothing behind
 * for long. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1 << 15);
	__type(key, struct lt_proc_pc);
	__type(value, struct lt_rule);
} unwind_rules SEC(".maps");

/* The same rules by file and offset (Go teaches a rule here when it knows
 * the frame's file): a rule missing for an image is looked for here and
 * copied to unwind_rules. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1 << 16);
	__type(key, struct lt_file_pc);
	__type(value, struct lt_rule);
} file_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1 << 14);
	__type(key, struct lt_proc_pc);
	__type(value, __u8);
} sites SEC(".maps");

/* struct inode's modification time before Linux 6.11 (i_mtime_sec and
 * i_mtime_nsec): a timespec64 named __i_mtime in 6.6-6.10, i_mtime before. */
struct inode___mtime_6_6 {
	struct timespec64 __i_mtime;
} __attribute__((preserve_access_index));

struct inode___mtime_6_1 {
	struct timespec64 i_mtime;
} __attribute__((preserve_access_index));

/* When the kernel last sent a copy to learn from, per frame it stopped at:
 * such a record is never parked (Go learns only from records that leave),
 * one per frame per LT_TEACH_NS, so a frame Go cannot describe costs its
 * pairing little. */
#define LT_TEACH_NS 20000000ULL
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1 << 12);
	__type(key, struct lt_proc_pc);
	__type(value, __u64);
} teach SEC(".maps");

/* Unwind with Go's rules and send sites (0: always registers and a copy). */
const volatile __u32 stack_sites = 1;
/* leaktrace's mount namespace (inode number; 0: none shared): a site named
 * by file offsets is shared among its processes (Go names a site's modules
 * by the first process's paths, which for another namespace are under that
 * process's /proc/PID/root). */
const volatile __u32 self_mnt_ns = 0;

/* One walk's state, for the rule walk and then the frame-pointer walk: one
 * struct, as Linux 6.1 bounds the stack of a whole call chain. */
struct rule_walk {
	__u64 *out;
	struct lt_proc_pc k;
	__u64 ip, sp, bp; /* the frame at out[n-1]; the frame-pointer walk's next frame is at bp */
	__u64 hash;
	__u64 lo; /* the frame-pointer walk's next frame must lie above this */
	__u32 n;
	__u8 whole;  /* the walk reached the stack's end, else ip has no rule (or its frame is unreadable) */
	__u8 shared; /* every frame so far hashed by its file offset */
	__u16 _pad;
};

/* The file key being looked up (bpf_find_vma's callback has no stack to
 * spare), and the pc and image it was made for: the last one looked up on
 * this CPU is that of the frame a copy starts from (send_file_id). */
struct file_key_slot {
	struct lt_file_pc k;
	__u64 ip; /* 0: the last pc looked up had no file */
	__u64 img;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct file_key_slot);
} file_key SEC(".maps");

/* file_rule_of_vma (bpf_find_vma's callback, ctx the rule walk at a pc with
 * no rule for its image) gives the image the rule Go taught for the pc's
 * file and offset, if any. */
static long file_rule_of_vma(struct task_struct *task, struct vm_area_struct *vma, void *ctx)
{
	struct rule_walk *w = ctx;
	struct file_key_slot *v = bpf_map_lookup_elem(&file_key, &slot0);
	if (!v)
		return 0;
	v->ip = 0;
	struct file *file = vma->vm_file;
	if (!file)
		return 0;
	struct inode *ino = file->f_inode;
	struct lt_file_pc *k = &v->k;
	if (!ino)
		return 0;
	if (bpf_core_field_exists(ino->i_mtime_sec)) {
		k->mtime_sec = BPF_CORE_READ(ino, i_mtime_sec);
		k->mtime_nsec = BPF_CORE_READ(ino, i_mtime_nsec);
	} else if (bpf_core_field_exists(((struct inode___mtime_6_6 *)ino)->__i_mtime)) {
		struct inode___mtime_6_6 *o = (void *)ino;
		k->mtime_sec = BPF_CORE_READ(o, __i_mtime.tv_sec);
		k->mtime_nsec = BPF_CORE_READ(o, __i_mtime.tv_nsec);
	} else {
		struct inode___mtime_6_1 *o = (void *)ino;
		k->mtime_sec = BPF_CORE_READ(o, i_mtime.tv_sec);
		k->mtime_nsec = BPF_CORE_READ(o, i_mtime.tv_nsec);
	}
	k->ino = BPF_CORE_READ(ino, i_ino);
	k->size = BPF_CORE_READ(ino, i_size);
	k->dev = BPF_CORE_READ(ino, i_sb, s_dev);
	k->off = w->k.pc - BPF_CORE_READ(vma, vm_start) + (BPF_CORE_READ(vma, vm_pgoff) << 12);
	v->ip = w->k.pc;
	v->img = w->k.img;
	struct lt_rule *r = bpf_map_lookup_elem(&file_rules, k);
	if (r && bpf_map_update_elem(&unwind_rules, &w->k, r, BPF_ANY) == 0)
		count(LT_CNT_FILE_RULE);
	return 0;
}

/* Our own frame-pointer walk. The kernel's (bpf_get_task_stack) follows
 * %rbp wherever it points: code that reuses %rbp as a general register
 * (gcc -O2, glibc's syscall wrappers' callers) sends it to unmapped
 * addresses, and each such read costs a page fault, microseconds under a
 * hypervisor. A frame here must be aligned, above the one before it and
 * within 8 MiB of sp, so a garbage %rbp ends the walk without a fault. */
static long fp_step(__u64 i, void *ctx)
{
	struct rule_walk *w = ctx;
	__u64 frame[2]; /* saved %rbp, return address */

	if (w->n >= LT_KSTACK_MAX || (w->bp & 7) || w->bp <= w->lo || w->bp - w->sp > (8 << 20))
		return 1;
	if (bpf_probe_read_user(frame, sizeof(frame), (void *)w->bp) || !frame[1])
		return 1;
	w->out[w->n & (LT_KSTACK_MAX - 1)] = frame[1];
	w->n++;
	w->lo = w->bp;
	w->bp = frame[0];
	return 0;
}

/* A per-CPU direct-mapped cache of rules in front of unwind_rules: a hot
 * call site's few rules stay in this CPU's cache lines, where a lookup in
 * the big hash misses on its bucket. A rule never changes meaning for its
 * (image, pc), so an entry needs no invalidation. */
#define LT_RULE_CACHE 512
struct rule_cache_ent {
	__u64 img;
	__u64 pc;
	struct lt_rule r;
};

struct rule_cache {
	struct rule_cache_ent e[LT_RULE_CACHE];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rule_cache);
} rule_cache SEC(".maps");

static __always_inline struct lt_rule *rule_of(struct rule_walk *w)
{
	struct rule_cache *c = bpf_map_lookup_elem(&rule_cache, &slot0);
	struct rule_cache_ent *ce = NULL;
	if (c) {
		ce = &c->e[(w->ip ^ (w->ip >> 9) ^ w->k.img) & (LT_RULE_CACHE - 1)];
		if (ce->pc == w->ip && ce->img == w->k.img)
			return &ce->r;
	}
	w->k.pc = w->ip;
	struct lt_rule *r = bpf_map_lookup_elem(&unwind_rules, &w->k);
	if (!r && bpf_find_vma(bpf_get_current_task_btf(), w->ip, file_rule_of_vma, w, 0) == 0)
		r = bpf_map_lookup_elem(&unwind_rules, &w->k);
	if (r && ce) {
		ce->img = w->k.img;
		ce->pc = w->ip;
		ce->r = *r;
	}
	return r;
}

/* Walk memos. A rule walk is a function of the frame it starts from (image,
 * ip, sp, bp), the Python frames' hash it is seeded with, and the stack
 * words it reads (return addresses, saved %rbp): rules never change meaning
 * for their (image, pc). A walk that ended whole at a site Go knows is
 * remembered with the words it read; a creation from the same frame whose
 * stack still holds those words has the same site, found with one read of
 * the stack instead of a walk: a loop that opens files from one place, a
 * server's accept. Walks reading further than LT_MEMO_SPAN bytes above sp,
 * or more than LT_MEMO_SLOTS words, are not remembered; Debian's python3
 * running a script is within both. Per CPU, two ways per frame. */
#define LT_MEMO_SLOTS 64
#define LT_MEMO_SPAN 8192
#define LT_MEMOS 64

struct walk_memo {
	__u64 img, ip, sp, bp, seed;
	__u64 hash;  /* the site's hash, as the walk left it */
	__u32 span;  /* bytes from sp to the end of the farthest word read */
	__u32 nslots;
	__u8 shared; /* the site was every process's (LT_STK_SHARED) */
	__u8 valid;
	__u16 mru;   /* of a pair's first way: the way used last */
	__u16 off[LT_MEMO_SLOTS]; /* each word's offset from sp */
	__u64 val[LT_MEMO_SLOTS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LT_MEMOS);
	__type(key, __u32);
	__type(value, struct walk_memo);
} walk_memos SEC(".maps");

/* The memo a walk in progress fills, and the stack read a memo is checked
 * against. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct walk_memo);
} walk_rec SEC(".maps");

struct walk_buf {
	__u8 b[LT_MEMO_SPAN];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct walk_buf);
} walk_buf SEC(".maps");

/* memo_note notes the word v0 the walk read at addr, and v1 after it when
 * pair. Past what a memo holds it marks the walk as too long to remember
 * (nslots beyond LT_MEMO_SLOTS). Global: verified once, not at every pass
 * of the rule walk's callback. */
__noinline int memo_note(__u64 addr, __u64 v0, __u64 v1, int pair)
{
	struct walk_memo *m = bpf_map_lookup_elem(&walk_rec, &slot0);
	if (!m)
		return 0;
	__u64 off = addr - m->sp, end = off + (pair ? 16 : 8);
	__u32 i = m->nslots;
	if (i > LT_MEMO_SLOTS - 2 || end > LT_MEMO_SPAN || (off & 7)) {
		m->nslots = LT_MEMO_SLOTS + 1;
		return 0;
	}
	m->off[i] = off;
	m->val[i] = v0;
	if (pair) {
		m->off[i + 1] = off + 8;
		m->val[i + 1] = v1;
	}
	m->nslots = i + (pair ? 2 : 1);
	if (end > m->span)
		m->span = end;
	return 0;
}

/* memo_pair finds this CPU's two memo entries for walks from (img, ip,
 * sp): two ways, as two call sites of one function reached at the same
 * depth (open a, open b) share the frame and would take turns evicting one
 * another. The first way's mru says which way was used last. */
static __always_inline bool memo_pair(__u64 img, __u64 ip, __u64 sp, struct walk_memo **w0, struct walk_memo **w1)
{
	__u32 k0 = ((ip ^ (ip >> 12) ^ sp ^ (sp >> 9) ^ img) & (LT_MEMOS / 2 - 1)) * 2, k1 = k0 + 1;
	*w0 = bpf_map_lookup_elem(&walk_memos, &k0);
	*w1 = bpf_map_lookup_elem(&walk_memos, &k1);
	return *w0 && *w1;
}

/* memo_words: the stack read into b holds every word memo m's walk read.
 * Global: the loop's exits do not each carry the caller's tail through the
 * verifier. */
__noinline int memo_words(struct walk_memo *m, struct walk_buf *b)
{
	if (!m || !b)
		return 0;
	__u32 n = m->nslots;
	for (__u32 i = 0; i < LT_MEMO_SLOTS; i++) {
		if (i >= n)
			break;
		__u32 off = m->off[i] & (LT_MEMO_SPAN - 8);
		if (*(__u64 *)(b->b + off) != m->val[i])
			return false;
	}
	return true;
}

/* rule_step unwinds one frame as Go's unwinder would (symbolize.Unwind):
 * the same stops, so that the kernel's stack of a site is Go's. */
static long rule_step(__u64 i, void *ctx)
{
	struct rule_walk *w = ctx;
	struct lt_rule *r = rule_of(w);
	if (!r)
		return 1;
	if (r->kind == LT_RULE_END) {
		/* The return address just taken is no frame. */
		if (w->n > 1) {
			w->n--;
			w->whole = 1;
		}
		return 1;
	}
	/* A frame enters the site's hash once its rule is found: by its place
	 * in its file when the rule has one, else by its address. */
	if (r->tag) {
		w->hash = site_mix(w->hash, r->tag);
	} else {
		w->hash = site_mix(w->hash, w->ip);
		w->shared = 0;
	}
	if (r->kind != LT_RULE_STEP || w->n >= LT_KSTACK_MAX) {
		w->whole = 1;
		return 1;
	}
	__u64 cfa = (r->cfa_bp ? w->bp : w->sp) + (__s64)r->cfa_off;
	__u64 f[2] = {w->bp, 0}; /* the caller's bp, the return address */
	/* Each word read is noted for the walk's memo (memo_note keeps to
	 * itself whether it still notes: no state here for the verifier). */
	if (r->bp_saved && r->bp_off + 8 == r->ra_off) {
		/* The usual frame: bp saved just below the return address, one read. */
		if (bpf_probe_read_user(f, sizeof(f), (void *)(cfa + (__s64)r->bp_off)))
			return 1;
		memo_note(cfa + (__s64)r->bp_off, f[0], f[1], 1);
	} else {
		if (bpf_probe_read_user(&f[1], sizeof(f[1]), (void *)(cfa + (__s64)r->ra_off)))
			return 1;
		memo_note(cfa + (__s64)r->ra_off, f[1], 0, 0);
		if (r->bp_saved) {
			if (bpf_probe_read_user(&f[0], sizeof(f[0]), (void *)(cfa + (__s64)r->bp_off)))
				return 1;
			memo_note(cfa + (__s64)r->bp_off, f[0], 0, 0);
		}
	}
	__u64 ra = f[1];
	if (!ra || cfa <= w->sp) {
		w->whole = 1;
		return 1;
	}
	w->out[w->n & (LT_KSTACK_MAX - 1)] = ra;
	w->n++;
	w->ip = ra;
	w->sp = cfa;
	w->bp = f[0];
	return 0;
}

/* Process images by tgid: made on first use, shared with a forked child,
 * dropped at exec and at the process's end. LRU: a missing entry is made
 * again the same way. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1 << 16);
	__type(key, __u32);
	__type(value, struct lt_image);
} images SEC(".maps");

/* proc_gen: [0] moves whenever the kernel changes, drops or makes a
 * process's image or drops its interpreter; [1] whenever Go adds or drops
 * a Python interpreter (Tracer.SetPython, ForgetPython). A CPU's memo of
 * the last process it saw holds while both stand still: most creations then
 * need no hash lookup to know the image and that no interpreter is there. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} proc_gen SEC(".maps");

struct proc_memo {
	__u64 kgen;
	__u64 ugen;
	__u64 img;
	__u32 tgid;
	__u32 py; /* py_procs had an entry */
	struct lt_py_proc pyp; /* a copy of it */
};

/* A few per CPU, by tgid: processes taking turns on a CPU (a server and
 * its client) keep theirs. */
#define LT_PROC_MEMOS 8

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LT_PROC_MEMOS);
	__type(key, __u32);
	__type(value, struct proc_memo);
} proc_memos SEC(".maps");

static __always_inline void proc_changed(void)
{
	__u32 k = 0;
	__u64 *g = bpf_map_lookup_elem(&proc_gen, &k);
	if (g)
		__sync_fetch_and_add(g, 1);
}

/* img_make is the image of tgid (the current process) from the map, made
 * on first use from what names the image (its leader's start time, tgid
 * and exec count): threads that race to make it agree. */
static __always_inline __u64 img_make(__u32 tgid)
{
	struct lt_image *v = bpf_map_lookup_elem(&images, &tgid);
	if (v)
		return v->img;
	struct task_struct *task = bpf_get_current_task_btf();
	struct lt_image nv = {.img = site_mix(site_mix(task->group_leader->start_time, tgid), task->self_exec_id)};
	/* Made again after the LRU dropped it, it may differ from a memo's. */
	proc_changed();
	bpf_map_update_elem(&images, &tgid, &nv, BPF_NOEXIST);
	return nv.img;
}

/* proc_memo is this CPU's memo for tgid (the current process), filled
 * again when it was another process's or a generation moved; NULL only
 * when the maps cannot be read. The generations are read before the maps,
 * so a change made meanwhile leaves a memo that is already stale. */
static __always_inline struct proc_memo *proc_memo(__u32 tgid)
{
	/* The generations' keys from .rodata: img_of is at the end of the
	 * deepest chains of calls (Linux 6.1's 512-byte bound). */
	__u32 slot = tgid & (LT_PROC_MEMOS - 1);
	__u64 *kg = bpf_map_lookup_elem(&proc_gen, &slot0);
	__u64 *ug = bpf_map_lookup_elem(&proc_gen, &slot1);
	struct proc_memo *m = bpf_map_lookup_elem(&proc_memos, &slot);
	if (!kg || !ug || !m)
		return NULL;
	__u64 kgen = *kg, ugen = *ug;
	if (m->tgid == tgid && m->kgen == kgen && m->ugen == ugen && tgid)
		return m;
	asm volatile("" ::: "memory");
	/* Invalid (tgid 0) while it is filled. The generations go in first,
	 * not on the stack across the calls below: img_of is at the end of
	 * the deepest chains of calls (Linux 6.1's 512-byte bound). */
	m->tgid = 0;
	m->kgen = kgen;
	m->ugen = ugen;
	m->img = img_make(tgid);
	const struct lt_py_proc *pp = bpf_map_lookup_elem(&py_procs, &tgid);
	m->py = pp != NULL;
	/* A helper's copy, not clang's, for the same reason. */
	if (pp && bpf_probe_read_kernel(&m->pyp, sizeof(m->pyp), pp))
		m->py = 0;
	m->tgid = tgid;
	return m;
}

/* img_of is the current process's image id. Global: its frame is off the
 * callers' chain. */
__noinline __u64 img_of(__u32 tgid)
{
	struct proc_memo *m = proc_memo(tgid);
	return m ? m->img : img_make(tgid);
}

/* py_absent: the current process tgid certainly has no interpreter
 * known to the kernel side (its memo says so). Global, as img_of: the
 * Python walk is on the deepest call chain. */
__noinline int py_absent(__u32 tgid)
{
	/* No interpreter was ever added (a C program under run): one load. */
	__u64 *ug = bpf_map_lookup_elem(&proc_gen, &slot1);
	if (ug && *ug == 0)
		return 1;
	struct proc_memo *m = proc_memo(tgid);
	return m && !m->py;
}

/* py_proc_of is the interpreter of tgid (the current process): this CPU's
 * memo's copy when it holds one (py_absent has just made it current), else
 * the map's; NULL when there is none. */
static __always_inline const struct lt_py_proc *py_proc_of(__u32 tgid)
{
	if (py_absent(tgid))
		return NULL;
	/* One key on the stack for both lookups: the callers are on Linux
	 * 6.1's bound for a call chain's stack. */
	__u32 key = tgid & (LT_PROC_MEMOS - 1);
	struct proc_memo *m = bpf_map_lookup_elem(&proc_memos, &key);
	if (m && m->tgid == tgid && m->py)
		return &m->pyp;
	key = tgid;
	return bpf_map_lookup_elem(&py_procs, &key);
}

/* img_fork gives the child the parent's image (the caller is the parent). */
static __always_inline void img_fork(__u32 ptgid, __u32 ctgid)
{
	struct lt_image cv = {.img = img_of(ptgid), .shared = 1};
	bpf_map_update_elem(&images, &ctgid, &cv, BPF_ANY);
	proc_changed(); /* a memo of a process gone may still name ctgid */
	struct lt_image *pv = bpf_map_lookup_elem(&images, &ptgid);
	if (pv)
		pv->shared = 1;
}

/* img_mapped: tgid mapped executable code from a file. Its image is its
 * own again if a forked process shared it (whose layout this one leaves);
 * if not, its rules stay good for the code already there. */
static __always_inline void img_mapped(__u32 tgid)
{
	struct lt_image *v = bpf_map_lookup_elem(&images, &tgid);
	if (v && v->shared) {
		v->img = site_mix(v->img, bpf_ktime_get_ns());
		v->shared = 0;
		proc_changed();
	}
}

/* img_forget: exec or the end; the interpreter goes with the image. */
static __always_inline void img_forget(__u32 tgid)
{
	bpf_map_delete_elem(&images, &tgid);
	proc_changed();
}

/* in_self_mnt_ns: the current task is in leaktrace's mount namespace.
 * Loads through the task's BTF pointers, not probe reads: this is asked
 * at every creation whose stack is a shared site. */
static __always_inline bool in_self_mnt_ns(void)
{
	struct nsproxy *ns = bpf_get_current_task_btf()->nsproxy;
	if (!ns)
		return false;
	struct mnt_namespace *mnt = ns->mnt_ns;
	return mnt && mnt->ns.inum == self_mnt_ns;
}

/* capture_stack fills s for the current task and returns how many bytes of
 * it the record carries (seed: the hash of its Python frames, 0 for none): up to kstack for a known site, the pcs for a new
 * one, else up to the end of the stack copy. A global function, verified
 * once for all its callers; it needs no program context. */
/* send_file_id sends, ahead of a copy from ip that Go learns from, the file
 * the rule walk found there (struct lt_file_id_event). Not counted as lost
 * when the ring is full: the copy it goes with is, and it is only a name.
 * Global: off the rule walk's call chain. */
__noinline int send_file_id(__u64 ip, __u64 img)
{
	struct file_key_slot *v = bpf_map_lookup_elem(&file_key, &slot0);
	if (!v || v->ip != ip || v->img != img || !v->k.ino)
		return 0;
	struct lt_file_id_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	fill_header(&e->h, LT_EV_FILE_ID, 0);
	e->h.size = sizeof(*e);
	e->ip = ip;
	e->file = v->k;
	bpf_ringbuf_submit(e, wakeup_flag(false));
	count(LT_CNT_EVENTS);
	count_n(LT_CNT_EVENT_BYTES, sizeof(*e));
	return 0;
}

/* memo_begin starts noting the walk from the frame s starts at. Global,
 * as memo_keep: verified once, not on every path of capture_stack. */
__noinline int memo_begin(struct lt_stack *s)
{
	struct walk_memo *m = bpf_map_lookup_elem(&walk_rec, &slot0);
	if (!m || !s)
		return 0;
	m->valid = 0;
	m->nslots = 0;
	m->span = 0;
	m->img = s->img;
	m->ip = s->ip;
	m->sp = s->sp;
	m->bp = s->bp;
	return 1;
}

/* memo_keep remembers the walk noted since memo_begin, which ended at a
 * site Go knows, in the way of its pair used less recently. */
__noinline int memo_keep(__u64 seed, __u64 hash, __u32 shared)
{
	struct walk_memo *m = bpf_map_lookup_elem(&walk_rec, &slot0);
	if (!m || m->nslots > LT_MEMO_SLOTS || !m->span)
		return 0;
	struct walk_memo *w0, *w1;
	if (!memo_pair(m->img, m->ip, m->sp, &w0, &w1))
		return 0;
	__u16 way = !w0->mru;
	m->seed = seed;
	m->hash = hash;
	m->shared = shared;
	m->valid = 1;
	if (way)
		*w1 = *m;
	else
		*w0 = *m;
	w0->mru = way;
	return 0;
}

static __always_inline bool memo_frame(struct walk_memo *m, struct lt_stack *s, __u64 seed)
{
	return m->valid && m->img == s->img && m->ip == s->ip && m->sp == s->sp && m->bp == s->bp && m->seed == seed;
}

/* memo_site fills s as a known site from this CPU's memo of a walk from
 * the same frame, when the stack still holds what that walk read (one read
 * for both ways) and Go still knows the site. Global: its locals are off
 * the walk's chain. */
__noinline int memo_site(struct lt_stack *s, __u64 seed)
{
	if (!s)
		return 0;
	struct walk_memo *w0, *w1;
	struct walk_buf *b = bpf_map_lookup_elem(&walk_buf, &slot0);
	if (!b || !memo_pair(s->img, s->ip, s->sp, &w0, &w1))
		return 0;
	bool f0 = memo_frame(w0, s, seed), f1 = memo_frame(w1, s, seed);
	if (!f0 && !f1)
		return 0;
	__u64 span = 0;
	if (f0)
		span = w0->span;
	if (f1 && w1->span > span)
		span = w1->span;
	asm volatile("" : "+r"(span));
	if (span < 8 || span > LT_MEMO_SPAN)
		return 0;
	if (bpf_probe_read_user(b->b, span, (void *)s->sp))
		return 0;
	struct walk_memo *m;
	if (f0 && memo_words(w0, b)) {
		m = w0;
		w0->mru = 0;
	} else if (f1 && memo_words(w1, b)) {
		m = w1;
		w0->mru = 1;
	} else {
		return 0;
	}
	struct lt_proc_pc k = {.img = s->img, .pc = m->hash};
	__u32 flags = 0;
	if (m->shared && self_mnt_ns && in_self_mnt_ns()) {
		k.img = 0;
		flags = LT_STK_SHARED;
	}
	if (!bpf_map_lookup_elem(&sites, &k))
		return 0;
	s->img = k.img;
	s->site = m->hash;
	s->flags = flags | LT_STK_SITE;
	s->known = 0;
	s->kstack_len = 0;
	s->stack_len = 0;
	count(LT_CNT_STACK_SITE);
	count(LT_CNT_STACK_MEMO);
	return 1;
}

__noinline int capture_stack(struct lt_stack *s, __u64 seed)
{
	if (!s)
		return 0;
	/* Few locals: Linux 6.1 bounds the stack of the whole call chain. */
	struct rule_walk rw = {.out = s->kstack, .n = 1, .hash = seed, .shared = !seed};
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());

	rw.ip = s->ip = regs->ip;
	rw.sp = s->sp = regs->sp;
	rw.bp = s->bp = regs->bp;
	s->kstack[0] = rw.ip;
	s->flags = 0;
	s->site = 0;
	s->stack_len = 0;
	s->img = rw.k.img = img_of(bpf_get_current_pid_tgid() >> 32);
	if (stack_sites)
		bpf_loop(LT_KSTACK_MAX + 1, rule_step, &rw, 0);
	if (rw.whole) {
		s->site = rw.hash;
		s->known = rw.n;
		s->kstack_len = rw.n;
		/* A site named by file offsets alone is every process's: its key
		 * and the record's image are 0 (Go's table of shared sites). */
		if (rw.shared && self_mnt_ns && in_self_mnt_ns()) {
			s->img = rw.k.img = 0;
			s->flags = LT_STK_SHARED;
		}
		rw.k.pc = rw.hash;
		if (bpf_map_lookup_elem(&sites, &rw.k)) {
			s->flags |= LT_STK_SITE;
			s->known = 0;
			s->kstack_len = 0;
			count(LT_CNT_STACK_SITE);
			return offsetof(struct lt_stack, kstack);
		}
		s->flags |= LT_STK_NEW;
		count(LT_CNT_STACK_NEW);
		return offsetof(struct lt_stack, kstack) + (rw.n & (2 * LT_KSTACK_MAX - 1)) * sizeof(__u64);
	}
	count(LT_CNT_STACK_COPY);
	if (stack_sites) {
		rw.hash = bpf_ktime_get_ns(); /* the hash is done with: its slot holds the time */
		rw.k.pc = rw.ip;
		__u64 *last = bpf_map_lookup_elem(&teach, &rw.k);
		if (!last || *last + LT_TEACH_NS < rw.hash) {
			bpf_map_update_elem(&teach, &rw.k, &rw.hash, BPF_ANY);
			s->flags = LT_STK_TEACH;
			send_file_id(rw.ip, rw.k.img);
		}
	}

	/* Go unwinds from the frame without a rule: its registers, the
	 * kernel's frame-pointer walk from there (as the kernel's own walk:
	 * the pc first, then return addresses), and a copy of its stack. */
	__u32 known = rw.n - 1;
	s->ip = rw.ip;
	s->sp = rw.sp;
	s->bp = rw.bp;
	s->known = known;
	rw.lo = rw.sp - 8;
	bpf_loop(LT_KSTACK_MAX, fp_step, &rw, 0);
	s->kstack_len = rw.n;

	/* One bounded read of stack_bytes; when that runs past the top of the
	 * stack (unmapped), retry up to the last page boundary below sp+want,
	 * then to the end of sp's page. */
	__u64 want = stack_bytes, sp = s->sp, cut;
	__u32 off = 0;
	if (want > LT_STACK_MAX)
		want = LT_STACK_MAX;
	if (!want)
		goto out;
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
	return offsetof(struct lt_stack, stack) + off;
}

/* site_stack is capture_stack for creations that repeat at a call site
 * (fds, mappings): the walk's memo first, and a walk that ends at a site Go
 * knows is remembered. Threads and processes (fork) call capture_stack
 * itself: the memo's code stays out of that program's verification. */
__noinline int site_stack(struct lt_stack *s, __u64 seed)
{
	if (!s)
		return 0;
	if (!stack_sites)
		return capture_stack(s, seed);
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	s->ip = regs->ip;
	s->sp = regs->sp;
	s->bp = regs->bp;
	s->img = img_of(bpf_get_current_pid_tgid() >> 32);
	if (memo_site(s, seed))
		return offsetof(struct lt_stack, kstack);
	memo_begin(s);
	int n = capture_stack(s, seed);
	if (s->flags & LT_STK_SITE)
		memo_keep(seed, s->site, (s->flags & LT_STK_SHARED) != 0);
	return n;
}

/* stack_part bounds capture_stack's result for the verifier, in a 64-bit
 * register of its own (clang otherwise compares a 32-bit copy). */
static __always_inline __u64 stack_part(int n)
{
	__u64 v = (__u32)n;
	asm volatile("" : "+r"(v));
	if (v > sizeof(struct lt_stack))
		v = sizeof(struct lt_stack);
	return v;
}

/* submit_stacked sends a record that carries stack s: one Go learns from
 * wakes it at once. A site whose pcs left is registered: the ring keeps
 * order, so any later record that names it only comes after. */
static __always_inline void submit_stacked(void *rec, __u64 size, struct lt_stack *s)
{
	if (!submit_flags(rec, size, s->flags & LT_STK_TEACH) || !(s->flags & LT_STK_NEW))
		return;
	struct lt_proc_pc k = {.img = s->img, .pc = s->site};
	__u8 one = 1;
	bpf_map_update_elem(&sites, &k, &one, BPF_ANY);
}

#endif
