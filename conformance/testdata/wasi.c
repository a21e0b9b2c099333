/* wasi: the WASI subset of SPEC section 2 on a device. Each activation
 * writes a line to stdout and to stderr, reads the monotonic clock, and
 * logs what it got through the tc ABI; its exit code says which WASI calls
 * failed (bit 0: fd_write, bit 1: clock_time_get, bit 2: random_get). */
#define TC_WASI
#include "tinycontainer.h"

static int32_t wasi(void)
{
	int32_t failed = 0;
	static const char out[] = "hello from stdout\n";
	static const char err[] = "partial ";
	static const char err2[] = "line from stderr\n";
	struct tc_iovec iov[1] = {{out, sizeof out - 1}};
	struct tc_iovec iov2[2] = {{err, sizeof err - 1}, {err2, sizeof err2 - 1}};
	uint32_t n = 0;
	if (fd_write(1, iov, 1, &n) != 0 || n != sizeof out - 1)
		failed |= 1;
	if (fd_write(2, iov2, 2, &n) != 0)
		failed |= 1;
	uint64_t t = 0;
	if (clock_time_get(1, 1, &t) != 0 || t == 0)
		failed |= 2;
	uint8_t rnd[8];
	if (random_get(rnd, sizeof rnd) != 0)
		failed |= 4;
	return failed;
}

TC_MAIN(wasi)
