//go:build ignore

/* Compute kernel: CRC-32 of 4 KiB (crc32_kernel.h), the same C code as
 * crc32.bpf.c, so eBPF and WebAssembly run identical work. */
#include "tinycontainer.h"
#include "crc32_kernel.h"
