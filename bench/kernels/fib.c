//go:build ignore

/* Compute kernel: naive recursive Fibonacci (call-bound). */
#include "tinycontainer.h"

static __attribute__((noinline)) int32_t fib(int32_t n)
{
	return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

static volatile int32_t arg = 25;

static int32_t run(void) { return fib(arg); }

TC_MAIN(run)
