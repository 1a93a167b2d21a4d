/* forksites: the parent makes short-lived files at one call site, gives the
 * tracer time to learn it, then forks children that make more at the same
 * site. A forked child has its parent's code at the same addresses: its
 * stacks should cross as that site from its first creation, not be learned
 * again per child.
 *
 * usage: forksites CHILDREN ROUNDS: the parent makes 500, each child ROUNDS,
 * too few and too fast for the tracer to learn anything from a child alone. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

NOINLINE int open_short(void) { return open("/dev/null", O_RDONLY | O_CLOEXEC); }

NOINLINE void churn(int rounds)
{
	for (int i = 0; i < rounds; i++)
		close(open_short());
}

int main(int argc, char **argv)
{
	int children = argc > 1 ? atoi(argv[1]) : 8;
	int rounds = argc > 2 ? atoi(argv[2]) : 20;

	churn(500);
	usleep(300 * 1000); /* the tracer learns the site meanwhile */
	for (int c = 0; c < children; c++) {
		pid_t pid = fork();
		if (pid < 0)
			return 1;
		if (pid == 0) {
			churn(rounds);
			_exit(0);
		}
		waitpid(pid, NULL, 0);
	}
	return 0;
}
