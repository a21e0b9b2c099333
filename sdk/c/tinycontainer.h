/*
 * tinycontainer.h - the TinyContainer guest ABI, version 1, for both guest
 * targets, with a helper for every endpoint. The user guide's page
 * docs/abi.md describes the ABI; docs/endpoints/ each endpoint.
 *
 * Build lines that work (the project's Makefile uses the same flags):
 *
 *   WebAssembly: 64 KiB of memory (a manifest's limits.memory of 64KiB or
 *   more), 8 KiB of it stack:
 *     clang --target=wasm32 -O2 -nostdlib -ffreestanding -I sdk/c \
 *       -Wl,--no-entry -Wl,--strip-all -Wl,-z,stack-size=8192 -Wl,--initial-memory=65536 \
 *       app.c -o app.wasm
 *
 *   eBPF femto-container (512-byte stack; keep buffers small):
 *     clang -target bpf -mcpu=v3 -O2 -ffreestanding -I sdk/c -c app.c -o app.bpf.o
 *     (plain -O2 without -mcpu works too; v3 runs faster)
 *
 * A guest defines `static int32_t my_main(void)` and writes TC_MAIN(my_main).
 * Every host function and helper returns a value >= 0 or a negative errno
 * (-TC_EPERM, ...). Define TC_NO_MEMFUNCS before including this header if
 * you link your own memset/memcpy/memmove/memcmp.
 */
#ifndef TINYCONTAINER_H
#define TINYCONTAINER_H

typedef __INT8_TYPE__ int8_t;
typedef __UINT8_TYPE__ uint8_t;
typedef __INT16_TYPE__ int16_t;
typedef __UINT16_TYPE__ uint16_t;
typedef __INT32_TYPE__ int32_t;
typedef __UINT32_TYPE__ uint32_t;
typedef __INT64_TYPE__ int64_t;
typedef __UINT64_TYPE__ uint64_t;

/* Endpoint operations (SPEC section 3). */
#define TC_READ 1
#define TC_WRITE 2
#define TC_GET 3
#define TC_PUT 4
#define TC_DELETE 5
#define TC_PUBLISH 6
#define TC_INVOKE 7

/* Errors, returned negated (SPEC section 4). */
#define TC_EPERM 1
#define TC_ENOENT 2
#define TC_EIO 5
#define TC_EBADF 9
#define TC_EAGAIN 11
#define TC_EFAULT 14
#define TC_EINVAL 22
#define TC_ENOSPC 28
#define TC_ENOSYS 38
#define TC_EMSGSIZE 90

#if defined(__wasm__)

#define TC_IMPORT(n) __attribute__((import_module("tc"), import_name(n)))
TC_IMPORT("open") int32_t tc_open(const void *name, uint32_t name_len);
TC_IMPORT("call") int32_t tc_call(int32_t handle, uint32_t op, void *buf, uint32_t in_len, uint32_t buf_cap);
TC_IMPORT("close") int32_t tc_close(int32_t handle);

/* The entry point: exported as tc_main, type () -> i32. */
#define TC_MAIN(fn) \
	__attribute__((export_name("tc_main"))) int32_t tc_main(void) { return fn(); }

#ifndef TC_NO_MEMFUNCS
/* A freestanding WebAssembly build has no C library, yet clang emits calls
 * to these for struct copies and initializers such as `char buf[200] = {0}`.
 * Weak, so that a guest may bring its own; no_builtin keeps clang from
 * turning the loops back into calls to themselves. */
