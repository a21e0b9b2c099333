/* runaway: never returns; only the budget stops it. */
#include "tinycontainer.h"

volatile uint32_t spin;

static int32_t runaway(void)
{
	for (;;)
		spin++;
	return 0;
}

TC_MAIN(runaway)
