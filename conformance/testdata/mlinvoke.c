/* mlinvoke: the ml endpoint from any runtime. The demo model lives in the
 * guest's own read-only data; each activation fills a deterministic input,
 * invokes the model through `ml` and logs the output bytes in hex, or the
 * error. Built for WebAssembly and (via mlinvoke.bpf.c) for eBPF. */
#include "tinycontainer.h"
#include "../../examples/mlcompare/demo_model.h"

static int8_t input[48];
static int8_t output[16];
static uint32_t req[6];
static char line[64];
static int32_t h_ml = -1, h_log;

static int32_t mlinvoke(void)
{
	if (h_ml < 0) {
		h_log = tc_open("log", 3);
		h_ml = tc_open("ml", 2);
	}
	for (int i = 0; i < 48; i++)
		input[i] = (int8_t)(i * 7 - 100);
	req[0] = (uint32_t)(unsigned long)demo_model;
	req[1] = DEMO_MODEL_LEN;
	req[2] = (uint32_t)(unsigned long)input;
	req[3] = sizeof input;
	req[4] = (uint32_t)(unsigned long)output;
	req[5] = sizeof output;
	int32_t r = tc_call(h_ml, TC_INVOKE, req, sizeof req, sizeof req);
	char *p = line;
	if (r < 0) {
		p = tc_cat(p, "error ");
		p += tc_fmt_i32(p, r);
	} else {
		static const char hex[] = "0123456789abcdef";
		uint32_t n = req[0];
		for (uint32_t i = 0; i < n && i < 16; i++) {
			*p++ = hex[(uint8_t)output[i] >> 4];
			*p++ = hex[(uint8_t)output[i] & 15];
		}
	}
	tc_call(h_log, TC_WRITE, line, (uint32_t)(p - line), 0);
	return 0;
}

TC_MAIN(mlinvoke)
