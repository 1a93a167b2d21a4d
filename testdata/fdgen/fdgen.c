// fdgen performs a long random sequence of fd operations, every fd source
// and release leaktrace follows, across several threads and a forked child
// (which later execs itself), and stops at checkpoints so that a test can
// compare leaktrace's live table with /proc/PID/fd while nothing moves.
//
//   fdgen SEED OPS CHECK_EVERY         the parent
//   fdgen --child SEED OPS CHECK_EVERY  the child after its exec (internal)
//
// At a checkpoint it prints "checkpoint PID N" on stdout, then stops itself
// with SIGSTOP; the test continues it with SIGCONT. Before exiting it prints
// "exit PID". Random fd numbers are picked in [LO, HI]; the fds the generator
// needs for itself live at PROTECTED and above, never touched by an op.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <linux/openat2.h>
#include <linux/perf_event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define LO 3
#define HI 250
#define PROTECTED 900 /* listen socket, rights pair, mount fd */
#define THREADS 3

static int listen_fd = PROTECTED;
static int rights_tx = PROTECTED + 1, rights_rx = PROTECTED + 2;
static int mount_fd = PROTECTED + 3;
static struct file_handle *handle;
static char dir[256];
static int is_child;

struct rng {
	uint64_t s;
	/* Threaded: the fds this thread made. It releases (close, dup2 onto) only
	 * those: closing a number another thread may be opening right now is a
	 * bug in a program, and its outcome depends on timing. */
	int threaded;
	int own[1024];
	int nown;
};

static uint32_t next(struct rng *r)
{
	/* xorshift64*: deterministic per seed and thread. */
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return (uint32_t)((r->s * 2685821657736338717ULL) >> 32);
}

static int pick(struct rng *r, int n) { return (int)(next(r) % (uint32_t)n); }
static int rand_fd(struct rng *r) { return LO + pick(r, HI - LO + 1); }

static int own(struct rng *r, int fd)
{
	if (r->threaded && fd >= 0 && r->nown < 1024)
		r->own[r->nown++] = fd;
	return fd;
}

/* victim picks an fd to release: any number single-threaded (often not
 * open: EBADF), one of its own threaded (-1: none). */
static int victim(struct rng *r)
{
	if (!r->threaded)
		return rand_fd(r);
	if (r->nown == 0)
		return -1;
	int i = pick(r, r->nown);
	int fd = r->own[i];
	r->own[i] = r->own[--r->nown];
	return fd;
}
static int maybe_cloexec(struct rng *r, int flag) { return pick(r, 2) ? flag : 0; }

static void keep(int fd, int at)
{
	/* Move a helper fd out of the ops' range, close-on-exec so the child's
	 * exec drops it. */
	if (fd < 0) {
		perror("fdgen setup");
		exit(2);
	}
	if (dup3(fd, at, O_CLOEXEC) < 0) {
		perror("fdgen dup3");
		exit(2);
	}
	close(fd);
}

static void setup(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int sp[2];
	int l = socket(AF_INET, SOCK_STREAM, 0);

	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 512)) {
		perror("fdgen listen");
		exit(2);
	}
	fcntl(l, F_SETFL, O_NONBLOCK); /* accept never blocks on an empty backlog */
	keep(l, listen_fd);
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sp)) {
		perror("fdgen socketpair");
		exit(2);
	}
	keep(sp[0], rights_tx);
	keep(sp[1], rights_rx);
	keep(open(dir, O_RDONLY | O_DIRECTORY), mount_fd);

	char path[300];
	snprintf(path, sizeof(path), "%s/handle-target", dir);
	close(creat(path, 0600));
	handle = malloc(sizeof(*handle) + MAX_HANDLE_SZ);
	handle->handle_bytes = MAX_HANDLE_SZ;
	int mnt;
	if (name_to_handle_at(AT_FDCWD, path, handle, &mnt, 0)) {
		free(handle);
		handle = NULL; /* filesystem without handles: the op is skipped */
	}
}

static void send_rights(struct rng *r)
{
	int fds[3], n = 1 + pick(r, 3);
	char byte = 'x';
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	char ctl[CMSG_SPACE(sizeof(fds))];
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl};

	for (int i = 0; i < n; i++) {
		fds[i] = rand_fd(r);
		if (fcntl(fds[i], F_GETFD) < 0)
			fds[i] = rights_tx; /* any open fd will do */
	}
	m.msg_controllen = CMSG_SPACE(n * sizeof(int));
	memset(ctl, 0, sizeof(ctl));
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(n * sizeof(int));
	memcpy(CMSG_DATA(c), fds, n * sizeof(int));
	sendmsg(rights_tx, &m, MSG_DONTWAIT);
}

