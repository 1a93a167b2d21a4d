/* A program that creates one handle three calls deep, for the unwinder tests.
 * Lines marked LINE:name are looked up by the tests. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

volatile int sink;
int main(int argc, char **argv);

static inline __attribute__((always_inline)) int open_inline(const char *path)
{
	return open(path, O_RDONLY); /* LINE:open */
}

__attribute__((noinline, noclone)) int leak_c(const char *mode, const char *path)
{
	int fd;
	if (strcmp(mode, "open") == 0)
		fd = open_inline(path); /* LINE:inline */
	else if (strcmp(mode, "openat") == 0)
		fd = openat(AT_FDCWD, path, O_RDONLY); /* LINE:openat */
	else if (strcmp(mode, "socket") == 0)
		fd = socket(AF_UNIX, SOCK_STREAM, 0); /* LINE:socket */
	else if (strcmp(mode, "dup") == 0)
		fd = dup(0); /* LINE:dup */
	else {
		/* The return address into leak_b and where main is, for the tests that
		 * symbolize without tracing. */
		printf("%#lx %#lx\n", (unsigned long)(uintptr_t)__builtin_return_address(0),
		       (unsigned long)(uintptr_t)&main);
		fd = -1;
	}
	sink = fd;
	return fd + 1;
}

__attribute__((noinline, noclone)) int leak_b(const char *mode, const char *path)
{
	int r = leak_c(mode, path); /* LINE:b */
	sink = r;
	return r + 1;
}

__attribute__((noinline, noclone)) int leak_a(const char *mode, const char *path)
{
	int r = leak_b(mode, path); /* LINE:a */
	sink = r;
	return r + 1;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	int r = leak_a(argv[1], argv[2]); /* LINE:main */
	return r == 12345;
}
