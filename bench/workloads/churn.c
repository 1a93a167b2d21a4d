// churn: the fd workload leaktrace's benchmark times. It creates and closes
// handles in a tight loop and writes the loop's own duration, in nanoseconds,
// and the number of fds it held, to a file: the tracer's start-up and report
// are then not part of the figure.
//
//   churn -m open|socketpair|interleave|mmap -n N [-H HOLD] [-p PAR] [-g] -o OUT
//   churn -m open|socketpair|interleave|mmap -r RATE -d SECONDS [-p PAR] -o OUT
//
// -m open        open+close /dev/null N times
// -m socketpair  socketpair+close of both ends N times
// -m interleave  open a, open b, close a, close b N times: no fd is closed by
//                the very next syscall, so leaktrace run's in-kernel pairing
//                settles none and every event reaches user space
// -m mmap        mmap of 64 KiB anonymous memory + munmap N times: a memory
//                mapping made and released, each with its record
// -H HOLD        hold HOLD more open fds during the loop (raises RLIMIT_NOFILE;
//                capped at its hard limit when raising it is not allowed)
// -p PAR         PAR processes churn at once, each N times; the time is the
//                wall time of them all
// -g             gated: print "ready" and read a byte from stdin before the
//                loop, print "done" and read another after it, so that a
//                measurement can read counters at both ends of the loop alone
// -r RATE        paced: each process does RATE rounds per second (sleeping
//                when ahead, flat out when it cannot keep up) for -d SECONDS
//
// OUT receives "NS HELD ROUNDS": the loop's time, the fds held and the rounds
// done by all processes.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what)
{
	fprintf(stderr, "churn: %s: %s\n", what, strerror(errno));
	exit(2);
}

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

enum mode { OPEN, SOCKETPAIR, INTERLEAVE, MMAP };

static void churn(enum mode m, long n)
{
	for (long i = 0; i < n; i++) {
		if (m == MMAP) {
			void *p = mmap(NULL, 64 << 10, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (p == MAP_FAILED)
				die("mmap");
			if (munmap(p, 64 << 10) < 0)
				die("munmap");
		} else if (m == SOCKETPAIR) {
			int sv[2];
			if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
				die("socketpair");
			close(sv[0]);
			close(sv[1]);
		} else if (m == INTERLEAVE) {
			int a = open("/dev/null", O_RDONLY);
			int b = open("/dev/null", O_RDONLY);
			if (a < 0 || b < 0)
				die("open /dev/null");
			close(a);
			close(b);
		} else {
			int fd = open("/dev/null", O_RDONLY);
			if (fd < 0)
				die("open /dev/null");
			close(fd);
		}
	}
}

/* paced does rate rounds a second for secs seconds and returns the rounds
 * done: rounds fall due at an even pace, a batch runs whenever some are due
 * and the process sleeps (a syscall no tracer follows) when none are. */
static long paced(enum mode m, long rate, double secs)
{
	long long start = now_ns(), span = (long long)(secs * 1e9);
	long done = 0;
	for (;;) {
		long long t = now_ns() - start;
		if (t >= span)
			return done;
		long due = (long)((double)t * (double)rate / 1e9) - done;
		if (due <= 0) {
			struct timespec ts = {0, 200000};
			nanosleep(&ts, NULL);
			continue;
		}
		if (due > 1000) /* look at the clock often enough to stop on time */
			due = 1000;
		churn(m, due);
		done += due;
	}
}

/* gate tells the reader of stdout where the process stands and waits for a
 * byte (or EOF) on stdin. */
static void gate(const char *where)
{
	char c;
	printf("%s\n", where);
	fflush(stdout);
	if (read(0, &c, 1) < 0)
		die("reading the gate");
}

/* hold opens n fds, or as many as RLIMIT_NOFILE's hard limit allows when
 * raising it is refused (no CAP_SYS_RESOURCE, as in some containers), and
 * returns how many it holds: the benchmark prints that number. */
static long hold(long n)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		die("getrlimit");
	rlim_t want = (rlim_t)n + 64;
	if (rl.rlim_cur < want) {
		struct rlimit up = {want, rl.rlim_max < want ? want : rl.rlim_max};
		if (setrlimit(RLIMIT_NOFILE, &up) == 0) {
			rl = up;
		} else {
			if (errno != EPERM)
				die("setrlimit RLIMIT_NOFILE");
			rl.rlim_cur = rl.rlim_max;
			if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
				die("setrlimit RLIMIT_NOFILE to its hard limit");
			if ((rlim_t)n + 64 > rl.rlim_cur)
				n = (long)rl.rlim_cur - 64;
		}
	}
	for (long i = 0; i < n; i++)
		if (open("/dev/null", O_RDONLY) < 0)
			die("opening held fds");
	return n;
}

