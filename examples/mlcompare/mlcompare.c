/*
 * mlcompare: the demo accelerometer classifier (ml/tflite/gen) computed two
 * ways and compared byte for byte:
 *   - inside WebAssembly, with the int8 kernels below (TFLite Micro's
 *     reference integer arithmetic, constants from demo_model.h);
 *   - on the host, through the `ml` endpoint (op invoke) on the very same
 *     model bytes, which live in this container's memory.
 * tc_main logs both results and returns 0 when they are equal, 1 when they
 * differ, 2 when an endpoint is missing. An activation caused by a message
 * whose payload is 'w' or 'h' and a u32 n instead runs n inferences one way
 * (WebAssembly or host) and logs nothing, for benchmarks.
 */
#include "tinycontainer.h"
#include "demo_model.h"

#define N_IN 48
#define N_OUT 4
#define INT32_MIN_ (-2147483647 - 1)
#define INT32_MAX_ 2147483647

static int8_t input[N_IN];
static int8_t out_wasm[N_OUT];
static int8_t out_host[N_OUT];

/* ---- TFLite fixed-point arithmetic ---- */

static int32_t srdhm(int32_t a, int32_t b)
{
	if (a == b && a == INT32_MIN_)
		return INT32_MAX_;
	int64_t ab = (int64_t)a * (int64_t)b;
	int64_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
	return (int32_t)((ab + nudge) / (1ll << 31));
}

static int32_t rdbp(int32_t x, int e)
{
	int32_t mask = (int32_t)((1ll << e) - 1);
	int32_t rem = x & mask;
	int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
	return (x >> e) + (rem > threshold ? 1 : 0);
}

static int32_t mbqm(int32_t x, int32_t m, int shift)
{
	int left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
	return rdbp(srdhm((int32_t)((uint32_t)x << left), m), right);
}

static int32_t clamp(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : v > hi ? hi : v; }

static const int8_t *weights(uint32_t off) { return (const int8_t *)(demo_model + off); }
static const int32_t *bias(uint32_t off) { return (const int32_t *)(demo_model + off); }

/* ---- kernels ---- */

/* CONV_2D 3x1, 8 filters, stride 2, VALID, RELU: [16][3] -> [7][8]. */
static void conv(const int8_t *in, int8_t *out)
{
	const int8_t *f = weights(DEMO_CONV_FILTER_OFF);
	const int32_t *b = bias(DEMO_CONV_BIAS_OFF);
	for (int oy = 0; oy < 7; oy++)
		for (int c = 0; c < 8; c++) {
			int32_t acc = 0;
			for (int k = 0; k < 9; k++) /* input zero point is 0 */
				acc += (int32_t)f[c * 9 + k] * in[oy * 2 * 3 + k];
			acc = mbqm(acc + b[c], demo_conv_mult[c], demo_conv_shift[c]) - 128;
			out[oy * 8 + c] = (int8_t)clamp(acc, -128, 127);
		}
}

/* FULLY_CONNECTED with input zero point -128. */
static void fc(const int8_t *in, int depth, uint32_t foff, uint32_t boff, int units,
	       int32_t mult, int shift, int32_t zp, int32_t lo, int8_t *out)
{
	const int8_t *f = weights(foff);
	const int32_t *b = bias(boff);
	for (int u = 0; u < units; u++) {
		int32_t acc = 0;
		for (int d = 0; d < depth; d++)
			acc += (int32_t)f[u * depth + d] * ((int32_t)in[d] + 128);
		out[u] = (int8_t)clamp(mbqm(acc + b[u], mult, shift) + zp, lo, 127);
	}
}

/* gemmlowp fixed point for SOFTMAX. */
static int32_t sat_shift(int32_t x, int e)
{
	if (e <= 0)
		return rdbp(x, -e);
	int32_t t = (int32_t)((1u << (31 - e)) - 1);
	if (x > t)
		return INT32_MAX_;
	if (x < -t)
		return INT32_MIN_;
	return (int32_t)((uint32_t)x << e);
}

static int32_t exp_quarter(int32_t a)
{
	int32_t x = a + (1 << 28);
	int32_t x2 = srdhm(x, x), x3 = srdhm(x2, x), x4 = srdhm(x2, x2);
	int32_t poly = sat_shift(srdhm(sat_shift(x4, -2) + x3, 715827883) + x2, -1);
	return 1895147668 + srdhm(1895147668, x + poly);
}

