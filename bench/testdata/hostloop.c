/* hostloop: n endpoint calls in one activation, for the endpoint-call
 * benchmark. The activation's message carries u8 op, u32 n; each call is
 * tc.call(op) on actuator/led0 (read is granted, write is not, so op 2
 * measures denied calls). */
#include "tinycontainer.h"

static uint8_t ev[32];
static int32_t h_ev = -1, h_led;

static int32_t hostloop(void)
{
	if (h_ev < 0) {
		h_ev = tc_open("event", 5);
		h_led = tc_open("actuator/led0", 13);
	}
	int32_t n = tc_call(h_ev, TC_READ, ev, 0, sizeof ev);
	if (n < 2)
		return 1;
	uint32_t tl = ev[0] | (uint32_t)ev[1] << 8;
	if ((uint32_t)n != 2 + tl + 5)
		return 2;
	const uint8_t *p = ev + 2 + tl;
	uint32_t op = p[0];
	uint32_t count = p[1] | (uint32_t)p[2] << 8 | (uint32_t)p[3] << 16 | (uint32_t)p[4] << 24;
	/* The loop does nothing but the call, like the bare-wazero yardstick:
	 * the handle and lengths are loop-invariant locals. */
	int32_t v = 0, last = 0, h = h_led;
	uint32_t in_len = op == TC_WRITE ? 4 : 0;
	for (uint32_t i = 0; i < count; i++)
		last = tc_call(h, op, &v, in_len, 4);
	return last < 0 ? -last : 0;
}

TC_MAIN(hostloop)