#define TC_MEMFUNC __attribute__((weak, no_builtin("memset", "memcpy", "memmove", "memcmp")))
TC_MEMFUNC void *memset(void *dst, int c, __SIZE_TYPE__ n)
{
	unsigned char *d = (unsigned char *)dst;
	while (n--)
		*d++ = (unsigned char)c;
	return dst;
}
TC_MEMFUNC void *memcpy(void *dst, const void *src, __SIZE_TYPE__ n)
{
	unsigned char *d = (unsigned char *)dst;
	const unsigned char *s = (const unsigned char *)src;
	while (n--)
		*d++ = *s++;
	return dst;
}
TC_MEMFUNC void *memmove(void *dst, const void *src, __SIZE_TYPE__ n)
{
	unsigned char *d = (unsigned char *)dst;
	const unsigned char *s = (const unsigned char *)src;
	if (d < s) {
		while (n--)
			*d++ = *s++;
	} else {
		while (n--)
			d[n] = s[n];
	}
	return dst;
}
TC_MEMFUNC int memcmp(const void *a, const void *b, __SIZE_TYPE__ n)
{
	const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
	for (; n; n--, x++, y++)
		if (*x != *y)
			return *x - *y;
	return 0;
}
#endif

#ifdef TC_WASI
/* The WASI subset a WebAssembly container may import (SPEC section 2):
 * fd_write to fd 1 and 2 goes to the log (needs `log`), clock_time_get
 * reads the clock (needs `clock`). Results are WASI errnos (0 = success). */
#define TC_WASI_IMPORT(n) __attribute__((import_module("wasi_snapshot_preview1"), import_name(n)))
struct tc_iovec {
	const void *buf;
	uint32_t len;
};
TC_WASI_IMPORT("fd_write") int32_t fd_write(int32_t fd, const struct tc_iovec *iovs, uint32_t n, uint32_t *written);
TC_WASI_IMPORT("clock_time_get") int32_t clock_time_get(uint32_t id, uint64_t precision, uint64_t *out);
TC_WASI_IMPORT("random_get") int32_t random_get(void *buf, uint32_t len);
TC_WASI_IMPORT("args_sizes_get") int32_t args_sizes_get(uint32_t *argc, uint32_t *size);
TC_WASI_IMPORT("environ_sizes_get") int32_t environ_sizes_get(uint32_t *count, uint32_t *size);
TC_WASI_IMPORT("proc_exit") __attribute__((noreturn)) void proc_exit(uint32_t code);
#endif

#elif defined(__bpf__)

/* eBPF helpers 1-3. Guest addresses fit in 32 bits (SPEC section 2). */
static long (*const tc_open_helper)(const void *name, uint32_t name_len) = (void *)1;
static long (*const tc_call_helper)(long handle, uint32_t op, void *buf, uint32_t in_len, uint32_t buf_cap) = (void *)2;
static long (*const tc_close_helper)(long handle) = (void *)3;

static inline int32_t tc_open(const void *name, uint32_t name_len) { return (int32_t)tc_open_helper(name, name_len); }
static inline int32_t tc_call(int32_t handle, uint32_t op, void *buf, uint32_t in_len, uint32_t buf_cap)
{
	return (int32_t)tc_call_helper(handle, op, buf, in_len, buf_cap);
}
static inline int32_t tc_close(int32_t handle) { return (int32_t)tc_close_helper(handle); }

/* The entry point: the function in ELF section tc_main; r1 is 0. The
 * function must not itself be named tc_main: clang's assembler gives the
 * section a symbol of that name and refuses a second definition. */
#define TC_MAIN(fn) \
	__attribute__((section("tc_main"), used)) int tc_bpf_main(void *ctx) { (void)ctx; return fn(); }

#else
#error "tinycontainer.h: build with --target=wasm32 or -target bpf"
#endif

/* Conveniences built on the three calls. */

static inline uint32_t tc_strlen(const char *s)
{
	uint32_t n = 0;
	while (s[n])
		n++;
	return n;
}

/* tc_open_str opens an endpoint by its NUL-terminated name. */
static inline int32_t tc_open_str(const char *name) { return tc_open(name, tc_strlen(name)); }

/* tc_log writes one line to the container's log through handle h (opened on "log"). */
static inline int32_t tc_log(int32_t h, const char *text)
{
	return tc_call(h, TC_WRITE, (void *)text, tc_strlen(text), 0);
}

/* tc_read_i32 reads an i32 endpoint (a sensor, an actuator) through handle h. */
static inline int32_t tc_read_i32(int32_t h, int32_t *out)
{
	int32_t v = 0;
	int32_t r = tc_call(h, TC_READ, &v, 0, sizeof v);
	if (r >= 0)
		*out = v;
	return r;
}

