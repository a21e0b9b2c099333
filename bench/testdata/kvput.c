/* kvput: writes one kv value per activation (its activation count), the
 * way a logger of readings would. */
#include "tinycontainer.h"

static int32_t h_kv = -1;
static uint32_t n;

static int32_t kvput(void)
{
	if (h_kv < 0)
		h_kv = tc_open("kv", 2);
	uint8_t req[6] = {1, 'n'};
	n++;
	req[2] = (uint8_t)n;
	req[3] = (uint8_t)(n >> 8);
	req[4] = (uint8_t)(n >> 16);
	req[5] = (uint8_t)(n >> 24);
	int32_t r = tc_call(h_kv, TC_PUT, req, sizeof req, 0);
	return r < 0 ? -r : 0;
}

TC_MAIN(kvput)
