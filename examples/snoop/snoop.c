/* snoop (tenant globex): tries to read the temperature every period. Its
 * metadata does not grant it at first, so the call is denied and audited;
 * once the owner grants it live, the same handle-less retry succeeds. */
#include "tinycontainer.h"

static int32_t h_log = -1;

static int32_t snoop(void)
{
	if (h_log < 0)
		h_log = tc_open_str("log");
	int32_t h = tc_open_str("sensor/temperature");
	char line[64];
	char *p;
	if (h < 0) {
		p = tc_cat(line, "temperature: denied (");
		p += tc_fmt_i32(p, h);
		p = tc_cat(p, ")");
	} else {
		int32_t t = 0;
		int32_t r = tc_read_i32(h, &t);
		tc_close(h);
		if (r < 0) {
			p = tc_cat(line, "temperature read failed (");
			p += tc_fmt_i32(p, r);
			p = tc_cat(p, ")");
		} else {
			p = tc_cat(line, "temperature: ");
			p += tc_fmt_i32(p, t);
			p = tc_cat(p, " mC");
		}
	}
	tc_call(h_log, TC_WRITE, line, (uint32_t)(p - line), 0);
	return 0;
}

TC_MAIN(snoop)