/* tc_write_i32 writes an i32 to an actuator through handle h. */
static inline int32_t tc_write_i32(int32_t h, int32_t v)
{
	return tc_call(h, TC_WRITE, &v, sizeof v, 0);
}

/* tc_fmt_i32 writes v in decimal at dst (at least 12 bytes) and returns
 * the number of characters written (no NUL). */
static inline uint32_t tc_fmt_i32(char *dst, int32_t v)
{
	char tmp[12];
	uint32_t n = 0, len = 0;
	uint32_t u = v < 0 ? 0u - (uint32_t)v : (uint32_t)v;
	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		dst[len++] = '-';
	while (n)
		dst[len++] = tmp[--n];
	return len;
}

/* tc_cat appends the NUL-terminated src at dst and returns the new end. */
static inline char *tc_cat(char *dst, const char *src)
{
	while (*src)
		*dst++ = *src++;
	return dst;
}

/* tc_ptr is a guest address as the ABI's u32 request fields carry it
 * (guest addresses fit in 32 bits on both targets). */
static inline uint32_t tc_ptr(const void *p) { return (uint32_t)(__SIZE_TYPE__)p; }

/* Little-endian loads and stores (every integer of the ABI is LE). */
static inline uint16_t tc_le16(const void *p)
{
	const uint8_t *b = (const uint8_t *)p;
	return (uint16_t)(b[0] | b[1] << 8);
}
static inline uint32_t tc_le32(const void *p)
{
	const uint8_t *b = (const uint8_t *)p;
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}
static inline void tc_put_le32(void *p, uint32_t v)
{
	uint8_t *b = (uint8_t *)p;
	b[0] = (uint8_t)v, b[1] = (uint8_t)(v >> 8), b[2] = (uint8_t)(v >> 16), b[3] = (uint8_t)(v >> 24);
}

static inline void tc_copy(void *dst, const void *src, uint32_t n)
{
	uint8_t *d = (uint8_t *)dst;
	const uint8_t *s = (const uint8_t *)src;
	for (uint32_t i = 0; i < n; i++)
		d[i] = s[i];
}

/* log: tc_log_n writes one line of n bytes. */
static inline int32_t tc_log_n(int32_t h, const char *text, uint32_t n) { return tc_call(h, TC_WRITE, (void *)text, n, 0); }

/* clock: microseconds since the device started (monotonic). */
static inline int32_t tc_clock_us(int32_t h, uint64_t *out)
{
	uint64_t v = 0;
	int32_t r = tc_call(h, TC_READ, &v, 0, sizeof v);
	if (r == 8)
		*out = v;
	return r < 0 ? r : (r == 8 ? 0 : -TC_EINVAL);
}

/* sensor/accel: x, y, z in milli-g. */
static inline int32_t tc_read_accel(int32_t h, int32_t xyz[3])
{
	int32_t v[3] = {0, 0, 0};
	int32_t r = tc_call(h, TC_READ, v, 0, sizeof v);
	if (r == (int32_t)sizeof v)
		xyz[0] = v[0], xyz[1] = v[1], xyz[2] = v[2];
	return r < 0 ? r : (r == (int32_t)sizeof v ? 0 : -TC_EINVAL);
}

/* sensor/microphone: up to n samples of 16 kHz mono i16 PCM; returns the
 * number of samples read. */
static inline int32_t tc_read_pcm(int32_t h, int16_t *samples, uint32_t n)
{
	int32_t r = tc_call(h, TC_READ, samples, 0, n * 2);
	return r < 0 ? r : (int32_t)((uint32_t)r >> 1); /* eBPF has no signed division */
}

/* Actuators: tc_write_i32 and tc_read_i32 above. */

/* kv keys are 1..255 bytes (their length travels as one unsigned byte). */
#define TC_KV_MAX_KEY 255

/* tc_kv_pack lays out a kv put request at buf: the key length as one
 * unsigned byte, the key, the value. Returns its length, or -TC_EINVAL when
 * the key is empty or too long, or it does not fit cap bytes. */
