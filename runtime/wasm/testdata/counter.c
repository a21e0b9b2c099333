/* A small guest: counts its activations in memory and logs each one. */
#include "tinycontainer.h"

static int32_t count;
static int32_t log_handle = -1;

static int32_t run(void)
{
	char line[32] = "activation ";
	char digits[12];
	int n = 0, i = 11;
	uint32_t v;

	if (log_handle < 0)
		log_handle = tc_open_str("log");
	count++;
	v = (uint32_t)count;
	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		line[i++] = digits[--n];
	line[i] = 0;
	tc_log(log_handle, line);
	return count;
}

TC_MAIN(run)
