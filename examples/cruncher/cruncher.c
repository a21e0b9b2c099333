/* cruncher: a tenant's analytics job, computing for a good while in every
 * activation (a few hundred milliseconds of CPU). At priority 1 it only
 * gets the CPU that higher priorities leave, and its tenant's CPU share
 * caps it: the scheduler suspends it for higher-priority work and
 * throttles it past the share; neither is a fault, and it resumes exactly
 * where it was. */
#include "tinycontainer.h"

static uint32_t table[256];
static uint32_t batches;
static int32_t h_log = -1;

static int32_t cruncher(void)
{
	if (h_log < 0)
		h_log = tc_open("log", 3);
	uint32_t x = batches + 1, sum = 0;
	for (uint32_t i = 0; i < (1u << 27); i++) {
		x = x * 1664525u + 1013904223u;
		table[i & 255] += x;
		sum += x;
	}
	batches++;
	char line[48], *e = tc_cat(line, "batch ");
	e += tc_fmt_i32(e, (int32_t)batches);
	e = tc_cat(e, " done, checksum ");
	e += tc_fmt_i32(e, (int32_t)(sum & 0x7fffffff));
	*e = 0;
	tc_log(h_log, line);
	return 0;
}

TC_MAIN(cruncher)
