/* probe: a scripted ABI driver for the conformance suite. It is activated
 * by a message whose payload is a program of ABI steps; it runs them and
 * logs one line per step: "<step> <result> [<hex of the response>]".
 * The same source is built for WebAssembly (probe.wasm) and eBPF
 * (probe.bpf.o, via probe.bpf.c), so one table of cases checks both.
 *
 * Steps (little-endian):
 *   1 open:  u8 name_len, name
 *   2 call:  u8 handle, u8 op, u16 in_len, u16 buf_cap, in_len request bytes
 *            (the request is copied to the start of the probe's buffer)
 *   3 close: u8 handle
 *   4 raw:   u8 handle, u8 op, u32 ptr, u32 in_len, u32 buf_cap (any guest address)
 *   5 spin:  loop forever (for budget tests)
 *   6 trap:  an out-of-bounds access
 * A handle byte >= 0x80 names the result of step (byte - 0x80).
 */
#include "tinycontainer.h"

#define MAX_STEPS 32

static uint8_t ev[1024];
static uint8_t buf[2048];
static int32_t res[MAX_STEPS];
static char line[256];
static int32_t h_log = -1;
static volatile uint32_t sink;

static uint32_t rd16(const uint8_t *p) { return p[0] | (uint32_t)p[1] << 8; }
static uint32_t rd32(const uint8_t *p) { return rd16(p) | rd16(p + 2) << 16; }

static int32_t handle(uint8_t b, int step)
{
	if (b >= 0x80) {
		int k = b - 0x80;
		return k < step ? res[k] : -1;
	}
	return b;
}

static void report(int step, int32_t r, const uint8_t *data, int32_t n)
{
	static const char hex[] = "0123456789abcdef";
	char *p = line;
	p += tc_fmt_i32(p, step);
	*p++ = ' ';
	p += tc_fmt_i32(p, r);
	if (n > 0) {
		*p++ = ' ';
		if (n > 100)
			n = 100;
		for (int32_t i = 0; i < n; i++) {
			*p++ = hex[data[i] >> 4];
			*p++ = hex[data[i] & 15];
		}
	}
	tc_call(h_log, TC_WRITE, line, (uint32_t)(p - line), 0);
}

static int32_t probe(void)
{
	if (h_log < 0)
		h_log = tc_open("log", 3);
	int32_t he = tc_open("event", 5);
	int32_t n = tc_call(he, TC_READ, ev, 0, sizeof ev);
	tc_close(he);
	if (n < 2)
		return 0;
	uint32_t tl = rd16(ev);
	const uint8_t *p = ev + 2 + tl, *end = ev + n;
	for (int step = 0; step < MAX_STEPS && p < end; step++) {
		int32_t r = 0, out = 0;
		uint8_t kind = *p++;
		if (kind == 1) {
			uint32_t len = *p++;
			r = tc_open(p, len);
			p += len;
		} else if (kind == 2) {
			int32_t h = handle(p[0], step);
			uint32_t op = p[1], in_len = rd16(p + 2), cap = rd16(p + 4);
			p += 6;
			for (uint32_t i = 0; i < in_len && i < sizeof buf; i++)
				buf[i] = p[i];
			p += in_len;
			r = tc_call(h, op, buf, in_len, cap);
			out = r;
		} else if (kind == 3) {
			r = tc_close(handle(p[0], step));
			p += 1;
		} else if (kind == 4) {
			int32_t h = handle(p[0], step);
			r = tc_call(h, p[1], (void *)(unsigned long)rd32(p + 2), rd32(p + 6), rd32(p + 10));
			p += 14;
		} else if (kind == 5) {
			for (;;)
				sink++;
		} else if (kind == 6) {
			volatile uint8_t *bad = (volatile uint8_t *)(unsigned long)0xfffffff0u;
			sink = *bad;
		} else {
			return 99;
		}
		res[step] = r;
		report(step, r, buf, out);
	}
	return 0;
}

TC_MAIN(probe)
