/* What an fd is: its file, inode, filesystem, socket addresses, and a path
 * rebuilt from dentries when no absolute path argument names it. Only CO-RE
 * reads (no bpf_rdonly_cast, which Linux 6.1 lacks). */
#ifndef LEAKTRACE_FDINFO_H
#define LEAKTRACE_FDINFO_H

#define S_IFMT 00170000
#define S_IFREG 0100000
#define S_IFDIR 0040000
#define S_IFSOCK 0140000

static __always_inline struct file *fd_file(struct task_struct *task, int fd)
{
	struct files_struct *files = task->files;
	struct file *f = NULL;

	if (!files || fd < 0)
		return NULL;
	struct fdtable *fdt = files->fdt;
	if (!fdt || (unsigned int)fd >= fdt->max_fds)
		return NULL;
	struct file **fda = fdt->fd;
	bpf_probe_read_kernel(&f, sizeof(f), &fda[fd]);
	return f;
}

static __always_inline void describe_sock(struct lt_fd_event *e, struct file *f)
{
	struct socket *sock = BPF_CORE_READ(f, private_data);
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return;
	e->flags |= LT_FD_HAS_SOCK;
	e->sock.family = BPF_CORE_READ(sk, __sk_common.skc_family);
	e->sock.type = BPF_CORE_READ(sock, type);
	e->sock.protocol = BPF_CORE_READ(sk, sk_protocol);
	e->sock.state = BPF_CORE_READ(sk, __sk_common.skc_state);
	e->sock.sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	e->sock.dport = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (e->sock.family == 2) { /* AF_INET */
		__u32 s = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__u32 d = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(e->sock.saddr, &s, 4);
		__builtin_memcpy(e->sock.daddr, &d, 4);
	} else if (e->sock.family == 10) { /* AF_INET6 */
		BPF_CORE_READ_INTO(&e->sock.saddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&e->sock.daddr, sk, __sk_common.skc_v6_daddr);
	}
}

/* Rebuild a path from dentries, leaf first, crossing mounts. bpf_loop keeps
 * the verifier from walking every path through the loop. */
struct dpath_walk {
	struct dentry *d;
	struct mount *mnt;
	char (*out)[LT_NAME_LEN];
	__u32 depth;
	__u32 max;  /* components out holds, at most LT_PATH_DEPTH */
	__u32 full; /* the walk reached the namespace's root */
};

static long dpath_step(__u64 i, void *ctx)
{
	struct dpath_walk *w = ctx;
	struct dentry *d = w->d;
	struct mount *mnt = w->mnt;
	struct dentry *root = BPF_CORE_READ(mnt, mnt.mnt_root);
	struct dentry *parent = BPF_CORE_READ(d, d_parent);

	if (d == root) {
		struct mount *pm = BPF_CORE_READ(mnt, mnt_parent);
		if (pm == mnt) {
			w->full = 1; /* the namespace's root */
			return 1;
		}
		w->d = BPF_CORE_READ(mnt, mnt_mountpoint);
		w->mnt = pm;
		return 0;
	}
	if (d == parent || w->depth >= w->max || w->depth >= LT_PATH_DEPTH)
		return 1;
	const unsigned char *name = BPF_CORE_READ(d, d_name.name);
	bpf_probe_read_kernel_str(w->out[w->depth & (LT_PATH_DEPTH - 1)], LT_NAME_LEN, name);
	w->depth++;
	w->d = parent;
	return 0;
}

static __always_inline __u32 read_dpath(struct path *p, char (*out)[LT_NAME_LEN], __u32 max, __u32 *full)
{
	struct vfsmount *vmnt = BPF_CORE_READ(p, mnt);
	struct dpath_walk w = {
		.d = BPF_CORE_READ(p, dentry),
		.mnt = container_of(vmnt, struct mount, mnt),
		.out = out,
		.depth = 0,
		.max = max,
	};
	bpf_loop(2 * LT_PATH_DEPTH, dpath_step, &w, 0);
	if (full)
		*full = w.full;
	return w.depth;
}

/* describe_fd fills e's file description from e->fd of the current task:
 * kind, inode, filesystem, socket addresses, and (dpath) the dentry path of
 * a file or directory that no absolute path argument named. A global
 * function: verified once for every syscall class and SCM_RIGHTS. */
__noinline int describe_fd(struct lt_fd_event *e, int dpath)
{
	if (!e)
		return 0;
	e->mode = 0;
	e->ino = 0;
	e->magic = 0;
	e->file = 0;
	e->name[0] = 0;
	struct file *f = fd_file(bpf_get_current_task_btf(), e->fd);
	if (!f) {
		if (e->flags & LT_FD_CHECKED)
			e->flags |= LT_FD_GONE;
		return 0;
	}
	e->file = (__u64)f;
	struct inode *inode = BPF_CORE_READ(f, f_inode);
	e->mode = BPF_CORE_READ(inode, i_mode);
	e->ino = BPF_CORE_READ(inode, i_ino);
	e->magic = BPF_CORE_READ(inode, i_sb, s_magic);
	bpf_probe_read_kernel_str(e->name, sizeof(e->name), BPF_CORE_READ(f, f_path.dentry, d_name.name));

	__u32 t = e->mode & S_IFMT;
	if (t == S_IFSOCK) {
		describe_sock(e, f);
		return 0;
	}
	if (!dpath || (t != S_IFREG && t != S_IFDIR) || e->path[0] == '/')
		return 0;
	struct path p = {};
	__u32 full = 0;
	BPF_CORE_READ_INTO(&p, f, f_path);
	e->depth = read_dpath(&p, (char (*)[LT_NAME_LEN])e->path, LT_FD_DPATH_DEPTH, &full);
	e->flags |= LT_FD_DPATH;
	if (full)
		e->flags |= LT_FD_DPATH_FULL;
	return 0;
}

static __always_inline void read_path_arg(struct lt_fd_event *e, __u64 uptr)
{
	long n = bpf_probe_read_user_str(e->path, sizeof(e->path), (void *)uptr);
	if (n == sizeof(e->path))
		e->flags |= LT_FD_TRUNCATED_PATH;
	if (n < 0)
		e->path[0] = 0;
}

#endif
