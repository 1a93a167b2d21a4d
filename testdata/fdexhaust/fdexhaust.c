// fdexhaust: leaks files until the kernel refuses one (EMFILE) under a low
// RLIMIT_NOFILE, then exits at once. The agent's incident test checks that
// the snapshot taken at the failure names leak_until_emfile and the line of
// its open() after this process is gone.
//
// usage: fdexhaust LIMIT
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

static int leaked;

__attribute__((noinline)) static void leak_until_emfile(void)
{
	for (;;) {
		int fd = open("/dev/null", O_RDONLY); /* the leak */
		if (fd < 0) {
			if (errno == EMFILE)
				return;
			perror("open");
			exit(2);
		}
		leaked++;
		usleep(1000); /* a leak spread over time, as in a service */
	}
}

int main(int argc, char **argv)
{
	struct rlimit rl;
	if (argc != 2) {
		fprintf(stderr, "usage: fdexhaust LIMIT\n");
		return 2;
	}
	rl.rlim_cur = rl.rlim_max = strtoul(argv[1], NULL, 10);
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		perror("setrlimit");
		return 2;
	}
	leak_until_emfile();
	printf("leaked %d\n", leaked);
	return 0;
}
