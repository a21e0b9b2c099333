/* runaway (tenant globex): a buggy container that never returns. The
 * watchdog stops each activation at its budget; the fault policy restarts
 * it from a fresh instance, then marks it faulted after max_faults. */
#include "tinycontainer.h"

static volatile uint32_t spin;

static int32_t runaway(void)
{
	int32_t h = tc_open_str("log");
	tc_log(h, "starting a long computation...");
	for (;;)
		spin++;
	return 0;
}

TC_MAIN(runaway)
