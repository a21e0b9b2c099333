/* oob: reads through a wild pointer, a memory fault. */
#include "tinycontainer.h"

volatile uint32_t target = 0x40000000;

static int32_t oob(void)
{
	return *(volatile int32_t *)(unsigned long)target;
}

TC_MAIN(oob)