static inline int32_t tc_kv_pack(void *buf, uint32_t cap, const char *key, uint32_t klen, const void *val, uint32_t vlen)
{
	if (klen == 0 || klen > TC_KV_MAX_KEY || 1 + klen + vlen > cap)
		return -TC_EINVAL;
	uint8_t *b = (uint8_t *)buf;
	b[0] = (uint8_t)klen; /* unsigned: a key of 200 bytes is 200, not -56 */
	tc_copy(b + 1, key, klen);
	tc_copy(b + 1 + klen, val, vlen);
	return (int32_t)(1 + klen + vlen);
}

/* tc_kv_put stores val under key using buf (cap bytes, at least
 * 1 + key length + vlen) as scratch space. */
static inline int32_t tc_kv_put(int32_t h, void *buf, uint32_t cap, const char *key, const void *val, uint32_t vlen)
{
	int32_t n = tc_kv_pack(buf, cap, key, tc_strlen(key), val, vlen);
	if (n < 0)
		return n;
	return tc_call(h, TC_PUT, buf, (uint32_t)n, 0);
}

/* tc_kv_get reads the value of key into val (cap bytes, at least the key's
 * length: the request travels in the same buffer). Returns the value's
 * length, -TC_ENOENT when there is none, -TC_EMSGSIZE when it is longer
 * than cap. */
static inline int32_t tc_kv_get(int32_t h, const char *key, void *val, uint32_t cap)
{
	uint32_t klen = tc_strlen(key);
	if (klen == 0 || klen > TC_KV_MAX_KEY || klen > cap)
		return -TC_EINVAL;
	tc_copy(val, key, klen);
	return tc_call(h, TC_GET, val, klen, cap);
}

/* tc_kv_delete removes key. */
static inline int32_t tc_kv_delete(int32_t h, const char *key)
{
	uint32_t klen = tc_strlen(key);
	if (klen == 0 || klen > TC_KV_MAX_KEY)
		return -TC_EINVAL;
	return tc_call(h, TC_DELETE, (void *)key, klen, 0);
}

/* msg/<topic>: publish n bytes of payload on the topic the handle was
 * opened on (tc_open_str("msg/acme/temp")). */
static inline int32_t tc_publish(int32_t h, const void *payload, uint32_t n) { return tc_call(h, TC_PUBLISH, (void *)payload, n, 0); }

/* event: for an activation caused by a message, reads it into buf and
 * points topic and payload into buf. Returns 1 with a message, 0 without
 * (a periodic or first activation), or a negative errno. */
static inline int32_t tc_event_read(int32_t h, void *buf, uint32_t cap, const char **topic, uint32_t *topic_len,
				    const uint8_t **payload, uint32_t *payload_len)
{
	int32_t n = tc_call(h, TC_READ, buf, 0, cap);
	if (n <= 0)
		return n;
	const uint8_t *b = (const uint8_t *)buf;
	uint32_t tl = tc_le16(b);
	if (n < 2 || 2 + tl > (uint32_t)n)
		return -TC_EINVAL;
	*topic = (const char *)(b + 2);
	*topic_len = tl;
	*payload = b + 2 + tl;
	*payload_len = (uint32_t)n - 2 - tl;
	return 1;
}

/* ml: runs the int8 TFLite model (model_len bytes in this container's
 * memory) on input, writing at most output_cap bytes at output. Returns the
 * output's length. */
static inline int32_t tc_ml_invoke(int32_t h, const void *model, uint32_t model_len, const void *input, uint32_t input_len,
				   void *output, uint32_t output_cap)
{
	uint32_t req[6] = {tc_ptr(model), model_len, tc_ptr(input), input_len, tc_ptr(output), output_cap};
	int32_t r = tc_call(h, TC_INVOKE, req, sizeof req, sizeof req);
	if (r < 0)
		return r;
	return r == 4 ? (int32_t)req[0] : -TC_EINVAL;
}

#endif /* TINYCONTAINER_H */
