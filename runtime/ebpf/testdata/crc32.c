/* crc32 for WebAssembly, to compare runtimes; the kernel is in crc32_kernel.h. */
#include "tinycontainer.h"
#include "crc32_kernel.h"
