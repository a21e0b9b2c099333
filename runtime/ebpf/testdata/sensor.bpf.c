/* sensor: reads the temperature, logs it in whole degrees, and shows that
 * an endpoint the metadata does not grant stays closed. */
#include "tinycontainer.h"

static void format_int(char *out, int32_t v)
{
	char tmp[12];
	uint32_t n = 0, u = v < 0 ? -(uint32_t)v : (uint32_t)v;
	do {
		tmp[n++] = '0' + u % 10;
		u /= 10;
	} while (u && n < sizeof tmp);
	if (v < 0)
		*out++ = '-';
	while (n)
		*out++ = tmp[--n];
	*out = 0;
}

static int32_t sensor(void)
{
	if (tc_open_str("actuator/led0") != -TC_EPERM)
		return -200;
	int32_t t = tc_open_str("sensor/temperature");
	if (t < 0)
		return t;
	int32_t milli = 0;
	int32_t r = tc_read_i32(t, &milli);
	if (r < 0)
		return r;
	/* eBPF v1 has no signed division: divide the magnitude. */
	uint32_t mag = milli < 0 ? -(uint32_t)milli : (uint32_t)milli;
	int32_t whole = (int32_t)(mag / 1000);
	char line[32] = "temperature ";
	format_int(line + 12, milli < 0 ? -whole : whole);
	tc_log(tc_open_str("log"), line);
	return milli;
}

TC_MAIN(sensor)
