/* crunch: computes for a while in every activation, the way a tenant's
 * analytics would, and checks that nothing it keeps in memory, on its
 * stack or in registers changed behind its back (a suspended activation
 * must resume exactly where it was). The activation's message carries a
 * u32 number of iterations (default 1<<20). It logs "crunch R" after its
 * R-th activation and returns 3 when its check fails. */
#include "tinycontainer.h"

static uint32_t table[256];
static uint32_t runs, total;
static uint8_t ev[32];
static int32_t h_ev = -1, h_log = -1;

static int32_t crunch(void)
{
	if (h_ev < 0) {
		h_ev = tc_open("event", 5);
		h_log = tc_open("log", 3);
	}
	uint32_t n = 1u << 20;
	int32_t k = tc_call(h_ev, TC_READ, ev, 0, sizeof ev);
	if (k >= 2) {
		uint32_t tl = ev[0] | (uint32_t)ev[1] << 8;
		if ((uint32_t)k >= 2 + tl + 4) {
			const uint8_t *p = ev + 2 + tl;
			n = p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
		}
	}
	uint32_t x = runs + 1, sum = 0;
	for (uint32_t i = 0; i < n; i++) {
		x = x * 1664525u + 1013904223u;
		table[i & 255] += x;
		sum += x;
	}
	uint32_t now = 0;
	for (uint32_t i = 0; i < 256; i++)
		now += table[i];
	if (now - total != sum)
		return 3;
	total = now;
	runs++;
	char line[32], *e = tc_cat(line, "crunch ");
	e += tc_fmt_i32(e, (int32_t)runs);
	*e = 0;
	tc_log(h_log, line);
	return 0;
}

TC_MAIN(crunch)
