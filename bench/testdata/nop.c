/* nop: an activation that does nothing, to measure what an activation
 * costs by itself (scheduler handoff, entry call, bookkeeping). */
#include "tinycontainer.h"

static int32_t nop(void) { return 0; }

TC_MAIN(nop)
