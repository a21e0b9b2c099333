/* thermo (tenant acme): every period, read the temperature, keep the last
 * reading in kv, publish it as telemetry and log it. */
#include "tinycontainer.h"

static int32_t h_temp = -1, h_log = -1, h_kv = -1, h_pub = -1;

static int32_t thermo(void)
{
	if (h_temp < 0) { /* first activation of this instance: open once, keep the handles */
		h_temp = tc_open_str("sensor/temperature");
		h_log = tc_open_str("log");
		h_kv = tc_open_str("kv");
		h_pub = tc_open_str("msg/acme/telemetry");
	}
	int32_t t = 0;
	int32_t r = tc_read_i32(h_temp, &t);
	if (r < 0)
		return r;

	char line[64];
	char *p = tc_cat(line, "temperature ");
	p += tc_fmt_i32(p, t / 1000);
	*p++ = '.';
	int32_t frac = (t < 0 ? -t : t) % 1000 / 10;
	if (frac < 10)
		*p++ = '0';
	p += tc_fmt_i32(p, frac);
	p = tc_cat(p, " C");
	tc_call(h_log, TC_WRITE, line, (uint32_t)(p - line), 0);

	/* kv put: u8 key length, key, value */
	char put[1 + 4 + 4] = {4, 'l', 'a', 's', 't'};
	__builtin_memcpy(put + 5, &t, 4);
	tc_call(h_kv, TC_PUT, put, sizeof put, 0);

	tc_call(h_pub, TC_PUBLISH, &t, sizeof t, 0);
	return 0;
}

TC_MAIN(thermo)
