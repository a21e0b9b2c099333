/* listener (tenant acme): activated by each message on acme/telemetry;
 * reads the event and drives led1 high when the temperature is above 22 C. */
#include "tinycontainer.h"

static int32_t h_ev = -1, h_led, h_log;

static int32_t listener(void)
{
	if (h_ev < 0) {
		h_ev = tc_open_str("event");
		h_led = tc_open_str("actuator/led1");
		h_log = tc_open_str("log");
	}
	uint8_t ev[128];
	int32_t n = tc_call(h_ev, TC_READ, ev, 0, sizeof ev);
	if (n < 2)
		return 0; /* not caused by a message */
	uint32_t tl = ev[0] | (uint32_t)ev[1] << 8;
	if (2 + tl + 4 > (uint32_t)n)
		return 0;
	int32_t t;
	__builtin_memcpy(&t, ev + 2 + tl, 4);
	int32_t hot = t > 22000;
	tc_write_i32(h_led, hot);
	char line[64];
	char *p = tc_cat(line, "telemetry ");
	p += tc_fmt_i32(p, t);
	p = tc_cat(p, hot ? " mC: led1 on" : " mC: led1 off");
	tc_call(h_log, TC_WRITE, line, (uint32_t)(p - line), 0);
	return 0;
}

TC_MAIN(listener)
