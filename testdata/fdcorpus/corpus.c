// corpus: one small program per fd family. `corpus FAMILY` makes handles of
// that family, releases some of them the family's own ways, leaks exactly two
// from a function named after the family, and lists /proc/self/fd at exit
// (truth.h), so a test can assert the exact leaked set and each leak's kind.
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/io_uring.h>
#include <linux/openat2.h>
#include <linux/perf_event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
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
#include <sys/wait.h>
#include <unistd.h>

#include "../leaky-c/truth.h"

#define LEAK(fd, fn) truth_leak((fd), (fn))
#define NOINLINE __attribute__((noinline))

static char dir[64];

static NOINLINE int fam_open(void)
{
	char p[128];
	snprintf(p, sizeof(p), "%s/a", dir);
	close(open(p, O_CREAT | O_RDWR, 0600));
	LEAK(open(p, O_RDONLY), "fam_open");
	LEAK(openat(AT_FDCWD, p, O_RDONLY), "fam_open");
	struct open_how how = {.flags = O_RDONLY};
	close(syscall(SYS_openat2, AT_FDCWD, p, &how, sizeof(how)));
	close(creat(p, 0600));
	return 0;
}

static NOINLINE int fam_socket(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0);
	bind(l, (struct sockaddr *)&a, sizeof(a));
	listen(l, 4);
	getsockname(l, (struct sockaddr *)&a, &len);
	int c = socket(AF_INET, SOCK_STREAM, 0);
	connect(c, (struct sockaddr *)&a, sizeof(a));
	int s = accept(l, NULL, NULL);
	close(l);
	close(s);
	LEAK(c, "fam_socket");
	LEAK(socket(AF_INET6, SOCK_DGRAM, 0), "fam_socket");
	close(socket(AF_UNIX, SOCK_STREAM, 0));
	return 0;
}

static NOINLINE int fam_accept4(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0);
	bind(l, (struct sockaddr *)&a, sizeof(a));
	listen(l, 4);
	getsockname(l, (struct sockaddr *)&a, &len);
	int c1 = socket(AF_INET, SOCK_STREAM, 0), c2 = socket(AF_INET, SOCK_STREAM, 0);
	connect(c1, (struct sockaddr *)&a, sizeof(a));
	connect(c2, (struct sockaddr *)&a, sizeof(a));
	LEAK(accept4(l, NULL, NULL, SOCK_CLOEXEC), "fam_accept4");
	LEAK(accept4(l, NULL, NULL, 0), "fam_accept4");
	close(c1);
	close(c2);
	close(l);
	return 0;
}

static NOINLINE int fam_pipe(void)
{
	int p[2], q[2];
	pipe(p);
	pipe2(q, O_CLOEXEC);
	close(q[0]);
	close(q[1]);
	LEAK(p[0], "fam_pipe");
	LEAK(p[1], "fam_pipe");
	return 0;
}

static NOINLINE int fam_socketpair(void)
{
	int p[2];
	socketpair(AF_UNIX, SOCK_STREAM, 0, p);
	LEAK(p[0], "fam_socketpair");
	LEAK(p[1], "fam_socketpair");
	return 0;
}

/* dup2 onto itself does nothing, so the leak stays fam_dup's. */
static NOINLINE int dup_onto_itself(int fd) { return dup2(fd, fd); }

static NOINLINE int fam_dup(void)
{
	int base = open("/dev/null", O_RDONLY);
	int spare = open("/dev/zero", O_RDONLY);
	int d = dup(base);
	LEAK(d, "fam_dup");
	if (dup_onto_itself(d) != d)
		return 1;
	LEAK(fcntl(base, F_DUPFD_CLOEXEC, 40), "fam_dup");
	close(fcntl(base, F_DUPFD, 50));
	dup2(base, spare);  /* implicit close of /dev/zero */
	dup3(base, spare, O_CLOEXEC);
	close(spare);
	close(base);
	return 0;
}

static NOINLINE int fam_eventfd(void)
{
	LEAK(eventfd(0, 0), "fam_eventfd");
	LEAK(eventfd(1, EFD_CLOEXEC), "fam_eventfd");
	close(eventfd(0, 0));
	return 0;
}

static NOINLINE int fam_epoll(void)
{
	LEAK(epoll_create(1), "fam_epoll");
	LEAK(epoll_create1(EPOLL_CLOEXEC), "fam_epoll");
	close(epoll_create1(0));
	return 0;
}

static NOINLINE int fam_memfd(void)
{
	LEAK(memfd_create("corpus", 0), "fam_memfd");
	LEAK(memfd_create("corpus2", MFD_CLOEXEC), "fam_memfd");
	close(memfd_create("gone", 0));
	return 0;
}

static NOINLINE int fam_timerfd(void)
{
	LEAK(timerfd_create(CLOCK_MONOTONIC, 0), "fam_timerfd");
	LEAK(timerfd_create(CLOCK_REALTIME, TFD_CLOEXEC), "fam_timerfd");
	close(timerfd_create(CLOCK_MONOTONIC, 0));
	return 0;
}

