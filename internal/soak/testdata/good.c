/* good (soak): a well-behaved container. Every activation it logs four
 * numbered lines ("tick N"), keeps the count in kv and publishes it. */
#include "tinycontainer.h"

static int32_t h_log = -1, h_kv = -1, h_pub = -1;
static int32_t n;

static int32_t good(void)
{
	if (h_log < 0) {
		h_log = tc_open_str("log");
		h_kv = tc_open_str("kv");
		h_pub = tc_open_str("msg/good/tick");
	}
	char line[32];
	for (int i = 0; i < 4; i++) {
		n++;
		char *p = tc_cat(line, "tick ");
		p += tc_fmt_i32(p, n);
		tc_log_n(h_log, line, (uint32_t)(p - line));
	}
	char buf[16];
	tc_kv_put(h_kv, buf, sizeof buf, "n", &n, sizeof n);
	tc_publish(h_pub, &n, sizeof n);
	return 0;
}

TC_MAIN(good)
