/* calls: bpf-to-bpf calls to static and global functions, arguments in
 * registers and on the caller's stack, and bounded recursion. */
#include "tinycontainer.h"

volatile int32_t depth = 6; /* in .data, so the compiler cannot fold it */

/* Doubly recursive, so the compiler cannot turn it into a loop. */
__attribute__((noinline)) static int32_t fib(int32_t n)
{
	if (n < 2)
		return n;
	return fib(n - 1) + fib(n - 2);
}

__attribute__((noinline)) static void fill(uint8_t *buf, uint32_t n, uint8_t v)
{
	for (uint32_t i = 0; i < n; i++)
		buf[i] = v + i;
}

__attribute__((noinline)) int32_t checksum(const uint8_t *buf, uint32_t n)
{
	int32_t s = 0;
	for (uint32_t i = 0; i < n; i++)
		s = s * 31 + buf[i];
	return s;
}

__attribute__((noinline)) static int32_t five(int32_t a, int32_t b, int32_t c, int32_t d, int32_t e)
{
	return a - b + c * d - e;
}

static int32_t calls(void)
{
	uint8_t buf[64];
	fill(buf, sizeof buf, 3);
	int32_t c = checksum(buf, sizeof buf);
	/* fib(depth) nests depth frames below this one: the limit is 8. */
	return fib(depth) * 1000 + five(1, 2, 3, 4, 5) + (c == checksum(buf, sizeof buf) ? 0 : 1);
}

TC_MAIN(calls)
