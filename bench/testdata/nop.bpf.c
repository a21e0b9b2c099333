/* nop built for eBPF: the same source as nop.c. */
#include "nop.c"
