/* evil (soak): a hostile container. Every activation it floods its log
 * with long lines, publishes large messages and rewrites kv values past
 * its quota, as fast as it can for a few hundred rounds. */
#include "tinycontainer.h"

static int32_t h_log = -1, h_kv = -1, h_pub = -1;
static char big[512];

static int32_t evil(void)
{
	if (h_log < 0) {
		h_log = tc_open_str("log");
		h_kv = tc_open_str("kv");
		h_pub = tc_open_str("msg/evil/flood");
		for (int i = 0; i < (int)sizeof big; i++)
			big[i] = (char)('a' + i % 26);
	}
	char req[1 + 2 + 256];
	for (int i = 0; i < 300; i++) {
		tc_log_n(h_log, big, 200);
		tc_publish(h_pub, big, 256);
		req[0] = 2;
		req[1] = 'k';
		req[2] = (char)('a' + i % 26);
		tc_copy(req + 3, big, 256);
		tc_call(h_kv, TC_PUT, req, sizeof req, 0);
	}
	return 0;
}

TC_MAIN(evil)
