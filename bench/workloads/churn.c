// churn: the fd workload leaktrace's benchmark times. It creates and closes
// handles in a tight loop and writes the loop's own duration, in nanoseconds,
// and the number of fds it held, to a file: the tracer's start-up and report
// are then not part of the figure.
//
//   churn -m open|socketpair|interleave -n N [-H HOLD] [-p PAR] -o OUT
//
// -m open        open+close /dev/null N times
// -m socketpair  socketpair+close of both ends N times
// -m interleave  open a, open b, close a, close b N times: no fd is closed by
//                the very next syscall, so leaktrace run's in-kernel pairing
//                settles none and every event reaches user space
// -H HOLD        hold HOLD more open fds during the loop (raises RLIMIT_NOFILE;
//                capped at its hard limit when raising it is not allowed)
// -p PAR         PAR processes churn at once, each N times; the time is the
//                wall time of them all
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
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

enum mode { OPEN, SOCKETPAIR, INTERLEAVE };

static void churn(enum mode m, long n)
{
	for (long i = 0; i < n; i++) {
		if (m == SOCKETPAIR) {
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
	long n = 0, held = 0, par = 1;
	int c;

	while ((c = getopt(argc, argv, "m:n:H:p:o:")) != -1) {
		switch (c) {
		case 'm': mode = optarg; break;
		case 'n': n = atol(optarg); break;
		case 'H': held = atol(optarg); break;
		case 'p': par = atol(optarg); break;
		case 'o': out = optarg; break;
		default: return 2;
		}
	}
	enum mode m;
	if (strcmp(mode, "open") == 0)
		m = OPEN;
	else if (strcmp(mode, "socketpair") == 0)
		m = SOCKETPAIR;
	else if (strcmp(mode, "interleave") == 0)
		m = INTERLEAVE;
	else
		n = 0;
	if (n <= 0 || par <= 0 || !out) {
		fprintf(stderr, "usage: churn -m open|socketpair|interleave -n N [-H HOLD] [-p PAR] -o OUT\n");
		return 2;
	}
	if (held > 0)
		held = hold(held);

	long long start = now_ns();
	if (par == 1) {
		churn(m, n);
	} else {
		for (long i = 0; i < par; i++) {
			pid_t pid = fork();
			if (pid < 0)
				die("fork");
			if (pid == 0) {
				churn(m, n);
				_exit(0);
			}
		}
		int st;
		while (wait(&st) > 0)
			if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
				return 2;
	}
	long long elapsed = now_ns() - start;

	/* Close the held fds here, not at exit: a tracer's report then lists no
	 * 100,000 leaks, whose rendering is no part of the figure. */
	if (held > 0 && syscall(SYS_close_range, 3U, ~0U, 0) < 0)
		die("close_range");

	FILE *f = fopen(out, "w");
	if (!f)
		die(out);
	fprintf(f, "%lld %ld\n", elapsed, held);
	if (fclose(f) != 0)
		die(out);
	return 0;
}
