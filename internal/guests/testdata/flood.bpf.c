/* flood: a loop of calls that each hand the host a 60 KiB buffer to fill
 * (as sensor/microphone does), never returning. Issue 10: a helper call was
 * charged the same whatever its size, 32 of them between two budget polls. */
#include "tinycontainer.h"

static uint8_t buf[60 << 10];

static int32_t flood(void)
{
	int32_t h = tc_open("sensor/microphone", 17);
	for (;;)
		tc_call(h, TC_READ, buf, 0, sizeof buf);
	return 0;
}

TC_MAIN(flood)
