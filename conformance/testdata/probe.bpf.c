/* The probe built for eBPF: the same source as probe.c. */
#include "probe.c"
