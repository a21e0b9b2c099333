/* The probe built for the base eBPF ISA (-mcpu=v1): the same source as probe.c. */
#include "probe.c"
