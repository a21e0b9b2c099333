/* mlinvoke built for eBPF: the same source as mlinvoke.c. */
#include "mlinvoke.c"
