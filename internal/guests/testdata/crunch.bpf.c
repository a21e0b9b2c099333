/* crunch built for eBPF: the same source as crunch.c. */
#include "crunch.c"
