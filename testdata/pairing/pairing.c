/* Short-lived handles in a multi-threaded process, for in-kernel pairing:
 * four threads open and close files, sockets and pipes (whose ends are
 * released apart), some closed right away,
 * some after blocking, some by another thread, some held past the pairing
 * window and then closed; each thread also leaks a few on purpose. The
 * leaks, and only they, must be reported; most of the rest should never
 * leave the kernel. Usage: pairing [ROUNDS] (default 2000 per thread). */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "../leaky-c/truth.h"

#define NOINLINE __attribute__((noinline))
#define THREADS 4
#define LEAKS 3

static int rounds = 2000;
static pthread_mutex_t truth_mu = PTHREAD_MUTEX_INITIALIZER;
/* Handed from each thread to the next, which closes it. */
static _Atomic int handoff[THREADS];

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

NOINLINE int leak_in_thread(void)
{
	int fd = open("/etc/hostname", O_RDONLY | O_CLOEXEC);
	pthread_mutex_lock(&truth_mu);
	truth_leak(fd, "leak_in_thread");
	pthread_mutex_unlock(&truth_mu);
	return fd;
}

NOINLINE int open_short(void) { return open("/dev/null", O_RDONLY | O_CLOEXEC); }

NOINLINE int socket_short(void) { return socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); }

NOINLINE int pipe_short(int p[2]) { return pipe2(p, O_CLOEXEC); }

/* A pipe whose read end is closed at once and whose write end leaks. */
NOINLINE void leak_pipe_end(void)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC))
		return;
	close(p[0]);
	pthread_mutex_lock(&truth_mu);
	truth_leak(p[1], "leak_pipe_end");
	pthread_mutex_unlock(&truth_mu);
}

static void *worker(void *arg)
{
	int me = (int)(long)arg;
	for (int i = 0; i < rounds; i++) {
		int fd = open_short();
		if (i % 16 == 0)
			sleep_ms(0); /* blocks: the thread is switched out holding fd */
		close(fd);
		int s = socket_short();
		close(s);
		int p[2];
		if (pipe_short(p) == 0) {
			close(p[i % 2]);
			close(p[1 - i % 2]);
		}
		/* The next thread closes what this one opened. */
		int h = open_short();
		int prev = atomic_exchange(&handoff[(me + 1) % THREADS], h);
		if (prev > 0)
			close(prev);
		int mine = atomic_exchange(&handoff[me], 0);
		if (mine > 0)
			close(mine);
	}
	/* Held past the pairing window, then closed: not a leak. */
	int held = open_short();
	sleep_ms(300);
	close(held);
	for (int i = 0; i < LEAKS; i++)
		leak_in_thread();
	leak_pipe_end();
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		rounds = atoi(argv[1]);
	pthread_t t[THREADS];
	for (long i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, worker, (void *)i);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < THREADS; i++) {
		int h = atomic_exchange(&handoff[i], 0);
		if (h > 0)
			close(h);
	}
	truth_fds();
	return 0;
}
