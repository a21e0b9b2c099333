/* crc32 for eBPF; the kernel is in crc32_kernel.h. */
#include "tinycontainer.h"
#include "crc32_kernel.h"