static void recv_rights(struct rng *r)
{
	char byte;
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	char ctl[CMSG_SPACE(3 * sizeof(int))];
	int flags = MSG_DONTWAIT | maybe_cloexec(r, MSG_CMSG_CLOEXEC);

	struct mmsghdr mm = {.msg_hdr = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl)}};
	int ok;
	if (pick(r, 2))
		ok = recvmsg(rights_rx, &mm.msg_hdr, flags) >= 0;
	else
		ok = recvmmsg(rights_rx, &mm, 1, flags, NULL) == 1;
	if (!ok)
		return;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mm.msg_hdr); c; c = CMSG_NXTHDR(&mm.msg_hdr, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (int i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			own(r, fd);
		}
	}
}

static int clone_files_child(void *arg)
{
	/* Shares the parent's table: what it opens and closes is the parent's. */
	struct rng *r = arg;
	int a = open("/dev/null", O_RDONLY);
	int b = open("/dev/zero", O_RDONLY);
	if (pick(r, 2))
		close(a);
	else
		close(b);
	return 0;
}

static void *short_thread(void *arg)
{
	int fd = eventfd(0, 0);
	if ((uintptr_t)arg & 1)
		close(fd);
	return NULL;
}

static void own2(struct rng *r, int rc, int sp[2])
{
	if (rc == 0) {
		own(r, sp[0]);
		own(r, sp[1]);
	}
}

