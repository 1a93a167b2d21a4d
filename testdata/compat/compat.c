// compat: a 64-bit program that makes 32-bit syscalls with int $0x80 (the
// i386 table: open is 5, close is 6), as a 32-bit process would. leaktrace
// follows x86-64 syscalls only: it must say these were not followed, never
// read them as x86-64 numbers. Built -no-pie so the path's address fits in
// the 32-bit register the i386 ABI passes it in.
#include <fcntl.h>
#include <stdio.h>

static const char devnull[] = "/dev/null";

static long compat_syscall2(long nr, long a, long b)
{
	long ret;
	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b) : "memory", "r8", "r9", "r10", "r11");
	return ret;
}

int main(void)
{
	long fd = compat_syscall2(5, (long)devnull, O_RDONLY); /* leaked */
	if (fd < 0) {
		fprintf(stderr, "compat open: %ld\n", fd);
		return 1;
	}
	long fd2 = compat_syscall2(5, (long)devnull, O_RDONLY);
	compat_syscall2(6, fd2, 0); /* close */
	return 0;
}
