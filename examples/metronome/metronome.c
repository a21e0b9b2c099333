/* metronome: a high-priority control loop with a 20 ms period. It reads
 * the clock each tick and reports every 50th tick how late the worst tick
 * started since the last report: next to a computing low-priority tenant it
 * keeps its rhythm because it preempts it. */
#include "tinycontainer.h"

static int32_t h_clock = -1, h_log = -1;
static uint32_t ticks;
static uint64_t first, worst;

static int32_t metronome(void)
{
	if (h_clock < 0) {
		h_clock = tc_open("clock", 5);
		h_log = tc_open("log", 3);
	}
	uint64_t now = 0;
	if (tc_call(h_clock, TC_READ, &now, 0, sizeof now) != 8)
		return 1;
	if (ticks == 0)
		first = now;
	/* lateness against the ideal tick: first + ticks * 20 ms */
	uint64_t ideal = first + (uint64_t)ticks * 20000;
	uint64_t late = now > ideal ? now - ideal : 0;
	if (late > worst)
		worst = late;
	ticks++;
	if (ticks % 50 == 0) {
		char line[64], *e = tc_cat(line, "tick ");
		e += tc_fmt_i32(e, (int32_t)ticks);
		e = tc_cat(e, ", worst start since last report ");
		e += tc_fmt_i32(e, (int32_t)worst);
		e = tc_cat(e, " us late");
		*e = 0;
		tc_log(h_log, line);
		worst = 0;
	}
	return 0;
}

TC_MAIN(metronome)
