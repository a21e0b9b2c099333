/* idle: a small, typical container for the density benchmark: it keeps a
 * handle and a counter in memory and logs nothing. */
#include "tinycontainer.h"

static int32_t h = -1;
static int32_t count;
static int32_t history[64];

static int32_t idle(void)
{
	if (h < 0)
		h = tc_open("sensor/temperature", 18);
	int32_t t = 0;
	tc_read_i32(h, &t);
	history[count++ & 63] = t;
	return 0;
}

TC_MAIN(idle)
