/* vibration (tenant acme): an eBPF femto-container. Every period it reads
 * the accelerometer, tracks the peak deviation from 1 g on the z axis in
 * a global (kept between activations) and logs it. */
#include "tinycontainer.h"

static int32_t h_acc = -1, h_log;
static int32_t peak;
static uint32_t reads;

static int32_t vibration(void)
{
	if (h_acc < 0) {
		h_acc = tc_open("sensor/accel", 12);
		h_log = tc_open("log", 3);
	}
	int32_t a[3];
	int32_t r = tc_call(h_acc, TC_READ, a, 0, sizeof a);
	if (r < 0)
		return r;
	int32_t dev = a[2] - 1000;
	if (dev < 0)
		dev = -dev;
	if (dev > peak)
		peak = dev;
	reads++;
	char line[64];
	char *p = tc_cat(line, "accel z ");
	p += tc_fmt_i32(p, a[2]);
	p = tc_cat(p, " mg, peak deviation ");
	p += tc_fmt_i32(p, peak);
	p = tc_cat(p, " mg over ");
	p += tc_fmt_i32(p, (int32_t)reads);
	p = tc_cat(p, " reads");
	tc_call(h_log, TC_WRITE, line, (uint32_t)(p - line), 0);
	return 0;
}

TC_MAIN(vibration)