/* signalfd on an existing signalfd changes its mask and returns the same
 * fd: it creates nothing, so the leak stays fam_signalfd's. */
static NOINLINE int update_signalfd(int fd)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR2);
	return signalfd(fd, &s, 0);
}

static NOINLINE int fam_signalfd(void)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	int fd = signalfd(-1, &s, 0);
	LEAK(fd, "fam_signalfd");
	if (update_signalfd(fd) != fd)
		return 1;
	LEAK(signalfd(-1, &s, SFD_CLOEXEC), "fam_signalfd");
	close(signalfd(-1, &s, 0));
	return 0;
}

static NOINLINE int fam_inotify(void)
{
	LEAK(inotify_init(), "fam_inotify");
	LEAK(inotify_init1(IN_CLOEXEC), "fam_inotify");
	close(inotify_init1(0));
	return 0;
}

static NOINLINE int fam_fanotify(void)
{
	LEAK(fanotify_init(FAN_CLASS_NOTIF, O_RDONLY), "fam_fanotify");
	LEAK(fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC, O_RDONLY), "fam_fanotify");
	close(fanotify_init(FAN_CLASS_NOTIF, O_RDONLY));
	return 0;
}

static NOINLINE int fam_pidfd(void)
{
	int p = syscall(SYS_pidfd_open, getpid(), 0);
	int target = open("/dev/null", O_RDONLY);
	LEAK(p, "fam_pidfd");
	LEAK(syscall(SYS_pidfd_getfd, p, target, 0), "fam_pidfd");
	close(target);
	return 0;
}

static NOINLINE int fam_userfaultfd(void)
{
	LEAK(syscall(SYS_userfaultfd, 0), "fam_userfaultfd");
	LEAK(syscall(SYS_userfaultfd, O_CLOEXEC), "fam_userfaultfd");
	close(syscall(SYS_userfaultfd, 0));
	return 0;
}

static NOINLINE int fam_perf(void)
{
	struct perf_event_attr pa = {.type = PERF_TYPE_SOFTWARE, .size = sizeof(pa),
				     .config = PERF_COUNT_SW_DUMMY, .disabled = 1};
	LEAK(syscall(SYS_perf_event_open, &pa, 0, -1, -1, 0), "fam_perf");
	LEAK(syscall(SYS_perf_event_open, &pa, 0, -1, -1, PERF_FLAG_FD_CLOEXEC), "fam_perf");
	close(syscall(SYS_perf_event_open, &pa, 0, -1, -1, 0));
	return 0;
}

static NOINLINE int fam_io_uring(void)
{
	struct io_uring_params p1 = {0}, p2 = {0}, p3 = {0};
	LEAK(syscall(SYS_io_uring_setup, 2, &p1), "fam_io_uring");
	LEAK(syscall(SYS_io_uring_setup, 2, &p2), "fam_io_uring");
	close(syscall(SYS_io_uring_setup, 2, &p3));
	return 0;
}

static NOINLINE int fam_handle(void)
{
	char p[128];
	int mnt, mfd = open(dir, O_RDONLY | O_DIRECTORY);
	snprintf(p, sizeof(p), "%s/h", dir);
	close(creat(p, 0600));
	struct file_handle *h = malloc(sizeof(*h) + MAX_HANDLE_SZ);
	h->handle_bytes = MAX_HANDLE_SZ;
	if (name_to_handle_at(AT_FDCWD, p, h, &mnt, 0))
		return 1;
	LEAK(open_by_handle_at(mfd, h, O_RDONLY), "fam_handle");
	LEAK(open_by_handle_at(mfd, h, O_RDONLY | O_CLOEXEC), "fam_handle");
	close(open_by_handle_at(mfd, h, O_RDONLY));
	close(mfd);
	return 0;
}

static NOINLINE int fam_scm_rights(void)
{
	int sp[2], fds[2];
	socketpair(AF_UNIX, SOCK_DGRAM, 0, sp);
	fds[0] = open("/dev/null", O_RDONLY);
	fds[1] = eventfd(0, 0);
	char byte = 'x', ctl[CMSG_SPACE(sizeof(fds))];
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(c), fds, sizeof(fds));
	sendmsg(sp[0], &m, 0);
	close(fds[0]);
	close(fds[1]);
	close(sp[0]);
	memset(ctl, 0, sizeof(ctl));
	recvmsg(sp[1], &m, MSG_CMSG_CLOEXEC);
	close(sp[1]);
	int got[2];
	memcpy(got, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof(got));
	LEAK(got[0], "fam_scm_rights");
	LEAK(got[1], "fam_scm_rights");
	return 0;
}

