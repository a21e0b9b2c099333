/* sdkprobe: calls every helper of tinycontainer.h once and logs "ok NAME"
 * or "FAIL NAME r=R" for each; returns the number of failures. Built for
 * WebAssembly (sdkprobe.wasm) and eBPF (sdkprobe.bpf.c includes this file);
 * sdk/c/sdk_test.go runs both. */
#include "tinycontainer.h"

#ifdef __wasm__
#include "../../../examples/mlcompare/demo_model.h"
#define PROBE_BUF 200
#else
#define PROBE_BUF 64 /* eBPF: a 512-byte stack */
#endif

static int32_t h_log;
static int32_t fails;
static char long_key[131];

static __attribute__((noinline)) void check(const char *what, int ok, int32_t r)
{
	char line[48];
	char *p = tc_cat(line, ok ? "ok " : "FAIL ");
	p = tc_cat(p, what);
	if (!ok) {
		p = tc_cat(p, " r=");
		p += tc_fmt_i32(p, r);
	}
	tc_log_n(h_log, line, (uint32_t)(p - line));
	if (!ok)
		fails++;
}

static int32_t probe(void)
{
	h_log = tc_open_str("log");
	if (h_log < 0)
		return 100;

	/* An initializer clang turns into a memset call on WebAssembly. */
	char buf[PROBE_BUF] = {0};
	int32_t h_kv = tc_open_str("kv");
	int32_t r = tc_kv_put(h_kv, buf, sizeof buf, "zeros", buf + 40, 16);
	check("memset", r == 0 && buf[PROBE_BUF - 1] == 0, r);

	/* kv, with a key longer than 127 bytes (its length byte is unsigned). */
	for (int i = 0; i < 130; i++)
		long_key[i] = (char)('a' + i % 26);
	long_key[130] = 0;
	char scratch[140];
	r = tc_kv_put(h_kv, scratch, sizeof scratch, long_key, "v1", 2);
	check("kv_put", r == 0, r);
	char val[140];
	r = tc_kv_get(h_kv, long_key, val, sizeof val);
	check("kv_get", r == 2 && val[0] == 'v' && val[1] == '1', r);
	r = tc_kv_delete(h_kv, long_key);
	check("kv_delete", r == 0, r);
	r = tc_kv_get(h_kv, long_key, val, sizeof val);
	check("kv_get_deleted", r == -TC_ENOENT, r);
	r = tc_kv_pack(scratch, sizeof scratch, "", 0, "x", 1);
	check("kv_pack_empty_key", r == -TC_EINVAL, r);

	int32_t h_msg = tc_open_str("msg/acme/probe");
	r = tc_publish(h_msg, "hello", 5);
	check("publish", r == 0, r);

	int32_t h_ev = tc_open_str("event");
	const char *topic = 0;
	const uint8_t *payload = 0;
	uint32_t tl = 0, pl = 0;
	r = tc_event_read(h_ev, scratch, sizeof scratch, &topic, &tl, &payload, &pl);
	check("event_read", r == 0, r); /* not caused by a message */

	int32_t h_clock = tc_open_str("clock");
	uint64_t now = 0;
	r = tc_clock_us(h_clock, &now);
	check("clock", r == 0 && now > 0, r);

	int32_t t = 0;
	r = tc_read_i32(tc_open_str("sensor/temperature"), &t);
	check("sensor_i32", r == 4 && t > -50000 && t < 100000, r);
	int32_t xyz[3] = {0, 0, 0};
	r = tc_read_accel(tc_open_str("sensor/accel"), xyz);
	check("accel", r == 0, r);
	int16_t pcm[16];
	r = tc_read_pcm(tc_open_str("sensor/microphone"), pcm, 16);
	check("pcm", r == 16, r);

	int32_t h_led = tc_open_str("actuator/led0");
	r = tc_write_i32(h_led, 1);
	check("actuator_write", r == 0, r);
	int32_t led = 0;
	r = tc_read_i32(h_led, &led);
	check("actuator_read", r == 4 && led == 1, r);

#ifdef __wasm__
	static int8_t in[48], out[4];
	r = tc_ml_invoke(tc_open_str("ml"), demo_model, DEMO_MODEL_LEN, in, sizeof in, out, sizeof out);
	check("ml_invoke", r == 4, r);
#endif
	check("log", tc_log(h_log, "a line") == 0, 0);
	return fails;
}
TC_MAIN(probe)
