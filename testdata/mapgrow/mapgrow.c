// mapgrow: maps memory in known ways for leaktrace's mapped-bytes test.
// map_region maps 8 anonymous regions of 1 MiB; half are unmapped, one is
// cut in the middle (two pieces) and one loses its tail; grow_heap moves
// the program break up by 4 MiB; reserve maps 8 MiB PROT_NONE (address
// space, no memory) and commit_reserved makes 2 MiB of it read-write with
// mprotect, as glibc grows a thread's heap. Before it exits it writes, to
// the file $LEAKTRACE_TRUTH, what is left of each ("region START END",
// "heap OLD NEW": the break before and after, "commit START END") and its
// own /proc/self/maps ("maps LINE"), the kernel's word on them.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define MIB (1UL << 20)
#define KIB (1UL << 10)

__attribute__((noinline)) static char *map_region(size_t n)
{
	char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(2);
	}
	return p;
}

__attribute__((noinline)) static void grow_heap(size_t n, char **old, char **now)
{
	*old = sbrk(0);
	if (sbrk(n) == (void *)-1) {
		perror("sbrk");
		exit(2);
	}
	*now = sbrk(0);
}

__attribute__((noinline)) static char *reserve(size_t n)
{
	char *p = mmap(NULL, n, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap PROT_NONE");
		exit(2);
	}
	return p;
}

__attribute__((noinline)) static void commit_reserved(char *p, size_t n)
{
	if (mprotect(p, n, PROT_READ | PROT_WRITE) < 0) {
		perror("mprotect");
		exit(2);
	}
}

int main(void)
{
	char *r[8];
	for (int i = 0; i < 8; i++)
		r[i] = map_region(MIB);
	for (int i = 0; i < 4; i++)
		munmap(r[i], MIB);
	munmap(r[4] + 64 * KIB, 128 * KIB); /* a hole: two pieces */
	munmap(r[5] + 768 * KIB, 256 * KIB); /* the tail */
	char *old, *now;
	grow_heap(4 * MIB, &old, &now);
	char *res = reserve(8 * MIB);
	commit_reserved(res + 2 * MIB, 2 * MIB);

	const char *path = getenv("LEAKTRACE_TRUTH");
	if (!path)
		return 0;
	FILE *f = fopen(path, "w");
	if (!f)
		return 1;
	fprintf(f, "region %lu %lu\n", (unsigned long)r[4], (unsigned long)(r[4] + 64 * KIB));
	fprintf(f, "region %lu %lu\n", (unsigned long)(r[4] + 192 * KIB), (unsigned long)(r[4] + MIB));
	fprintf(f, "region %lu %lu\n", (unsigned long)r[5], (unsigned long)(r[5] + 768 * KIB));
	fprintf(f, "region %lu %lu\n", (unsigned long)r[6], (unsigned long)(r[6] + MIB));
	fprintf(f, "region %lu %lu\n", (unsigned long)r[7], (unsigned long)(r[7] + MIB));
	fprintf(f, "heap %lu %lu\n", (unsigned long)old, (unsigned long)now);
	fprintf(f, "commit %lu %lu\n", (unsigned long)(res + 2 * MIB), (unsigned long)(res + 4 * MIB));
	FILE *m = fopen("/proc/self/maps", "r");
	char line[512];
	while (m && fgets(line, sizeof(line), m))
		fprintf(f, "maps %s", line);
	if (m)
		fclose(m);
	fclose(f);
	return 0;
}
