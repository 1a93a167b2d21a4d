// dupparked: opens a file and, with no syscall between, dup2s a pipe onto
// it, then waits. A tracer that holds the open back to pair it with a close
// must send it before the dup2: the fd is a pipe, as /proc/self/fd says.
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	int p[2];
	if (pipe(p))
		return 1;
	int fd = open("/dev/null", O_RDONLY);
	if (fd < 0 || dup2(p[0], fd) != fd)
		return 1;
	printf("ready %d\n", fd);
	fflush(stdout);
	pause();
	return 0;
}
