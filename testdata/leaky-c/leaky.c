/* A C program with known leaks, built with frame pointers. Each leaking
 * function is noinline so that it has a frame of its own in the stack. */
#include <fcntl.h>
#include <pthread.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "truth.h"

#define NOINLINE __attribute__((noinline))

NOINLINE int leak_open_file(void)
{
	int fd = open("/etc/hostname", O_RDONLY);
	truth_leak(fd, "leak_open_file");
	return fd;
}

NOINLINE FILE *leak_fopen(void)
{
	FILE *f = fopen("/etc/passwd", "r");
	truth_leak(fileno(f), "leak_fopen");
	return f;
}

NOINLINE int leak_socket(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	truth_leak(fd, "leak_socket");
	return fd;
}

NOINLINE void leak_pipe(void)
{
	int p[2];
	if (pipe(p) == 0) {
		truth_leak(p[0], "leak_pipe");
		truth_leak(p[1], "leak_pipe");
	}
}

NOINLINE int leak_dup(int fd)
{
	int d = dup(fd);
	truth_leak(d, "leak_dup");
	return d;
}

NOINLINE int leak_eventfd(void)
{
	int fd = eventfd(0, EFD_CLOEXEC);
	truth_leak(fd, "leak_eventfd");
	return fd;
}

/* Balanced work: every handle is released. */
NOINLINE void balanced(void)
{
	for (int i = 0; i < 50; i++) {
		int fd = openat(AT_FDCWD, "/dev/null", O_RDONLY);
		close(fd);
		int p[2];
		if (pipe(p) == 0) {
			close(p[0]);
			close(p[1]);
		}
		int s = socket(AF_UNIX, SOCK_DGRAM, 0);
		int d = dup2(s, 100);
		close(s);
		close(d);
	}
}

static void *sleeper(void *arg)
{
	(void)arg;
	sleep(100);
	return NULL;
}

/* A thread still running when the process exits. */
NOINLINE void leak_thread(void)
{
	pthread_t t;
	pthread_create(&t, NULL, sleeper, NULL);
}

/* slow: for attach tests. One fd opened before the attach, then a steady
 * leak of one fd per 10 ms, N times (default 900: about ten seconds). */
static int slow(int n)
{
	int pre = open("/etc/hostname", O_RDONLY);
	printf("ready %d\n", pre);
	fflush(stdout);
	for (int i = 0; i < n; i++) {
		leak_open_file();
		usleep(10000);
	}
	return 0;
}

/* again: run this program N times in turn (default 3), each a new process
 * image of the same file, balanced (for rules taught by file). */
static int again(const char *self, int n)
{
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid < 0)
			return 1;
		if (pid == 0) {
			execl(self, self, "balanced", (char *)NULL);
			_exit(127);
		}
		int status;
		if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
			return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && argv[1][0] == 'a')
		return again(argv[0], argc > 2 ? atoi(argv[2]) : 3);
	if (argc > 1 && argv[1][0] == 's')
		return slow(argc > 2 ? atoi(argv[2]) : 900);
	if (argc > 1 && argv[1][0] == 't') {
		leak_thread();
		usleep(50000);
		return 0;
	}
	balanced();
	if (argc > 1 && argv[1][0] == 'b') { /* "balanced": leak nothing */
		truth_fds();
		return 0;
	}
	int fd = leak_open_file();
	leak_fopen();
	leak_socket();
	leak_pipe();
	leak_dup(fd);
	leak_eventfd();
	truth_fds();
	return 0;
}