int main(int argc, char **argv)
{
	const char *mode = "open", *out = NULL;
	long n = 0, held = 0, par = 1, rate = 0;
	double secs = 0;
	int c, gated = 0;

	while ((c = getopt(argc, argv, "m:n:H:p:o:gr:d:")) != -1) {
		switch (c) {
		case 'm': mode = optarg; break;
		case 'n': n = atol(optarg); break;
		case 'H': held = atol(optarg); break;
		case 'p': par = atol(optarg); break;
		case 'o': out = optarg; break;
		case 'g': gated = 1; break;
		case 'r': rate = atol(optarg); break;
		case 'd': secs = atof(optarg); break;
		default: return 2;
		}
	}
	if (rate > 0 && secs > 0 && n == 0)
		n = 1; /* paced: the duration bounds the loop */
	enum mode m;
	if (strcmp(mode, "open") == 0)
		m = OPEN;
	else if (strcmp(mode, "socketpair") == 0)
		m = SOCKETPAIR;
	else if (strcmp(mode, "interleave") == 0)
		m = INTERLEAVE;
	else if (strcmp(mode, "mmap") == 0)
		m = MMAP;
	else
		n = 0;
	if (n <= 0 || par <= 0 || !out || (rate > 0) != (secs > 0)) {
		fprintf(stderr, "usage: churn -m open|socketpair|interleave|mmap {-n N | -r RATE -d SECONDS} [-H HOLD] [-p PAR] [-g] -o OUT\n");
		return 2;
	}
	if (held > 0)
		held = hold(held);
	if (gated)
		gate("ready");

	long rounds = 0;
	long long start = now_ns();
	if (par == 1) {
		if (rate > 0) {
			rounds = paced(m, rate, secs);
		} else {
			churn(m, n);
			rounds = n;
		}
	} else {
		/* each child writes its round count to the pipe */
		int fds[2];
		if (pipe(fds) < 0)
			die("pipe");
		for (long i = 0; i < par; i++) {
			pid_t pid = fork();
			if (pid < 0)
				die("fork");
			if (pid == 0) {
				long r = n;
				if (rate > 0)
					r = paced(m, rate, secs);
				else
					churn(m, n);
				if (write(fds[1], &r, sizeof r) != sizeof r)
					_exit(2);
				_exit(0);
			}
		}
		close(fds[1]);
		int st;
		while (wait(&st) > 0)
			if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
				return 2;
		long r;
		while (read(fds[0], &r, sizeof r) == sizeof r)
			rounds += r;
		close(fds[0]);
	}
	long long elapsed = now_ns() - start;
	if (gated)
		gate("done");

	/* Close the held fds here, not at exit: a tracer's report then lists no
	 * 100,000 leaks, whose rendering is no part of the figure. */
	if (held > 0 && syscall(SYS_close_range, 3U, ~0U, 0) < 0)
		die("close_range");

	FILE *f = fopen(out, "w");
	if (!f)
		die(out);
	fprintf(f, "%lld %ld %ld\n", elapsed, held, rounds);
	if (fclose(f) != 0)
		die(out);
	return 0;
}
