/* deep: recursion past the 8-frame limit, a trap. */
#include "tinycontainer.h"

volatile int32_t depth = 100;

__attribute__((noinline)) static int32_t fib(int32_t n)
{
	if (n < 2)
		return n;
	return fib(n - 1) + fib(n - 2);
}

static int32_t deep(void) { return fib(depth); }

TC_MAIN(deep)
