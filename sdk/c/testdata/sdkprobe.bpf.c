#include "sdkprobe.c"
