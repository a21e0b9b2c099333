/* rowrite: writes into its own read-only data, a memory fault. */
#include "tinycontainer.h"

static const int32_t constants[4] = {1, 2, 3, 4};
volatile uint32_t index = 2;

static int32_t rowrite(void)
{
	int32_t *p = (int32_t *)&constants[index];
	*(volatile int32_t *)p = 42;
	return constants[index];
}

TC_MAIN(rowrite)
