//go:build ignore

/* crc32 for eBPF; the kernel is in crc32_kernel.h, shared with crc32.c. */
#include "tinycontainer.h"
#include "crc32_kernel.h"