static NOINLINE int fam_close_range(void)
{
	int keep1 = open("/dev/null", O_RDONLY), keep2 = open("/dev/null", O_RDONLY);
	int lo = open("/dev/zero", O_RDONLY);
	open("/dev/zero", O_RDONLY);
	int hi = open("/dev/zero", O_RDONLY);
	syscall(SYS_close_range, lo, hi, 0);
	/* CLOEXEC form: marks, closes nothing; UNSHARE alone: same table. */
	syscall(SYS_close_range, keep1, keep2, CLOSE_RANGE_CLOEXEC);
	syscall(SYS_close_range, 1000, 1010, CLOSE_RANGE_UNSHARE);
	LEAK(keep1, "fam_close_range");
	LEAK(keep2, "fam_close_range");
	return 0;
}

/* exec drops close-on-exec fds however the flag was set; the re-executed
 * program keeps the others and leaks them as its own. */
static NOINLINE int fam_exec(char *self)
{
	open("/dev/null", O_RDONLY | O_CLOEXEC);
	int a = open("/dev/null", O_RDONLY);
	fcntl(a, F_SETFD, FD_CLOEXEC);
	int b = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	fcntl(b, F_SETFD, 0); /* survives */
	int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	(void)c;
	int d = open("/dev/zero", O_RDONLY);
	dup3(d, 30, O_CLOEXEC);
	char fb[16], fd2[16];
	snprintf(fb, sizeof(fb), "%d", b);
	snprintf(fd2, sizeof(fd2), "%d", d);
	execl(self, self, "after-exec", fb, fd2, (char *)NULL);
	return 1;
}

static NOINLINE int clone_child(void *arg)
{
	(void)arg;
	close(open("/dev/null", O_RDONLY));
	LEAK(open("/dev/zero", O_RDONLY), "clone_child"); /* in the shared table */
	fflush(truth_out());
	return 0;
}

static NOINLINE int fam_fork(void)
{
	int inherited = open("/dev/null", O_RDONLY);
	LEAK(inherited, "fam_fork");
	fflush(truth_out()); /* the clone child writes through a copy of the buffer */
	static char stack[64 << 10];
	pid_t c = clone(clone_child, stack + sizeof(stack), CLONE_FILES | SIGCHLD, NULL);
	waitpid(c, NULL, 0);
	pid_t v = vfork();
	if (v == 0)
		_exit(0);
	waitpid(v, NULL, 0);
	pid_t f = fork();
	if (f == 0)
		_exit(0); /* its copy of the table dies with it */
	waitpid(f, NULL, 0);
	return 0;
}

int main(int argc, char **argv)
{
	int rc = 2;
	snprintf(dir, sizeof(dir), "/tmp/corpus-%d", getpid());
	mkdir(dir, 0700);
	truth_out(); /* the truth file takes fd 3 before any family runs */
	if (argc == 4 && strcmp(argv[1], "after-exec") == 0) {
		LEAK(atoi(argv[2]), "fam_exec");
		LEAK(atoi(argv[3]), "fam_exec");
		truth_fds();
		return 0;
	}
	if (argc != 2) {
		fprintf(stderr, "usage: corpus FAMILY\n");
		return 2;
	}
	const char *f = argv[1];
	if (!strcmp(f, "open")) rc = fam_open();
	else if (!strcmp(f, "socket")) rc = fam_socket();
	else if (!strcmp(f, "accept4")) rc = fam_accept4();
	else if (!strcmp(f, "pipe")) rc = fam_pipe();
	else if (!strcmp(f, "socketpair")) rc = fam_socketpair();
	else if (!strcmp(f, "dup")) rc = fam_dup();
	else if (!strcmp(f, "eventfd")) rc = fam_eventfd();
	else if (!strcmp(f, "epoll")) rc = fam_epoll();
	else if (!strcmp(f, "memfd")) rc = fam_memfd();
	else if (!strcmp(f, "timerfd")) rc = fam_timerfd();
	else if (!strcmp(f, "signalfd")) rc = fam_signalfd();
	else if (!strcmp(f, "inotify")) rc = fam_inotify();
	else if (!strcmp(f, "fanotify")) rc = fam_fanotify();
	else if (!strcmp(f, "pidfd")) rc = fam_pidfd();
	else if (!strcmp(f, "userfaultfd")) rc = fam_userfaultfd();
	else if (!strcmp(f, "perf_event")) rc = fam_perf();
	else if (!strcmp(f, "io_uring")) rc = fam_io_uring();
	else if (!strcmp(f, "open_by_handle_at")) rc = fam_handle();
	else if (!strcmp(f, "scm_rights")) rc = fam_scm_rights();
	else if (!strcmp(f, "close_range")) rc = fam_close_range();
	else if (!strcmp(f, "exec")) rc = fam_exec(argv[0]);
	else if (!strcmp(f, "fork")) rc = fam_fork();
	else {
		fprintf(stderr, "corpus: unknown family %s\n", f);
		return 2;
	}
	truth_fds();
	return rc;
}
