// memgrow: grows its resident memory (anonymous, touched) by STEP_KB every
// INTERVAL_MS until TOTAL_MB, prints "holding" and then holds it, idle,
// until killed. The agent's memory test compares its series with
// /proc/PID/status while it holds.
//
// usage: memgrow STEP_KB INTERVAL_MS TOTAL_MB
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((noinline)) static void *grow(size_t n)
{
	char *p = malloc(n);
	if (!p) {
		perror("malloc");
		exit(2);
	}
	memset(p, 0xa5, n); /* resident, not only reserved */
	return p;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: memgrow STEP_KB INTERVAL_MS TOTAL_MB\n");
		return 2;
	}
	size_t step = strtoul(argv[1], NULL, 10) << 10;
	useconds_t every = strtoul(argv[2], NULL, 10) * 1000;
	size_t total = strtoul(argv[3], NULL, 10) << 20;
	for (size_t done = 0; done < total; done += step) {
		grow(step);
		usleep(every);
	}
	printf("holding\n");
	fflush(stdout);
	for (;;)
		pause();
}
