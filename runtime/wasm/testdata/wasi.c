/* The WASI subset: fd_write (whole and partial lines), clock_time_get,
 * random_get, args and environ sizes, and proc_exit from deep in the
 * stack, which must not leak the C stack between activations. */
#include "tinycontainer.h"

#define WASI(n) __attribute__((import_module("wasi_snapshot_preview1"), import_name(n)))
struct iovec { const void *buf; uint32_t len; };
WASI("fd_write") int32_t fd_write(int32_t fd, const struct iovec *iovs, uint32_t n, uint32_t *written);
WASI("clock_time_get") int32_t clock_time_get(uint32_t id, uint64_t precision, uint64_t *out);
WASI("random_get") int32_t random_get(void *buf, uint32_t len);
WASI("args_sizes_get") int32_t args_sizes_get(uint32_t *argc, uint32_t *size);
WASI("environ_sizes_get") int32_t environ_sizes_get(uint32_t *count, uint32_t *size);
WASI("proc_exit") __attribute__((noreturn)) void proc_exit(uint32_t code);

static volatile int32_t sentinel = 12345;
static int32_t activations;

static int32_t write_str(int32_t fd, const char *s)
{
	struct iovec iov[2] = {{s, tc_strlen(s)}, {"", 0}};
	uint32_t written = 0;
	int32_t e = fd_write(fd, iov, 2, &written);
	return e ? -e : (int32_t)written;
}

/* Uses a big stack frame, then exits from inside it. */
static __attribute__((noinline, noreturn)) void deep_exit(int32_t depth, uint32_t code)
{
	volatile char frame[512];
	frame[depth % 512] = (char)depth;
	if (depth > 0)
		deep_exit(depth - 1, code + frame[depth % 512] * 0);
	proc_exit(code);
}

static int32_t run(void)
{
	uint64_t t1 = 0, t2 = 0;
	uint8_t rnd[16] = {0};
	uint32_t a = 99, b = 99;
	int32_t any = 0;

	if (sentinel != 12345)
		return -1000;
	activations++;
	if (activations == 1) {
		if (write_str(1, "hello ") != 6 || write_str(2, "world\nsecond") != 12)
			return -1;
		if (write_str(3, "x") != -8) /* EBADF */
			return -2;
		if (clock_time_get(1, 0, &t1) || clock_time_get(0, 0, &t2) || t2 < t1)
			return -3;
		if (clock_time_get(9, 0, &t1) != 28) /* EINVAL */
			return -4;
		if (random_get(rnd, sizeof rnd))
			return -5;
		for (int i = 0; i < 16; i++)
			any |= rnd[i];
		if (!any)
			return -6;
		if (args_sizes_get(&a, &b) || a || b || environ_sizes_get(&a, &b) || a || b)
			return -7;
		if (random_get((void *)0xfffffff0, 32) != 21) /* EFAULT */
			return -8;
		return (int32_t)(t1 / 1000);
	}
	deep_exit(4, 7);
}

TC_MAIN(run)
