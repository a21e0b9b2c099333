/* hostloop built for eBPF: the same source as hostloop.c. */
#include "hostloop.c"
