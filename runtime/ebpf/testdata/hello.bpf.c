/* hello: logs a line, then round-trips a stack buffer through the host. */
#include "tinycontainer.h"

static int32_t hello(void)
{
	int32_t log = tc_open_str("log");
	if (log < 0)
		return log;
	int32_t r = tc_log(log, "hello from ebpf");
	if (r < 0)
		return r;

	/* The host reverses the request in place ("echo" in the tests). */
	char buf[8] = {'a', 'b', 'c', 'd', 'e', 0, 0, 0};
	int32_t echo = tc_open_str("echo");
	if (echo < 0)
		return echo;
	r = tc_call(echo, TC_READ, buf, 5, sizeof buf);
	if (r != 5 || buf[0] != 'e' || buf[4] != 'a')
		return -100;
	tc_log(log, buf);
	return tc_close(echo);
}

TC_MAIN(hello)
