/*
 * tinycontainer.h - the TinyContainer guest ABI, version 1 (SPEC section 2),
 * for both guest targets:
 *
 *   clang --target=wasm32 -O2 -nostdlib -Wl,--no-entry ...   (WebAssembly)
 *   clang -target bpf -mcpu=v3 -O2 -c ...                    (eBPF femto-container;
 *                                                            plain -O2 works too, v3 is faster)
 *
 * A guest defines `static int32_t my_main(void)` and writes TC_MAIN(my_main).
 * Every host function returns a value >= 0 or a negative errno (TC_E*).
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

#endif /* TINYCONTAINER_H */
