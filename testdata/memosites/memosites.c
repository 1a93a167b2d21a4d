/* memosites: one call site reached through two callers whose frames are
 * alike, so that the open's frame (pc, sp, bp) is the same from both and only
 * the return addresses on the stack tell them apart. The kernel remembers a
 * walk by that frame and the stack words it read; a memo of one caller must
 * never name the other.
 *
 * usage: memosites WARM: WARM short-lived files through via_a (the memo is
 * made and used), then 5 leaked through via_b, then 3 through via_a. */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

volatile int marker; /* keeps the two callers' bodies apart (no merging) */

NOINLINE int opener(void) { return open("/dev/null", O_RDONLY | O_CLOEXEC); }

NOINLINE int via_a(int keep)
{
	marker = 1;
	int fd = opener();
	if (!keep)
		close(fd);
	return fd;
}

NOINLINE int via_b(int keep)
{
	marker = 2;
	int fd = opener();
	if (!keep)
		close(fd);
	return fd;
}

int main(int argc, char **argv)
{
	int warm = argc > 1 ? atoi(argv[1]) : 3000;

	for (int i = 0; i < warm; i++)
		via_a(0);
	usleep(300 * 1000); /* the tracer learns the site's rules meanwhile */
	for (int i = 0; i < warm; i++)
		via_a(0);
	for (int i = 0; i < 5; i++)
		via_b(1);
	for (int i = 0; i < 3; i++)
		via_a(1);
	return 0;
}