static void one_op(struct rng *r)
{
	char path[300];
	int fd, sp[2], threaded = r->threaded;

	switch (pick(r, 47)) {
	case 0: case 1: case 2:
		own(r, open(pick(r, 2) ? "/dev/null" : "/etc/hostname", O_RDONLY | maybe_cloexec(r, O_CLOEXEC)));
		break;
	case 3:
		snprintf(path, sizeof(path), "f%d", pick(r, 8));
		own(r, openat(mount_fd, path, O_RDWR | O_CREAT | maybe_cloexec(r, O_CLOEXEC), 0600));
		break;
	case 4:
		snprintf(path, sizeof(path), "%s/c%d", dir, pick(r, 4));
		own(r, creat(path, 0600));
		break;
	case 5: {
		struct open_how how = {.flags = O_RDONLY | maybe_cloexec(r, O_CLOEXEC)};
		own(r, syscall(SYS_openat2, AT_FDCWD, "/dev/zero", &how, sizeof(how)));
		break;
	}
	case 6:
		own(r, socket(AF_INET, SOCK_STREAM | maybe_cloexec(r, SOCK_CLOEXEC), 0));
		break;
	case 7:
		own(r, socket(pick(r, 2) ? AF_INET : AF_INET6, SOCK_DGRAM, 0));
		break;
	case 8:
		own(r, socket(AF_UNIX, SOCK_STREAM | maybe_cloexec(r, SOCK_CLOEXEC), 0));
		break;
	case 9:
		own2(r, socketpair(AF_UNIX, SOCK_STREAM | maybe_cloexec(r, SOCK_CLOEXEC), 0, sp), sp);
		break;
	case 10: { /* connect, then accept or accept4 the other end */
		struct sockaddr_in a;
		socklen_t len = sizeof(a);
		getsockname(listen_fd, (struct sockaddr *)&a, &len);
		fd = own(r, socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
		if (fd >= 0)
			connect(fd, (struct sockaddr *)&a, sizeof(a));
		if (pick(r, 2))
			own(r, accept(listen_fd, NULL, NULL));
		else
			own(r, accept4(listen_fd, NULL, NULL, maybe_cloexec(r, SOCK_CLOEXEC)));
		break;
	}
	case 11:
		own2(r, pipe(sp), sp);
		break;
	case 12:
		own2(r, pipe2(sp, maybe_cloexec(r, O_CLOEXEC)), sp);
		break;
	case 13:
		own(r, dup(rand_fd(r)));
		break;
	case 14:
		if ((fd = victim(r)) >= 0)
			own(r, dup2(rand_fd(r), fd));
		break;
	case 15:
		if ((fd = victim(r)) >= 0)
			own(r, dup3(rand_fd(r), fd, maybe_cloexec(r, O_CLOEXEC)));
		break;
	case 16:
		own(r, fcntl(rand_fd(r), pick(r, 2) ? F_DUPFD : F_DUPFD_CLOEXEC, rand_fd(r)));
		break;
	case 17:
		fcntl(rand_fd(r), F_SETFD, pick(r, 2) ? FD_CLOEXEC : 0);
		break;
	case 18:
		own(r, eventfd(0, maybe_cloexec(r, EFD_CLOEXEC)));
		break;
	case 19:
		if (pick(r, 2))
			own(r, epoll_create(1));
		else
			own(r, epoll_create1(maybe_cloexec(r, EPOLL_CLOEXEC)));
		break;
	case 20:
		own(r, memfd_create("fdgen", maybe_cloexec(r, MFD_CLOEXEC)));
		break;
	case 21:
		own(r, timerfd_create(CLOCK_MONOTONIC, maybe_cloexec(r, TFD_CLOEXEC)));
		break;
	case 22: {
		sigset_t s;
		sigemptyset(&s);
		sigaddset(&s, SIGUSR1);
		own(r, signalfd(-1, &s, maybe_cloexec(r, SFD_CLOEXEC)));
		break;
	}
	case 23:
		own(r, inotify_init1(maybe_cloexec(r, IN_CLOEXEC)));
		break;
	case 24:
		own(r, fanotify_init(FAN_CLASS_NOTIF | maybe_cloexec(r, FAN_CLOEXEC), O_RDONLY));
		break;
	case 25:
		own(r, syscall(SYS_pidfd_open, getpid(), 0));
		break;
	case 26: {
		int pfd = syscall(SYS_pidfd_open, getpid(), 0);
		if (pfd >= 0) {
			own(r, syscall(SYS_pidfd_getfd, pfd, rand_fd(r), 0));
			close(pfd);
		}
		break;
	}
	case 27:
		own(r, syscall(SYS_userfaultfd, maybe_cloexec(r, O_CLOEXEC)));
		break;
	case 28: {
		struct perf_event_attr pa = {.type = PERF_TYPE_SOFTWARE, .size = sizeof(pa),
					     .config = PERF_COUNT_SW_DUMMY, .disabled = 1};
		own(r, syscall(SYS_perf_event_open, &pa, 0, -1, -1, maybe_cloexec(r, PERF_FLAG_FD_CLOEXEC)));
		break;
	}
	case 29: {
		struct io_uring_params p = {0};
		own(r, syscall(SYS_io_uring_setup, 2, &p));
		break;
	}
	case 30:
		if (handle)
			own(r, open_by_handle_at(mount_fd, handle, O_RDONLY | maybe_cloexec(r, O_CLOEXEC)));
		break;
	case 31:
		send_rights(r);
		break;
	case 32: case 33:
		recv_rights(r);
		break;
	case 34: case 35: case 36: case 37: case 38: case 39:
		/* Single-threaded, often EBADF: that must release nothing. */
		if ((fd = victim(r)) >= 0)
			close(fd);
		break;
	case 40: {
		/* close_range over numbers another thread may be opening is the
		 * bug victim() avoids; threaded, only its CLOEXEC form. */
		int lo = rand_fd(r), n = pick(r, 6);
		int hi = lo + n > HI ? HI : lo + n;
		unsigned int flags = pick(r, 3) == 0 ? CLOSE_RANGE_CLOEXEC : 0;
		if (threaded)
			flags = CLOSE_RANGE_CLOEXEC;
		else if (pick(r, 3) == 0)
			flags |= CLOSE_RANGE_UNSHARE; /* alone, the table is ours already */
		syscall(SYS_close_range, lo, hi, flags);
		break;
	}
	case 41:
		if (!threaded) { /* vfork: a copy of the table, exec, exit, reaped */
			pid_t p = vfork();
			if (p == 0) {
				execl("/bin/true", "true", (char *)NULL);
				_exit(127);
			}
			if (p > 0)
				waitpid(p, NULL, 0);
		}
		break;
	case 42:
		if (!threaded) { /* a process sharing our table through CLONE_FILES */
			static char stack[64 << 10];
			pid_t p = clone(clone_files_child, stack + sizeof(stack), CLONE_FILES | SIGCHLD, r);
			if (p > 0)
				waitpid(p, NULL, 0);
		}
		break;
	case 44: case 45: case 46: { /* short lifetimes: what in-kernel pairing settles */
		fd = open("/dev/null", O_RDONLY);
		switch (pick(r, 5)) {
		case 4: /* dup2 onto an open fd (its implicit close must be sent), then close */
			sp[1] = open("/dev/zero", O_RDONLY);
			if (sp[1] >= 0 && dup2(fd, sp[1]) >= 0)
				close(sp[1]);
			own(r, fd);
			break;
		case 0: /* the very next syscall closes it: never leaves the kernel */
			close(fd);
			break;
		case 1: /* another syscall between: the open is sent first */
			fcntl(fd, F_GETFD);
			close(fd);
			break;
		case 2: /* the next syscall closes another fd */
			if ((sp[0] = victim(r)) >= 0 && sp[0] != fd)
				close(sp[0]);
			own(r, fd);
			break;
		default: /* kept */
			own(r, fd);
		}
		break;
	}
	case 43: { /* a short-lived thread that may leak an eventfd */
		pthread_t t;
		if (pthread_create(&t, NULL, short_thread, (void *)(uintptr_t)next(r)) == 0)
			pthread_join(t, NULL);
		break;
	}
	}
}

static int checkpoints;

static void checkpoint(void)
{
	printf("checkpoint %d %d\n", getpid(), ++checkpoints);
	fflush(stdout);
	raise(SIGSTOP);
}

/* Threaded rounds: every thread does its share of ops, all meet at the
 * barrier, the main thread stops the whole group. */
static pthread_barrier_t barrier;
static int rounds, per_round;
static uint64_t seed;

static void *worker(void *arg)
{
	struct rng r = {.s = seed * 7919 + (uintptr_t)arg * 104729 + 1, .threaded = 1};
	for (int i = 0; i < rounds; i++) {
		for (int j = 0; j < per_round; j++)
			one_op(&r);
		pthread_barrier_wait(&barrier); /* ops done */
		pthread_barrier_wait(&barrier); /* checkpoint done */
	}
	return NULL;
}

static void child_ops(uint64_t s, int ops, int every)
{
	struct rng r = {.s = s * 31 + 17};
	for (int i = 1; i <= ops; i++) {
		one_op(&r);
		if (i % every == 0)
			checkpoint();
	}
}

int main(int argc, char **argv)
{
	int ops, every;

	if (argc == 5 && strcmp(argv[1], "--child") == 0) {
		/* After exec: the close-on-exec fds are gone, the rest stay. */
		is_child = 1;
		seed = strtoull(argv[2], NULL, 10);
		ops = atoi(argv[3]);
		every = atoi(argv[4]);
		snprintf(dir, sizeof(dir), "/tmp/fdgen-%d", getpid());
		mkdir(dir, 0700);
		setup();
		checkpoint();
		child_ops(seed + 1, ops, every);
		checkpoint();
		printf("exit %d\n", getpid());
		fflush(stdout);
		return 0;
	}
	if (argc != 4) {
		fprintf(stderr, "usage: fdgen SEED OPS CHECK_EVERY\n");
		return 2;
	}
	seed = strtoull(argv[1], NULL, 10);
	ops = atoi(argv[2]);
	every = atoi(argv[3]);
	snprintf(dir, sizeof(dir), "/tmp/fdgen-%d", getpid());
	mkdir(dir, 0700);
	setup();
	signal(SIGPIPE, SIG_IGN);

	/* Phase 1: single-threaded, then fork a child that goes its own way. */
	struct rng r = {.s = seed + 1};
	for (int i = 1; i <= ops / 4; i++) {
		one_op(&r);
		if (i % every == 0)
			checkpoint();
	}
	checkpoint();
	pid_t child = fork();
	if (child == 0) {
		/* The inherited copy of the table, then exec, then more ops. */
		child_ops(seed + 2, ops / 4, every);
		char s[32], o[32], e[32];
		snprintf(s, sizeof(s), "%llu", (unsigned long long)seed);
		snprintf(o, sizeof(o), "%d", ops / 4);
		snprintf(e, sizeof(e), "%d", every);
		execl("/proc/self/exe", "fdgen", "--child", s, o, e, (char *)NULL);
		_exit(127);
	}

	/* Phase 2: THREADS workers and the main thread share one table. */
	per_round = every / (THREADS + 1);
	if (per_round < 1)
		per_round = 1;
	rounds = (ops / 2) / (per_round * (THREADS + 1));
	pthread_barrier_init(&barrier, NULL, THREADS + 1);
	pthread_t t[THREADS];
	for (long i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, worker, (void *)(i + 1));
	struct rng mr = {.s = seed * 7919 + 1, .threaded = 1};
	for (int i = 0; i < rounds; i++) {
		for (int j = 0; j < per_round; j++)
			one_op(&mr);
		pthread_barrier_wait(&barrier);
		checkpoint();
		pthread_barrier_wait(&barrier);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);

	/* Phase 3: single-threaded again, reap the child, exit holding fds. */
	for (int i = 1; i <= ops / 4; i++) {
		one_op(&r);
		if (i % every == 0)
			checkpoint();
	}
	waitpid(child, NULL, 0);
	checkpoint();
	printf("exit %d\n", getpid());
	fflush(stdout);
	return 0;
}
