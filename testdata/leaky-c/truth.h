/* Ground truth for leaktrace's integration tests: before exiting, a test
 * program writes which function opened each fd it leaks on purpose, and then
 * the kernel's own list of its open fds (/proc/self/fd). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static FILE *truth_out(void)
{
	static FILE *f;
	const char *p = getenv("LEAKTRACE_TRUTH");
	if (!f && p)
		f = fopen(p, "we");
	return f;
}

static void truth_leak(int fd, const char *fn)
{
	FILE *f = truth_out();
	if (f)
		fprintf(f, "leak %d %s\n", fd, fn);
}

/* truth_fds lists /proc/self/fd, leaving out the truth file itself and the
 * directory fd that opendir holds while we read. */
static void truth_fds(void)
{
	FILE *f = truth_out();
	if (!f)
		return;
	fflush(f);
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		int fd = atoi(e->d_name);
		if (fd == dirfd(d) || fd == fileno(f))
			continue;
		fprintf(f, "open %d\n", fd);
	}
	closedir(d);
	fclose(f);
}
