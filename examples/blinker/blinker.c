/* blinker (tenant globex): toggles led0 every period and logs the count of
 * toggles so far, which lives in instance memory between activations. */
#include "tinycontainer.h"

static int32_t h_led = -1, h_log = -1;
static int32_t toggles;

static int32_t blinker(void)
{
	if (h_led < 0) {
		h_led = tc_open_str("actuator/led0");
		h_log = tc_open_str("log");
	}
	int32_t v = 0;
	tc_read_i32(h_led, &v);
	int32_t r = tc_write_i32(h_led, !v);
	if (r < 0)
		return r;
	toggles++;
	char line[48];
	char *p = tc_cat(line, v ? "led0 off, toggles " : "led0 on, toggles ");
	p += tc_fmt_i32(p, toggles);
	tc_call(h_log, TC_WRITE, line, (uint32_t)(p - line), 0);
	return 0;
}

TC_MAIN(blinker)
