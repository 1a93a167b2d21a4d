/* forgetsites: more call sites in one image than leaktrace keeps (16,384),
 * while a hot site's walk is remembered in the kernel. Past the bound Go
 * forgets the image's sites on both sides; the hot site's memo must not
 * name it as a site Go knows afterwards.
 *
 * usage: forgetsites: 2,000 short-lived files through hot() (its walk is
 * remembered), one through each of 32,768 distinct paths (15 levels of two
 * callers each), a pause for the tracer to read them, then 5 leaked through
 * hot(). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

volatile int marker; /* keeps alike bodies apart (no merging, no tail calls) */

NOINLINE int opener(int keep)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (!keep)
		close(fd);
	marker++;
	return fd;
}

/* Level k calls level k-1 through one of two callers, by bit k of n: each
 * n below 2^15 is its own stack. */
#define LEVEL(k, next)                                                   \
	NOINLINE int l##k##a(unsigned n) { int r = next(n); marker += 1; return r; } \
	NOINLINE int l##k##b(unsigned n) { int r = next(n); marker += 2; return r; } \
	NOINLINE int l##k(unsigned n) { int r = (n >> k) & 1 ? l##k##b(n) : l##k##a(n); marker += 3; return r; }

NOINLINE int l_leaf(unsigned n) { (void)n; return opener(0); }
LEVEL(0, l_leaf)
LEVEL(1, l0)
LEVEL(2, l1)
LEVEL(3, l2)
LEVEL(4, l3)
LEVEL(5, l4)
LEVEL(6, l5)
LEVEL(7, l6)
LEVEL(8, l7)
LEVEL(9, l8)
LEVEL(10, l9)
LEVEL(11, l10)
LEVEL(12, l11)
LEVEL(13, l12)
LEVEL(14, l13)

/* The hot site, at a depth of its own (its own frame for the memo). */
NOINLINE int hot(int keep)
{
	int fd = opener(keep);
	marker += 4;
	return fd;
}

int main(void)
{
	/* One CPU: the kernel's walk memos are per CPU. */
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(0, &one);
	sched_setaffinity(0, sizeof(one), &one);
	for (int i = 0; i < 1000; i++)
		hot(0);
	usleep(300 * 1000); /* the tracer learns the site's rules meanwhile */
	for (int i = 0; i < 1000; i++)
		hot(0);
	for (unsigned n = 0; n < (1u << 15); n++)
		l14(n);
	sleep(1); /* the tracer reads them all, and forgets */
	for (int i = 0; i < 5; i++)
		hot(1);
	return 0;
}