static int32_t exp_neg(int32_t a) /* Q5.26 in, Q0.31 out */
{
	static const int32_t mults[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
	int32_t q = (int32_t)1 << 24;
	int32_t amq = (a & (q - 1)) - q;
	int32_t r = exp_quarter(sat_shift(amq, 5));
	int32_t rem = amq - a;
	for (int i = 0; i < 7; i++)
		if (rem & (1 << (24 + i)))
			r = srdhm(r, mults[i]);
	return a == 0 ? INT32_MAX_ : r;
}

static int32_t one_over_one_plus_x(int32_t a)
{
	int64_t sum = (int64_t)a + INT32_MAX_;
	int32_t half = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
	int32_t x = 1515870810 + srdhm(half, -1010580540);
	for (int i = 0; i < 3; i++)
		x += sat_shift(srdhm(x, ((int32_t)1 << 29) - srdhm(half, x)), 2);
	return sat_shift(x, 1);
}

static void softmax(const int8_t *in, int8_t *out, int n)
{
	int32_t maxv = -128, sum = 0;
	for (int i = 0; i < n; i++)
		maxv = in[i] > maxv ? in[i] : maxv;
	for (int i = 0; i < n; i++) {
		int32_t d = in[i] - maxv;
		if (d >= DEMO_SOFTMAX_DIFF_MIN)
			sum += rdbp(exp_neg(srdhm(d * (1 << DEMO_SOFTMAX_SHIFT), DEMO_SOFTMAX_MULT)), 12);
	}
	int headroom = __builtin_clz((uint32_t)sum);
	int32_t scale = one_over_one_plus_x((int32_t)(((uint32_t)sum << headroom) - (1u << 31)));
	int bits_over = 12 - headroom;
	for (int i = 0; i < n; i++) {
		int32_t d = in[i] - maxv;
		if (d >= DEMO_SOFTMAX_DIFF_MIN) {
			int32_t e = exp_neg(srdhm(d * (1 << DEMO_SOFTMAX_SHIFT), DEMO_SOFTMAX_MULT));
			out[i] = (int8_t)clamp(rdbp(srdhm(scale, e), bits_over + 31 - 8) - 128, -128, 127);
		} else {
			out[i] = -128;
		}
	}
}

static void demo_wasm(const int8_t *in, int8_t *out)
{
	static int8_t c[56], h[16], l[4];
	conv(in, c);
	fc(c, 56, DEMO_FC1_FILTER_OFF, DEMO_FC1_BIAS_OFF, 16, DEMO_FC1_MULT, DEMO_FC1_SHIFT, -128, -128, h);
	fc(h, 16, DEMO_FC2_FILTER_OFF, DEMO_FC2_BIAS_OFF, 4, DEMO_FC2_MULT, DEMO_FC2_SHIFT, 0, -128, l);
	softmax(l, out, 4);
}

/* demo_host asks the ml endpoint (handle h) for the same inference. */
static int32_t demo_host(int32_t h, const int8_t *in, int8_t *out)
{
	uint32_t req[6] = {(uint32_t)(__SIZE_TYPE__)demo_model, DEMO_MODEL_LEN, (uint32_t)(__SIZE_TYPE__)in, N_IN,
			   (uint32_t)(__SIZE_TYPE__)out, N_OUT};
	int32_t r = tc_call(h, TC_INVOKE, req, sizeof req, sizeof req);
	if (r < 0)
		return r;
	return r == 4 && req[0] == N_OUT ? 0 : -TC_EINVAL;
}

/* ---- input and logging ---- */

static void read_input(void)
{
	int32_t h = tc_open_str("sensor/accel");
	for (int i = 0; i < 16; i++) {
		int32_t v[3] = {(i * 37) % 1500 - 700, 1000 - (i * 53) % 400, (i * 91) % 900 - 450};
		if (h >= 0)
			tc_call(h, TC_READ, v, 0, sizeof v);
		for (int a = 0; a < 3; a++) { /* milli-g to int8 with scale 1/32 g */
			int32_t q = v[a] * 32;
			q = (q + (q >= 0 ? 500 : -500)) / 1000;
			input[i * 3 + a] = (int8_t)clamp(q, -128, 127);
		}
	}
	if (h >= 0)
		tc_close(h);
}

static char *put_int(char *p, int32_t v)
{
	char tmp[12];
	int n = 0;
	uint32_t u = v < 0 ? (uint32_t)-(int64_t)v : (uint32_t)v;
	if (v < 0)
		*p++ = '-';
	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	while (n)
		*p++ = tmp[--n];
	return p;
}

static char *put_str(char *p, const char *s)
{
	while (*s)
		*p++ = *s++;
	return p;
}

static char *put_vec(char *p, const int8_t *v)
{
	*p++ = '[';
	for (int i = 0; i < N_OUT; i++) {
		if (i)
			*p++ = ' ';
		p = put_int(p, v[i]);
	}
	*p++ = ']';
	return p;
}

/* bench runs the inferences a benchmark message asks for; it returns -1
 * when this activation was not caused by such a message. */
static int32_t bench(void)
{
	static uint8_t ev[64];
	int32_t h = tc_open_str("event");
	if (h < 0)
		return -1;
	int32_t n = tc_call(h, TC_READ, ev, 0, sizeof ev);
	tc_close(h);
	if (n < 2)
		return -1;
	uint32_t tl = ev[0] | (uint32_t)ev[1] << 8;
	if ((uint32_t)n != 2 + tl + 5)
		return -1;
	const uint8_t *p = ev + 2 + tl;
	uint32_t count = p[1] | (uint32_t)p[2] << 8 | (uint32_t)p[3] << 16 | (uint32_t)p[4] << 24;
	if (p[0] == 'w') {
		for (uint32_t i = 0; i < count; i++)
			demo_wasm(input, out_wasm);
		return 0;
	}
	int32_t ml = tc_open_str("ml");
	for (uint32_t i = 0; i < count; i++)
		if (demo_host(ml, input, out_host) < 0)
			return 3;
	tc_close(ml);
	return 0;
}

static int32_t run(void)
{
	static char line[128];
	int32_t b = bench();
	if (b >= 0)
		return b;
	int32_t log = tc_open_str("log");
	int32_t ml = tc_open_str("ml");
	read_input();
	demo_wasm(input, out_wasm);
	int32_t r = ml >= 0 ? demo_host(ml, input, out_host) : ml;
	char *p = put_str(line, "classifier in wasm ");
	p = put_vec(p, out_wasm);
	int32_t status = 2;
	if (r < 0) {
		p = put_str(p, " ml endpoint error ");
		p = put_int(p, r);
	} else {
		int same = 1;
		for (int i = 0; i < N_OUT; i++)
			same &= out_wasm[i] == out_host[i];
		p = put_str(p, ", via ml endpoint ");
		p = put_vec(p, out_host);
		p = put_str(p, same ? " match" : " MISMATCH");
		status = same ? 0 : 1;
	}
	*p = 0;
	if (log >= 0)
		tc_log(log, line);
	return status;
}

TC_MAIN(run)
